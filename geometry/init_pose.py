"""An initial pose from the reference mask alone (no human input).

Coarse search over azimuth x elevation (theta = 0, a fixed focal length); for each view the
silhouette's area and centroid are fitted to the mask's (distance and u, v); the best views
are then refined. Cars and aircraft look alike from the front and the back, and from the
left and the right, so the result lists hypotheses and flags when the two best are far apart
in azimuth yet close in IoU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .iou import Reference
from .pose import Pose, wrap_degrees
from .refine import RefineResult, refine_fast
from .render import SilhouetteRenderer

DEFAULT_AZIMUTHS = tuple(range(0, 360, 20))
DEFAULT_ELEVATIONS = (0.0, 12.0, 25.0, 40.0)
FOCAL_PER_WIDTH = 1.155  # the release's median focal, 346 px at 300 px wide
FAR_APART_DEG = 60.0


def far_apart(azimuth_a: float, azimuth_b: float) -> bool:
    """Whether two azimuths (degrees) are more than :data:`FAR_APART_DEG` apart, the other
    side of the look-alike views (front/back, left/right) rather than the same view."""
    return abs(wrap_degrees(azimuth_a - azimuth_b)) > FAR_APART_DEG


@dataclass
class Hypothesis:
    pose: Pose
    iou: float
    coarse_iou: float

    def to_dict(self) -> dict:
        return {"pose": self.pose.to_dict(), "iou": self.iou, "coarse_iou": self.coarse_iou}


@dataclass
class InitResult:
    hypotheses: list  # of Hypothesis, best first
    ambiguous: bool  # the best far-apart alternative is within ``margin`` IoU of the best
    renders: int

    @property
    def extra_starts(self) -> list:
        """The poses of the hypotheses after the best: pass them as
        ``geometry.refine.refine(..., hypotheses[0].pose, extra_starts=...)``."""
        return [h.pose for h in self.hypotheses[1:]]

    def to_dict(self) -> dict:
        return {
            "best": self.hypotheses[0].to_dict(),
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "ambiguous": self.ambiguous,
            "renders": self.renders,
        }


def initial_pose(
    renderer: SilhouetteRenderer,
    mask: np.ndarray,
    *,
    focal: float | None = None,
    azimuths=DEFAULT_AZIMUTHS,
    elevations=DEFAULT_ELEVATIONS,
    refine_top: int = 4,
    margin: float = 0.05,
    mesh_frame: np.ndarray | None = None,
) -> InitResult:
    """Hypotheses for the pose of ``renderer``'s mesh in ``mask``, from the mask alone, best first.

    ``mask``: boolean ``(H, W)`` reference; poses refer to an ``W x H`` image. ``focal``: pixels
    (default ``FOCAL_PER_WIDTH * W``, the release's default). ``azimuths``, ``elevations``:
    the coarse grid in degrees. ``refine_top``: how many of the best coarse views are refined,
    each by the fast refiner without its fallback (the outline fit and the IoU ascent: this ranks the views). ``margin``: IoU within
    which a far-apart (> 60 degrees azimuth) runner-up makes the result ``ambiguous``.
    ``mesh_frame``: the model's frame (3x3; identity when None), the frame of the returned
    poses. Returns an :class:`InitResult` (hypotheses with their IoUs, renders); refine it
    through the same path as any other start,
    ``refine(renderer, mask, result.hypotheses[0].pose, extra_starts=result.extra_starts)``.
    """
    reference = Reference(mask)
    height, width = reference.mask.shape
    focal = FOCAL_PER_WIDTH * width if focal is None else focal
    ref_ys, ref_xs = np.nonzero(reference.mask)
    ref_centre = np.array([ref_xs.mean(), ref_ys.mean()])
    radius = renderer.mesh.radius
    distance0 = 4.0 * radius
    renders = 0
    coarse = []
    for elevation in elevations:
        for azimuth in azimuths:
            pose = Pose(
                azimuth=float(azimuth), elevation=float(elevation), theta=0.0, distance=distance0, focal=focal,
                u=ref_centre[0], v=ref_centre[1], width=width, height=height,
                mesh_frame=np.eye(3) if mesh_frame is None else mesh_frame,
            )
            pose, value = fit_scale_and_position(renderer, reference, pose, ref_centre)
            renders += FIT_RENDERS
            coarse.append((value, pose))
    coarse.sort(key=lambda item: -item[0])
    chosen = _distinct(coarse, refine_top)
    hypotheses = []
    for value, pose in chosen:
        result: RefineResult = refine_fast(renderer, reference.mask, pose, fallback=False)
        renders += result.renders
        hypotheses.append(Hypothesis(pose=result.refined, iou=result.iou_refined, coarse_iou=value))
    hypotheses.sort(key=lambda h: -h.iou)
    # Two coarse views may refine to one pose: list it once.
    hypotheses = _distinct(hypotheses, len(hypotheses), pose_of=lambda h: h.pose)
    best = hypotheses[0]
    rivals = [h for h in hypotheses[1:] if far_apart(h.pose.azimuth, best.pose.azimuth)]
    ambiguous = bool(rivals) and best.iou - rivals[0].iou < margin
    if rivals:  # the far-apart runner-up is always reported second
        hypotheses.remove(rivals[0])
        hypotheses.insert(1, rivals[0])
    return InitResult(hypotheses=hypotheses, ambiguous=ambiguous, renders=renders)


FIT_RENDERS = 3  # renders by fit_scale_and_position: area, centroid, IoU


def fit_scale_and_position(renderer, reference: Reference, pose: Pose, ref_centre) -> tuple[Pose, float]:
    """``pose`` scaled and centred on ``reference`` (a :class:`Reference`): the distance from
    the area ratio, then (u, v) so the centroids coincide (``ref_centre``: the reference's
    centroid, x, y px); with its IoU (at most :data:`FIT_RENDERS` renders)."""
    window = renderer.render_window(pose)
    area = np.count_nonzero(window.mask)
    if area == 0:
        return pose, 0.0
    pose = replace(pose, distance=pose.distance / math.sqrt(reference.area / area))
    window = renderer.render_window(pose)
    if not window.mask.any():
        return pose, 0.0
    ys, xs = np.nonzero(window.mask)
    shift = ref_centre - np.array([xs.mean() + window.x0, ys.mean() + window.y0])
    pose = replace(pose, u=pose.u + shift[0], v=pose.v + shift[1])
    return pose, reference.iou_window(renderer.render_window(pose))


def _distinct(items, count: int, min_separation: float = 25.0, pose_of=lambda item: item[1]):
    """The first ``count`` of ``items`` (best first), none within ``min_separation`` degrees of
    azimuth of a better one at the same elevation band (15 degrees); ``pose_of`` gives an
    item's pose (default: ``(value, pose)`` pairs)."""
    chosen = []
    for item in items:
        pose = pose_of(item)
        if all(
            abs(wrap_degrees(pose.azimuth - pose_of(other).azimuth)) >= min_separation
            or abs(pose.elevation - pose_of(other).elevation) > 15.0
            for other in chosen
        ):
            chosen.append(item)
        if len(chosen) == count:
            break
    return chosen
