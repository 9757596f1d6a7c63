"""Pose refinement by maximising the IoU of the rendered silhouette with a reference mask.

- :func:`refine_paper`: the paper's Algorithm 1 exactly (every candidate is ray cast).
- :func:`refine_fast`: finepose's refiner, same search and objective: rays only inside the
  silhouette's bounding box, (theta, focal, u, v) moves answered by similarity lookups
  (:mod:`.similarity`) instead of ray casts, and an exact last level.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .iou import Reference, iou
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
    supersample: float = 1.0,
    min_level_width: int = 64,
    scales=(),
    align: bool = False,
    expand: bool = False,
) -> RefineResult:
    """finepose's refiner: the same objective and stopping rule, fewer ray-cast pixels.

    Algorithm 1 (from ``2 * alpha``) on the lookup objective: rays are cast only inside the
    silhouette's bounding box, once per new (azimuth, elevation, distance); theta/focal/u/v
    moves are similarity lookups of that render. Then a last level of Algorithm 1 on exact
    (bounding-box) renders at the finest step, so the result is a local optimum of the
    exact IoU, and its reported IoU is exact.

    Options measured by ``bench/refine_bench.py`` (off by default: on the release's cases
    they cost IoU): ``scales`` runs coarse levels of an image pyramid first (at scale s
    until ``alpha <= min_alpha / s``); ``align`` starts by matching the silhouette's
    centroid and area to the reference's; ``expand`` doubles improving steps.
    """
    start = time.perf_counter()
    pose, reference = _prepare(pose, mask)
    exact = ExactObjective(renderer, reference, pose)
    iou0 = exact(pose.vector())
    renders = lookups = 0
    x = pose.vector()
    level_alpha = 2.0 * alpha  # one coarser halving level than the paper: better optima on the bench
    levels = _pyramid_scales(reference.width, min_level_width, scales)
    for scale in levels:
        level_pose = pose.rescaled(max(1, round(pose.width * scale)), max(1, round(pose.height * scale)))
        level_ref = Reference(_downscale(reference.mask, level_pose.width, level_pose.height))
        lookup = LookupObjective(renderer, level_ref, level_pose, supersample=supersample)
        level_steps = np.asarray(steps, dtype=float).copy()
        level_steps[4:] *= level_pose.width / pose.width
        xl = _to_level(x, pose, level_pose)
        if align and scale == levels[0]:
            xl = _align_moments(level_ref, level_pose.with_vector(xl), lookup)
        stop = min_alpha / scale
        result = greedy_search(lookup, xl, level_steps, max(level_alpha, 2.0 * stop), stop, expand=expand)
        x = _from_level(result.x, pose, level_pose)
        level_alpha = stop
        renders += lookup.renders
        lookups += lookup.lookups
    # Finish with one exact level of Algorithm 1 at the paper's finest step: the result is a
    # local optimum of the exact IoU, not of the lookup approximation.
    polish = greedy_search(exact, x, steps, 2.0 * min_alpha, min_alpha, value0=exact(x))
    x, value = polish.x, polish.value
    if value < iou0:
        x, value = pose.vector(), iou0
    return RefineResult(
        initial=pose,
        refined=pose.with_vector(x),
        iou_initial=iou0,
        iou_refined=value,
        renders=renders + exact.renders,
        lookups=lookups,
        seconds=time.perf_counter() - start,
        method="fast",
    )


def _pyramid_scales(width: int, min_level_width: int, scales) -> list[float]:
    return [s for s in scales if width * s >= min_level_width] + [1.0]


def _downscale(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    from skimage.transform import resize

    return resize(mask.astype(np.float32), (height, width), order=1, anti_aliasing=True) >= 0.5


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
