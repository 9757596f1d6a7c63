"""Silhouettes under 2D similarity moves, without ray casting.

With the camera aimed at the model origin, theta, focal, u and v only rotate, scale and
translate the image about (u, v): the pixel p sees the ray of the theta = 0, unit-focal
image point ``n0 = Rot(theta) (p - (u, v)) / f``. A :class:`BaseSilhouette` renders that
image once per (azimuth, elevation, distance) at ``supersample`` times the target image's
resolution (the fast refiner uses half: a quarter of the rays) and answers any
(theta, f, u, v) by nearest-neighbour lookup: the outline is right to within
``0.5 / supersample`` pixel (and parts thinner than ``1 / supersample`` pixel may be lost).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .iou import Reference
from .pose import Pose
from .render import SilhouetteRenderer, Window


class BaseSilhouette:
    """The theta = 0 silhouette of ``pose``'s (azimuth, elevation, distance)."""

    def __init__(self, renderer: SilhouetteRenderer, pose: Pose, supersample: float = 1.5):
        focal = pose.focal * supersample
        base = replace(pose, theta=0.0, focal=focal, u=0.0, v=0.0)
        box = renderer.bounds(base)
        if box is None:
            raise ValueError("camera is inside the model's hull: no similarity lookup possible")
        x0, y0 = math.floor(box[0]) - 1, math.floor(box[1]) - 1
        width, height = math.ceil(box[2]) - x0 + 2, math.ceil(box[3]) - y0 + 2
        base = replace(base, u=-float(x0), v=-float(y0), width=width, height=height)
        self.mask = renderer.render(base)
        self._flat = np.pad(self.mask, 1).ravel()  # for lookups (see ``window``)
        self.focal = focal
        self.centre = np.array([base.u, base.v])
        # Corners of the lookup grid in unit-focal coordinates, to bound the silhouette.
        self._corners = (np.array([[0, 0], [width, 0], [0, height], [width, height]]) - 0.5 - self.centre) / focal

    def window(self, pose: Pose) -> Window:
        """The silhouette at ``pose``'s (theta, focal, u, v), clipped to the image."""
        rot = _rot2(math.radians(pose.theta))
        corners = self._corners @ rot * pose.focal + np.array([pose.u, pose.v])  # rot.T applied to rows
        x0 = max(0, math.floor(corners[:, 0].min()))
        y0 = max(0, math.floor(corners[:, 1].min()))
        x1 = min(pose.width, math.ceil(corners[:, 0].max()) + 1)
        y1 = min(pose.height, math.ceil(corners[:, 1].max()) + 1)
        if x1 <= x0 or y1 <= y0:
            return Window(np.zeros((0, 0), dtype=bool), 0, 0)
        # q = scale * Rot(theta) (p - c) + centre, rounded to the nearest pixel of the grid
        # padded by one empty pixel (q + 1.5 truncated; q clipped to the padded grid).
        m = (self.focal / pose.focal) * rot
        xs = np.arange(x0, x1, dtype=np.float32) - np.float32(pose.u)
        ys = np.arange(y0, y1, dtype=np.float32) - np.float32(pose.v)
        h, w = self.mask.shape
        qx = (m[0, 0] * xs)[None, :] + (m[0, 1] * ys + (self.centre[0] + 1.5)).astype(np.float32)[:, None]
        qy = (m[1, 0] * xs)[None, :] + (m[1, 1] * ys + (self.centre[1] + 1.5)).astype(np.float32)[:, None]
        index = np.clip(qy, 0, h + 1, out=qy).astype(np.int32)  # int32: half the memory traffic
        index *= w + 2
        index += np.clip(qx, 0, w + 1, out=qx).astype(np.int32)
        out = self._flat.take(index)
        return Window(out, x0, y0)

    def iou(self, pose: Pose, reference: Reference) -> float:
        return reference.iou_window(self.window(pose))


def _rot2(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])
