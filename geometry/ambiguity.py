"""A far-apart rival of a refined pose: the front/back (or left/right) confusion.

Cars and aircraft give nearly the same silhouette from views far apart in azimuth: the
azimuth turned by 180 degrees (the object seen from the other side, its outline mirrored)
and mirrored about the side view (``180 - azimuth``: front and back swapped, the same side
visible). :func:`far_apart_rival` refines those starts (and any extra ones, e.g. the
automatic initial pose's runner-up) and reports the best of them when its IoU is within
``margin`` of the pose's own: the annotator should then see both.

Conventions as :mod:`geometry.pose` (degrees, px of the mask's size); masks boolean (H, W).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .init_pose import Hypothesis, far_apart, fit_scale_and_position
from .iou import Reference
from .pose import Pose, wrap_degrees
from .refine import refine

MARGIN = 0.05  # IoU within which a far-apart rival is worth showing (as initial_pose's)
FOCAL_RATIO = 1.5  # a rival whose focal drifted further from the pose's is another camera, not shown


def flip_starts(pose: Pose) -> list[Pose]:
    """``pose`` with its azimuth turned by 180 degrees and mirrored about the side view
    (``180 - azimuth``), the other six numbers kept; the second is left out when it lies
    within :data:`~.init_pose.FAR_APART_DEG` of ``pose`` (a view near the side)."""
    starts = [replace(pose, azimuth=wrap_degrees(pose.azimuth + 180.0))]
    mirrored = wrap_degrees(180.0 - pose.azimuth)
    if far_apart(mirrored, pose.azimuth):
        starts.append(replace(pose, azimuth=mirrored))
    return starts


def far_apart_rival(
    renderer,
    mask: np.ndarray,
    pose: Pose,
    pose_iou: float,
    *,
    extra_starts=(),
    margin: float = MARGIN,
    method: str = "fast",
) -> Hypothesis | None:
    """The best refined pose more than :data:`~.init_pose.FAR_APART_DEG` of azimuth away from ``pose``
    whose IoU with ``mask`` is at least ``pose_iou - margin``, else None.

    ``pose``: the refined pose (any image size; rescaled to the mask's). Starts:
    :func:`flip_starts` of ``pose`` and ``extra_starts``, each first scaled and centred on the
    mask (distance from the area ratio, u, v from the centroids), then refined with
    ``method``. A refined rival whose focal lies outside :data:`FOCAL_RATIO` times the pose's
    is left out: one photo has one camera (a nearly orthographic camera makes the view
    mirrored about the side view look alike, at a focal several times the photo's). The
    returned hypothesis is at the mask's size.
    """
    reference = Reference(mask)
    height, width = reference.mask.shape
    if (pose.width, pose.height) != (width, height):
        pose = pose.rescaled(width, height)
    ys, xs = np.nonzero(reference.mask)
    if len(xs) == 0:
        return None
    centre = np.array([xs.mean(), ys.mean()])
    best = None
    starts = flip_starts(pose) + [s.rescaled(width, height) if (s.width, s.height) != (width, height) else s
                                  for s in extra_starts]
    for start in starts:
        if not far_apart(start.azimuth, pose.azimuth):
            continue
        start, coarse = fit_scale_and_position(renderer, reference, start, centre)
        result = refine(renderer, reference.mask, start, method=method)
        if not far_apart(result.refined.azimuth, pose.azimuth):
            continue  # it slid back to the pose itself
        if not 1 / FOCAL_RATIO <= result.refined.focal / pose.focal <= FOCAL_RATIO:
            continue  # another camera
        if best is None or result.iou_refined > best.iou:
            best = Hypothesis(pose=result.refined, iou=result.iou_refined, coarse_iou=coarse)
    if best is None or best.iou < pose_iou - margin:
        return None
    return best
