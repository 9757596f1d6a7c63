"""Pose refinement by maximising the IoU of the rendered silhouette with a reference mask.

- :func:`refine_paper`: the paper's Algorithm 1 exactly (every candidate is ray cast).
- :func:`refine_fast`: finepose's refiner: outlines aligned by damped Gauss-Newton, each
  step taken only when the ray-cast IoU improves (:mod:`.outline_fit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from .band import AnchoredSilhouettes
from .iou import Reference, iou
from .masks import resize_mask
from .outline_fit import fit_outline
from .pose import Pose, pose_or_none
from .render import SilhouetteRenderer
from .search import DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, RELEASE_STEPS, greedy_search

METHODS = ("paper", "fast")
#: An outline fit ending under this IoU is followed by the fallback (see :func:`refine_fast`).
FALLBACK_BELOW = 0.97
#: The coarse restart searches the reference shrunk this many times (300 -> 100 px wide).
COARSE_FACTOR = 3
#: The coarse restart's Algorithm 1 stops once alpha <= this (sweeps at 1 and 1/2 x eps).
COARSE_MIN_ALPHA = 0.25
#: The polish (Algorithm 1 after the fallback's fits) starts from this alpha (x eps).
POLISH_ALPHA = 0.5
#: A result still under this IoU after the polish: Algorithm 1 from the start as well.
LAST_RESORT_BELOW = 0.9


@dataclass
class RefineResult:
    initial: Pose
    refined: Pose
    iou_initial: float
    iou_refined: float
    renders: int  # ray-cast silhouettes (full, bounding-box or band)
    seconds: float
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
            "seconds": self.seconds,
            "details": self.details,
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
        self.last = float("nan")  # the value of the last call

    def __call__(self, x: np.ndarray) -> float:
        self.last = self._value(x)
        return self.last

    def _value(self, x: np.ndarray) -> float:
        pose = pose_or_none(self.template, x)
        if pose is None:
            return -1.0
        self.renders += 1
        if not self.windowed:
            return iou(self.renderer.render_full_frame(pose), self.reference.mask)
        return self._windowed_value(pose)

    def _windowed_value(self, pose: Pose) -> float:
        """The IoU at ``pose`` from a render of its bounding box."""
        return self.reference.iou_window(self.renderer.render_window(pose))


class BandedObjective(ExactObjective):
    """:class:`ExactObjective` for a search that moves only to the best value it has seen
    (:func:`.search.greedy_search`): candidates are cast about the outline of that pose where
    the move is small enough (:class:`.band.AnchoredSilhouettes`), the same IoU as a
    bounding-box render except where a hairline crack between a model's parts crosses a
    pixel centre. :meth:`anchor` starts a search; confirm the pose it ends at with an
    :class:`ExactObjective`."""

    def __init__(self, renderer: SilhouetteRenderer, reference: Reference, template: Pose):
        super().__init__(renderer, reference, template)
        self.silhouettes = AnchoredSilhouettes(renderer)
        self.best = -np.inf

    def anchor(self, x: np.ndarray) -> float:
        """The IoU at ``x`` from a bounding-box render; the search's first anchor."""
        self.silhouettes.reset()
        self.best = -np.inf
        return self(x)

    def _windowed_value(self, pose: Pose) -> float:
        window = self.silhouettes.render(pose)
        value = self.reference.iou_window(window)
        if value > self.best:
            self.best = value
            self.silhouettes.anchor(pose, window)
        return value


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
    fallback_below: float = FALLBACK_BELOW,
    *,
    extra_starts: Sequence[Pose] = (),
    coarse_factor: int = COARSE_FACTOR,
    last_resort_below: float = LAST_RESORT_BELOW,
    **options,
) -> RefineResult:
    """finepose's refiner: the silhouette's outline is pulled onto the reference's by damped
    Gauss-Newton steps in all 7 parameters at once, each taken only when the ray-cast IoU
    improves (:func:`.outline_fit.fit_outline`; ``options`` go to it).

    ``extra_starts``: more starts (the keypoint fit's far-apart rival, the automatic initial
    pose's other hypotheses, a flipped azimuth), each fitted the same way; the fallback
    below goes on from the best fit and its start. They must share ``pose``'s mesh frame.

    When the best fit ends under ``fallback_below`` IoU (a far start pulled into a wrong
    optimum, or a reference the model cannot match well: noisy, occluded), the fallback runs:

    1. a coarse restart: Algorithm 1 from that fit's *start* on the reference shrunk by
       ``coarse_factor`` (renders cost ~1/5; the small image's area sums blur the outline
       and widen the basin), then the outline fit at full size from its result; the better
       of the fits is kept;
    2. if that still ends under ``fallback_below``, Algorithm 1 polishes it from half the
       release's steps (:data:`POLISH_ALPHA`);
    3. if the result is still under ``last_resort_below`` (mostly noisy references of thin
       structures, whose IoU peaks are narrow), the whole of Algorithm 1 from that start;
       the better result is kept.

    Both searches cast rays only about the outline of the best pose so far where they can
    (:class:`BandedObjective`); a bounding-box render confirms the pose they end at. They
    follow Algorithm 1's path except where a band misses a hairline crack.

    The reported IoUs come from full renders; the result is never worse than ``pose``.
    ``details``: ``iterations`` (of the first fit), ``start`` (0: ``pose``, k: the k-th
    alternative), ``restarted`` (the coarse restart ran), ``fallback_sweeps`` (Algorithm 1's
    sweeps at full size: polish and last resort).

    ``mask``: the reference (H, W); poses are rescaled to its size when needed.
    """
    start = time.perf_counter()
    pose, reference = _prepare(pose, mask)
    window = renderer.render_window(pose)
    iou0 = reference.iou_window(window)
    exact = ExactObjective(renderer, reference, pose)
    first = fit_outline(renderer, reference, pose, start=window, **options)
    x, value, origin, chosen, renders = first.x, exact(first.x), pose, 0, first.renders
    for k, alternative in enumerate(extra_starts, start=1):
        alternative = alternative.rescaled(reference.width, reference.height)
        fit = fit_outline(renderer, reference, alternative, **options)
        renders += fit.renders
        if exact(fit.x) > value:
            x, value, origin, chosen = fit.x, exact.last, alternative, k
    restarted, sweeps = False, 0
    if value < fallback_below:
        restart, restart_renders = _coarse_restart(renderer, reference, origin, coarse_factor, options)
        restarted, renders = True, renders + restart_renders
        if exact(restart) > value:
            x, value = restart, exact.last
    local = BandedObjective(renderer, reference, pose)
    if value < fallback_below:
        polish = greedy_search(local, x, RELEASE_STEPS, POLISH_ALPHA, DEFAULT_MIN_ALPHA, value0=local.anchor(x))
        sweeps = polish.sweeps
        # It moved (it starts from a bounding-box render of x, worth value): confirm.
        if polish.value > value and exact(polish.x) > value:
            x, value = polish.x, exact.last
    if value < last_resort_below:
        start_x = origin.vector()
        value0 = local.anchor(start_x)
        search = greedy_search(local, start_x, RELEASE_STEPS, DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, value0=value0)
        sweeps += search.sweeps
        # Confirmed even when its band values say it gained nothing over value (a crack).
        if exact(search.x) > value:
            x, value = search.x, exact.last
    if value < iou0:
        x, value, chosen = pose.vector(), iou0, 0
    return RefineResult(
        initial=pose,
        refined=pose.with_vector(x),
        iou_initial=iou0,
        iou_refined=value,
        renders=renders + exact.renders + local.renders + 1,  # and the render of the start
        seconds=time.perf_counter() - start,
        method="fast",
        details={"iterations": first.iterations, "start": chosen, "restarted": restarted, "fallback_sweeps": sweeps},
    )


