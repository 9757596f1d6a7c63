"""Signed distance to a mask's outline, sampled at sub-pixel points.

Pixel centres are at integer (x, y), x right, y down (as in :mod:`.pose`). The outline runs
half a pixel outside the mask's border pixels, so the signed distance is ``d - 0.5`` at a
pixel outside the mask (``d``: Euclidean distance to the nearest mask pixel centre) and
``0.5 - d`` inside (``d``: to the nearest background pixel centre): negative inside, in
pixels. Between pixel centres it is interpolated bilinearly; points off the image add their
distance to it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


class SignedDistance:
    """The signed distance (pixels) of a boolean (H, W) mask's outline, and its gradient."""

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, dtype=bool)
        outside = ndimage.distance_transform_edt(~mask)
        inside = ndimage.distance_transform_edt(mask)
        self.values = np.where(mask, 0.5 - inside, outside - 0.5)
        self.grad_y, self.grad_x = np.gradient(self.values)
        self.height, self.width = mask.shape

    def sample(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """At pixel points (N, 2) as (x, y): the signed distances (N,) and gradients (N, 2)."""
        points = np.asarray(points, dtype=float)
        x = np.clip(points[:, 0], 0.0, self.width - 1.0)
        y = np.clip(points[:, 1], 0.0, self.height - 1.0)
        off_image = np.hypot(points[:, 0] - x, points[:, 1] - y)
        gradient = np.stack([bilinear(self.grad_x, points), bilinear(self.grad_y, points)], axis=1)
        return bilinear(self.values, points) + off_image, gradient


def bilinear(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``grid`` (H, W) interpolated bilinearly between pixel centres at points (N, 2) as
    (x, y); points off the image take the nearest edge's value."""
    height, width = grid.shape
    points = np.asarray(points, dtype=float)
    x = np.clip(points[:, 0], 0.0, width - 1.0)
    y = np.clip(points[:, 1], 0.0, height - 1.0)
    x0 = np.minimum(x.astype(np.intp), max(width - 2, 0))
    y0 = np.minimum(y.astype(np.intp), max(height - 2, 0))
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
    bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
