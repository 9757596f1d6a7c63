"""Pose refinement by maximising the IoU of the rendered silhouette with a reference mask.

- :func:`refine_paper`: the paper's Algorithm 1 exactly (every candidate is ray cast).
- :func:`refine_fast`: finepose's refiner: outlines aligned by damped Gauss-Newton, each
  step taken only when the ray-cast IoU improves (:mod:`.outline_fit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .iou import Reference, iou
from .outline_fit import fit_outline
from .pose import Pose, pose_or_none
from .render import SilhouetteRenderer
from .search import DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, RELEASE_STEPS, greedy_search

METHODS = ("paper", "fast")
#: After an outline fit ending under ``fallback_below``, one sweep of Algorithm 1 probes
#: whether it still finds gains; the whole search runs only if that sweep gained this much.
FALLBACK_PROBE_GAIN = 0.003


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

    def __call__(self, x: np.ndarray) -> float:
        pose = pose_or_none(self.template, x)
        if pose is None:
            return -1.0
        self.renders += 1
        if not self.windowed:
            return iou(self.renderer.render_full_frame(pose), self.reference.mask)
        return self.reference.iou_window(self.renderer.render_window(pose))


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
    renderer: SilhouetteRenderer, mask: np.ndarray, pose: Pose, fallback_below: float = 0.9, **options
) -> RefineResult:
    """finepose's refiner: the silhouette's outline is pulled onto the reference's by damped
    Gauss-Newton steps in all 7 parameters at once, each taken only when the ray-cast IoU
    improves (:func:`.outline_fit.fit_outline`; ``options`` go to it). When the fit ends
    under ``fallback_below`` IoU (a far start it could not pull in, or a reference the model
    cannot match well: noisy, occluded), Algorithm 1 with bounding-box renders goes on from
    its result: one sweep first, then the whole search if that sweep gained at least
    :data:`FALLBACK_PROBE_GAIN`. The reported IoUs come from full renders; the result is
    never worse than the start. ``details["fallback_sweeps"]``: Algorithm 1's sweeps.

    ``mask``: the reference (H, W); ``pose`` is rescaled to its size when needed.
    """
    start = time.perf_counter()
    pose, reference = _prepare(pose, mask)
    window = renderer.render_window(pose)
    iou0 = reference.iou_window(window)
    fit = fit_outline(renderer, reference, pose, start=window, **options)
    exact = ExactObjective(renderer, reference, pose)
    x, value = fit.x, exact(fit.x)
    sweeps = 0
    if value < fallback_below:  # the fit ended low: Algorithm 1 may go on from its result
        probe = greedy_search(exact, x, RELEASE_STEPS, DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, value0=value, max_sweeps=1)
        gain = probe.value - value
        x, value, sweeps = probe.x, probe.value, 1
        if gain >= FALLBACK_PROBE_GAIN:
            search = greedy_search(exact, x, RELEASE_STEPS, DEFAULT_ALPHA, DEFAULT_MIN_ALPHA, value0=value)
            x, value, sweeps = search.x, search.value, 1 + search.sweeps
    if value < iou0:
        x, value = pose.vector(), iou0
    return RefineResult(
        initial=pose,
        refined=pose.with_vector(x),
        iou_initial=iou0,
        iou_refined=value,
        renders=fit.renders + exact.renders + 1,  # and the full render of the start
        seconds=time.perf_counter() - start,
        method="fast",
        details={"iterations": fit.iterations, "fallback_sweeps": sweeps},
    )


def refine(renderer, mask, pose, method: str = "fast", **kwargs) -> RefineResult:
    """Refine with ``method`` in :data:`METHODS`."""
    if method == "paper":
        return refine_paper(renderer, mask, pose, **kwargs)
    if method == "fast":
        return refine_fast(renderer, mask, pose, **kwargs)
    raise ValueError(f"unknown refinement method {method!r}; use one of {', '.join(METHODS)}")