def _coarse_restart(renderer, reference: Reference, pose: Pose, factor: int, options: dict) -> tuple[np.ndarray, int]:
    """Algorithm 1 from ``pose`` against ``reference`` shrunk ``factor`` times (area sums,
    :func:`.masks.resize_mask`; steps halved down to :data:`COARSE_MIN_ALPHA`), then the
    outline fit at full size from its result: (the fit's pose vector at ``pose``'s size,
    renders of both)."""
    width, height = max(1, reference.width // factor), max(1, reference.height // factor)
    small = resize_mask(reference.mask, width, height)
    if not small.any():  # the object vanishes at this size: search at full size
        small, width, height = reference.mask, reference.width, reference.height
    coarse_pose = pose.rescaled(width, height)
    objective = ExactObjective(renderer, Reference(small), coarse_pose)
    search = greedy_search(objective, coarse_pose.vector(), RELEASE_STEPS, DEFAULT_ALPHA, COARSE_MIN_ALPHA)
    found = coarse_pose.with_vector(search.x).rescaled(reference.width, reference.height)
    fit = fit_outline(renderer, reference, found, **options)
    return fit.x, objective.renders + fit.renders


def refine(renderer, mask, pose, method: str = "fast", *, extra_starts: Sequence[Pose] = (), **kwargs) -> RefineResult:
    """Refine with ``method`` in :data:`METHODS`: the one entry point for every start.

    ``pose``: the start (a human's pose, a keypoint fit, the automatic initial pose's best
    hypothesis); ``extra_starts``: other starts worth trying (the keypoint fit's far-apart
    rival, the other hypotheses of :func:`.init_pose.initial_pose`). ``fast`` fits each and
    goes on from the best (:func:`refine_fast`); ``paper`` runs Algorithm 1 from each and
    keeps the best. ``details["start"]``: which start won (0: ``pose``).
    """
    if method == "paper":
        results = [refine_paper(renderer, mask, start, **kwargs) for start in (pose, *extra_starts)]
        best = max(range(len(results)), key=lambda k: results[k].iou_refined)
        return replace(
            results[best],
            initial=results[0].initial,
            iou_initial=results[0].iou_initial,
            renders=sum(r.renders for r in results),
            seconds=sum(r.seconds for r in results),
            details={**results[best].details, "start": best},
        )
    if method == "fast":
        return refine_fast(renderer, mask, pose, extra_starts=extra_starts, **kwargs)
    raise ValueError(f"unknown refinement method {method!r}; use one of {', '.join(METHODS)}")
