"""Pose refinement by maximising the IoU of the rendered silhouette with a reference mask.

- :func:`refine_paper`: the paper's Algorithm 1 exactly (every candidate is ray cast).
- :func:`refine_fast`: finepose's refiner, same search and objective: the coarse levels on
  half-resolution renders with (theta, focal, u, v) moves answered by similarity lookups
  (:mod:`.similarity`), the last level on ray casts near the outline only (:mod:`.band`),
  visited points remembered (:class:`Memo`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .band import OutlineBand
from .iou import Reference, iou
from .masks import resize_mask
from .pose import Pose
from .render import SilhouetteRenderer
from .search import DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, RELEASE_STEPS, greedy_search
from .similarity import BaseSilhouette

METHODS = ("paper", "fast")


@dataclass
class RefineResult:
    initial: Pose
    refined: Pose
    iou_initial: float
    iou_refined: float
    renders: int  # ray-cast silhouettes (similarity lookups are counted in ``lookups``)
    seconds: float
    lookups: int = 0
    method: str = "paper"
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "initial": self.initial.to_dict(),
            "refined": self.refined.to_dict(),
            "iou_initial": self.iou_initial,
            "iou_refined": self.iou_refined,
            "renders": self.renders,
            "lookups": self.lookups,
            "seconds": self.seconds,
        }


class ExactObjective:
    """IoU of the ray-cast silhouette at a pose vector with the reference; counts renders.

    ``windowed=False`` renders and compares the whole image, as a plain implementation of
    the paper does; ``True`` casts rays only in the silhouette's bounding box (same value).
    """

    def __init__(self, renderer: SilhouetteRenderer, reference: Reference, template: Pose, windowed: bool = True):
        self.windowed = windowed
        self.renderer = renderer
        self.reference = reference
        self.template = template
        self.renders = 0

    def __call__(self, x: np.ndarray) -> float:
        pose = _pose_or_none(self.template, x)
        if pose is None:
            return -1.0
        self.renders += 1
        if not self.windowed:
            return iou(self.renderer.render_full_frame(pose), self.reference.mask)
        return self.reference.iou_window(self.renderer.render_window(pose))


class BandObjective:
    """IoU of the ray-cast silhouette at a pose vector, cast only near the outline of the
    best pose evaluated so far (:class:`~.band.OutlineBand`), or in full (bounding box) for
    the first pose and any pose too far from the best. Made for Algorithm 1's last, small
    steps, whose candidates all lie about the best pose. ``renders`` counts both kinds,
    ``band_renders`` the band ones."""

    def __init__(self, renderer: SilhouetteRenderer, reference: Reference, template: Pose):
        self.renderer = renderer
        self.reference = reference
        self.template = template
        self.band: OutlineBand | None = None
        self.best = -np.inf
        self.renders = 0
        self.band_renders = 0

    def __call__(self, x: np.ndarray) -> float:
        pose = _pose_or_none(self.template, x)
        if pose is None:
            return -1.0
        self.renders += 1
        window = self.band.render(pose) if self.band is not None else None
        if window is None:
            window = self.renderer.render_window(pose)
        else:
            self.band_renders += 1
        value = self.reference.iou_window(window)
        if value > self.best:
            self.best = value
            self.band = OutlineBand(self.renderer, pose, window)
        return value


class LookupObjective:
    """Like :class:`ExactObjective`, but one ray cast per (azimuth, elevation, distance):
    other moves reuse a cached :class:`BaseSilhouette`."""

    def __init__(self, renderer, reference, template, supersample=1.5, cache_size=16):
        self.renderer = renderer
        self.reference = reference
        self.template = template
        self.supersample = supersample
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.renders = 0
        self.lookups = 0

    def base(self, pose: Pose) -> BaseSilhouette:
        key = (round(pose.azimuth, 9), round(pose.elevation, 9), round(pose.distance, 12))
        base = self.cache.get(key)
        if base is None or base.focal < pose.focal * self.supersample * 0.8:
            base = BaseSilhouette(self.renderer, pose, self.supersample)
            self.renders += 1
            self.cache[key] = base
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return base

    def __call__(self, x: np.ndarray) -> float:
        pose = _pose_or_none(self.template, x)
        if pose is None:
            return -1.0
        try:
            base = self.base(pose)
        except ValueError:
            return -1.0
        self.lookups += 1
        return base.iou(pose, self.reference)


class Memo:
    """``objective`` with remembered values: Algorithm 1 revisits points (the step back
    to the previous point, the unchanged coordinates after a halving)."""

    def __init__(self, objective):
        self.objective = objective
        self.values: dict = {}

    def __call__(self, x: np.ndarray) -> float:
        key = tuple(np.round(x, 9))
        value = self.values.get(key)
        if value is None:
            value = self.values[key] = self.objective(x)
        return value


def _pose_or_none(template: Pose, x: np.ndarray) -> Pose | None:
    if x[3] <= 1e-6 or x[4] <= 1e-6:  # distance and focal must stay positive
        return None
    return template.with_vector(x)


def _prepare(pose: Pose, mask: np.ndarray) -> tuple[Pose, Reference]:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"reference mask must be 2-D, got shape {mask.shape}")
    height, width = mask.shape
    if (pose.width, pose.height) != (width, height):
        pose = pose.rescaled(width, height)
    return pose, Reference(mask)


def refine_paper(
    renderer: SilhouetteRenderer,
    mask: np.ndarray,
    pose: Pose,
    steps=RELEASE_STEPS,
    alpha: float = DEFAULT_ALPHA,
    min_alpha: float = DEFAULT_MIN_ALPHA,
    windowed: bool = False,
) -> RefineResult:
    """Algorithm 1: greedy +-alpha*eps search over the 7 parameters, every candidate a
    full-image ray-cast mask compared with the whole reference (``windowed=True``: only the
    silhouette's bounding box; same values, fewer rays).

    ``mask``: the reference (H, W); ``pose`` is rescaled to its size when needed.
    """
    start = time.perf_counter()
    pose, reference = _prepare(pose, mask)
    objective = ExactObjective(renderer, reference, pose, windowed=windowed)
    iou0 = objective(pose.vector())
    result = greedy_search(objective, pose.vector(), steps, alpha, min_alpha, value0=iou0)
    return RefineResult(
        initial=pose,
        refined=pose.with_vector(result.x),
        iou_initial=iou0,
        iou_refined=result.value,
        renders=objective.renders,
        seconds=time.perf_counter() - start,
        method="paper",
        details={"sweeps": result.sweeps},
    )


def refine_fast(
    renderer: SilhouetteRenderer,
    mask: np.ndarray,
    pose: Pose,
    steps=RELEASE_STEPS,
    alpha: float = DEFAULT_ALPHA,
    min_alpha: float = DEFAULT_MIN_ALPHA,
    supersample: float = 0.5,
    exact_alpha: float | None = None,
    min_level_width: int = 64,
    scales=(),
    align: bool = False,
    expand: bool = False,
) -> RefineResult:
    """finepose's refiner: the same objective and stopping rule, far fewer ray-cast pixels.

    The levels of Algorithm 1 from ``2 * alpha`` (one coarser level than the paper: better
    optima on the bench) while ``alpha > exact_alpha`` (default ``2 * min_alpha``: the levels
    2, 1 and 1/2) run on the lookup objective: one ray cast per new (azimuth, elevation,
    distance), of a silhouette at ``supersample`` times the image's resolution (half by
    default), theta/focal/u/v moves answered by similarity lookups of it. The levels from
    ``exact_alpha`` down (by default the paper's finest, 1/4) run on ray-cast silhouettes,
    casting only the band about the best pose's outline that a step can change
    (:mod:`.band`; equal to full renders but for rays through hairline cracks), so the
    result is a local optimum of the ray-cast IoU. Both remember visited points
    (:class:`Memo`). The reported IoUs come from full renders.

    Options measured by ``bench/refine_bench.py`` (off by default: on the release's cases
    they cost IoU): ``scales`` runs coarse levels of an image pyramid first (at scale s
    until ``alpha <= exact_alpha / s``); ``align`` starts by matching the silhouette's
    centroid and area to the reference's; ``expand`` doubles improving steps.
    """
    start = time.perf_counter()
    pose, reference = _prepare(pose, mask)
    exact = ExactObjective(renderer, reference, pose)
    iou0 = exact(pose.vector())
    exact_alpha = 2.0 * min_alpha if exact_alpha is None else exact_alpha
    x, renders, lookups = _lookup_levels(
        renderer, reference, pose, steps, 2.0 * alpha, exact_alpha, supersample, min_level_width, scales, align, expand
    )
    near = BandObjective(renderer, reference, pose)
    x = greedy_search(Memo(near), x, steps, exact_alpha, min_alpha).x
    value = exact(x)
    if value < iou0:
        x, value = pose.vector(), iou0
    return RefineResult(
        initial=pose,
        refined=pose.with_vector(x),
        iou_initial=iou0,
        iou_refined=value,
        renders=renders + near.renders + exact.renders,
        lookups=lookups,
        seconds=time.perf_counter() - start,
        method="fast",
        details={"band_renders": near.band_renders},
    )


def _lookup_levels(renderer, reference, pose, steps, alpha, stop, supersample, min_level_width, scales, align, expand):
    """Algorithm 1 on :class:`LookupObjective` from ``alpha`` until ``alpha <= stop``, on
    each level of the image pyramid in turn; returns (pose vector, renders, lookups)."""
    x = pose.vector()
    renders = lookups = 0
    levels = _pyramid_scales(reference.width, min_level_width, scales)
    for scale in levels:
        level_pose = pose.rescaled(max(1, round(pose.width * scale)), max(1, round(pose.height * scale)))
        level_ref = Reference(resize_mask(reference.mask, level_pose.width, level_pose.height))
        lookup = LookupObjective(renderer, level_ref, level_pose, supersample=supersample)
        level_steps = np.asarray(steps, dtype=float).copy()
        level_steps[4:] *= level_pose.width / pose.width
        xl = _to_level(x, pose, level_pose)
        if align and scale == levels[0]:
            xl = _align_moments(level_ref, level_pose.with_vector(xl), lookup)
        level_stop = stop / scale
        result = greedy_search(Memo(lookup), xl, level_steps, max(alpha, 2.0 * level_stop), level_stop, expand=expand)
        x = _from_level(result.x, pose, level_pose)
        alpha = level_stop
        renders += lookup.renders
        lookups += lookup.lookups
    return x, renders, lookups


def _pyramid_scales(width: int, min_level_width: int, scales) -> list[float]:
    return [s for s in scales if width * s >= min_level_width] + [1.0]


def _to_level(x: np.ndarray, pose: Pose, level: Pose) -> np.ndarray:
    return pose.with_vector(x).rescaled(level.width, level.height).vector()


def _from_level(x: np.ndarray, pose: Pose, level: Pose) -> np.ndarray:
    return level.with_vector(x).rescaled(pose.width, pose.height).vector()


def _align_moments(reference: Reference, pose: Pose, objective: LookupObjective) -> np.ndarray:
    """Shift (u, v) and scale focal so the silhouette's centroid and area match the
    reference's; returns the better of that and the start, by the lookup objective."""
    x = pose.vector()
    base_value = objective(x)
    window = objective.base(pose).window(pose)
    area = np.count_nonzero(window.mask)
    if area == 0:
        return x
    ys, xs = np.nonzero(window.mask)
    sil_centre = np.array([xs.mean() + window.x0, ys.mean() + window.y0])
    ref_ys, ref_xs = np.nonzero(reference.mask)
    ref_centre = np.array([ref_xs.mean(), ref_ys.mean()])
    scale = float(np.sqrt(reference.area / area))
    origin = np.array([pose.u, pose.v])
    # Scaling about (u, v) moves the centroid to origin + scale * (centroid - origin).
    new_origin = ref_centre - scale * (sil_centre - origin)
    candidate = x.copy()
    candidate[4] *= scale
    candidate[5:7] = new_origin
    return candidate if objective(candidate) > base_value else x


def refine(renderer, mask, pose, method: str = "fast", **kwargs) -> RefineResult:
    """Refine with ``method`` in :data:`METHODS`."""
    if method == "paper":
        return refine_paper(renderer, mask, pose, **kwargs)
    if method == "fast":
        return refine_fast(renderer, mask, pose, **kwargs)
    raise ValueError(f"unknown refinement method {method!r}; use one of {', '.join(METHODS)}")
