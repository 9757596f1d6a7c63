"""The object(s) of a reference mask inside a box the annotator drew.

A reference may hold several objects (two cars in one photo, a painted mask with two
parts). :func:`objects_in_box` keeps the connected parts that lie mostly inside the box, so
the pose is fitted to the object the box was drawn around. Masks are boolean (H, W); the box
is a boolean (H, W) mask of its pixels. Parts smaller than :data:`SPECK` of the mask's area
are specks (segmentation noise), not objects: they are neither counted nor kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MOSTLY_INSIDE = 0.5  # a part with at least this share of its pixels inside the box is kept
SPECK = 0.02  # parts under this share of the mask's area are ignored


@dataclass(frozen=True)
class BoxPick:
    mask: np.ndarray  # the reference restricted to the box's object(s); may be empty
    objects: int  # objects (connected parts, specks left out) of the reference
    kept: int  # objects kept: mostly inside the box
    clipped: bool  # none lay mostly inside: the reference is cut at the box instead

    @property
    def changes_nothing(self) -> bool:
        """Every object of the reference is in the box: the box leaves the reference as it was."""
        return not self.clipped and self.kept == self.objects

    def describe(self) -> str:
        if self.clipped:
            return ("no object of the reference lies mostly inside the box: the reference is cut at its edge "
                    "(draw the box around the whole object)")
        if self.changes_nothing:
            what = "its one object lies" if self.objects == 1 else f"all its {self.objects} objects lie"
            return f"{what} in the box, so the box changes nothing here"
        return f"the box keeps {self.kept} of the reference's {self.objects} objects"


def objects_in_box(mask: np.ndarray, box: np.ndarray, mostly: float = MOSTLY_INSIDE) -> BoxPick:
    """``mask``'s objects (8-connected parts) with at least ``mostly`` of their pixels inside
    ``box``; when there is none, ``mask & box`` (``clipped``)."""
    mask = np.asarray(mask, dtype=bool)
    box = np.asarray(box, dtype=bool)
    if mask.shape != box.shape:
        raise ValueError(f"box shape {box.shape} differs from the mask's {mask.shape}")
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return BoxPick(mask.copy(), 0, 0, False)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    inside = np.bincount(labels[box].ravel(), minlength=count + 1)[1:]
    objects = areas >= SPECK * areas.sum()
    keep = objects & (inside >= mostly * areas)
    if not keep.any():
        return BoxPick(mask & box, int(objects.sum()), 0, True)
    return BoxPick(np.isin(labels, np.flatnonzero(keep) + 1), int(objects.sum()), int(keep.sum()), False)


def box_centre_inside(points_mask: np.ndarray, box: np.ndarray) -> bool:
    """Whether the centroid of ``points_mask`` (e.g. a projection) lies in ``box``."""
    ys, xs = np.nonzero(points_mask)
    if len(xs) == 0:
        return False
    y, x = int(round(ys.mean())), int(round(xs.mean()))
    return bool(box[min(max(y, 0), box.shape[0] - 1), min(max(x, 0), box.shape[1] - 1)])
