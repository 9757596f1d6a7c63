"""Exact binary silhouettes by ray casting with Open3D's ``RaycastingScene`` (CPU).

A pixel is inside the silhouette when the ray through its centre hits the mesh. The scene is
built once per :class:`SilhouetteRenderer`; rays are cast only inside the silhouette's
bounding box (from the projected convex hull), so a render costs what the object covers.
:meth:`SilhouetteRenderer.cast_pixels` casts any list of pixels (used by :mod:`.band`);
:meth:`SilhouetteRenderer.surface_points` gives where such rays meet the mesh (:mod:`.outline_fit`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .camera import camera_points, mesh_extrinsics, project_camera_points
from .mesh import Mesh
from .pose import Pose


@dataclass(frozen=True)
class Window:
    """A mask of the pixels ``[y0:y0+h, x0:x0+w]``; everything outside is background."""

    mask: np.ndarray
    x0: int
    y0: int

    def full(self, width: int, height: int) -> np.ndarray:
        """The window pasted into an all-false ``height`` x ``width`` mask."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.mask.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return out


class SilhouetteRenderer:
    """Renders the silhouette of one mesh at any pose."""

    def __init__(self, mesh: Mesh):
        import open3d as o3d
        from scipy.spatial import ConvexHull

        self.mesh = mesh
        self._o3d = o3d
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.triangles.astype(np.uint32))
        )
        try:
            self.hull = mesh.vertices[ConvexHull(mesh.vertices).vertices]
        except Exception:  # flat or degenerate meshes: every vertex bounds the silhouette
            self.hull = mesh.vertices
        self._hull_cache: OrderedDict = OrderedDict()  # pose key -> hull_pixels (a few recent)
        self._hull_lock = threading.Lock()  # renderers are shared by the backend's threads

    def hull_pixels(self, pose: Pose) -> np.ndarray | None:
        """Pixel coordinates (N, 2) of the convex hull's vertices, or None when any of them is
        at or behind the camera. The last few are remembered (callers ask again for the
        same pose: its bounds, then its window); treat the array as read-only."""
        key = (*_key(pose), pose.mesh_frame.tobytes())
        with self._hull_lock:
            if key in self._hull_cache:
                return self._hull_cache[key]
        cam = camera_points(pose, self.hull)
        xy = None if np.any(cam[:, 2] <= 1e-9) else project_camera_points(pose, cam)
        with self._hull_lock:
            self._hull_cache[key] = xy
            if len(self._hull_cache) > 4:
                self._hull_cache.popitem(last=False)
        return xy

    def bounds(self, pose: Pose) -> tuple[float, float, float, float] | None:
        """Pixel bounding box (xmin, ymin, xmax, ymax) of the projected mesh, or None when any
        hull point is at or behind the camera (then the whole image is searched)."""
        xy = self.hull_pixels(pose)
        if xy is None:
            return None
        return (*xy.min(axis=0), *xy.max(axis=0))

    def window(self, pose: Pose) -> tuple[int, int, int, int]:
        """Integer pixel window (x0, y0, x1, y1), clipped to the image, holding the silhouette."""
        box = self.bounds(pose)
        if box is None:
            return 0, 0, pose.width, pose.height
        x0 = max(0, math.floor(box[0]))
        y0 = max(0, math.floor(box[1]))
        x1 = min(pose.width, math.ceil(box[2]) + 1)
        y1 = min(pose.height, math.ceil(box[3]) + 1)
        return x0, y0, max(x0, x1), max(y0, y1)

    def render_window(self, pose: Pose) -> Window:
        """The silhouette inside its bounding window (see :class:`Window`)."""
        return self._cast(pose, *self.window(pose))

    def render_full_frame(self, pose: Pose) -> np.ndarray:
        """The silhouette with a ray through every pixel of the image (no bounding box)."""
        return self._cast(pose, 0, 0, pose.width, pose.height).mask

    def _cast(self, pose: Pose, x0: int, y0: int, x1: int, y1: int) -> Window:
        if x1 <= x0 or y1 <= y0:
            return Window(np.zeros((0, 0), dtype=bool), x0, y0)
        rays = self._rays(pose, np.arange(x0, x1)[None, :], np.arange(y0, y1)[:, None])
        hits = self._scene.test_occlusions(self._o3d.core.Tensor(rays)).numpy()
        return Window(hits.astype(bool), x0, y0)

    def cast_pixels(self, pose: Pose, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether the rays through the pixel centres ``(xs[k], ys[k])`` hit the mesh (bool)."""
        return self._scene.test_occlusions(self._o3d.core.Tensor(self._rays(pose, xs, ys))).numpy().astype(bool)

    def surface_points(self, pose: Pose, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the rays through the pixel centres ``(xs[k], ys[k])`` first meet the mesh:
        (the points (M, 3) in mesh-file coordinates, for the rays that hit; hit (N,) bool)."""
        rays = self._rays(pose, np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        distance = self._scene.cast_rays(self._o3d.core.Tensor(rays))["t_hit"].numpy()
        hit = np.isfinite(distance)
        points = rays[hit, :3].astype(float) + rays[hit, 3:].astype(float) * distance[hit, None]
        return points, hit

    def headlit(self, pose: Pose) -> np.ndarray:
        """A grey picture of the model lit from the camera (``pose.height`` x ``pose.width``
        floats: ``|cos|`` of the angle between the surface and the ray, 0-1; NaN where no ray
        hits): a preview that needs no GPU."""
        rays = self._rays(pose, np.arange(pose.width)[None, :], np.arange(pose.height)[:, None])
        found = self._scene.cast_rays(self._o3d.core.Tensor(rays))
        normals = found["primitive_normals"].numpy()
        directions = rays[..., 3:] / np.linalg.norm(rays[..., 3:], axis=-1, keepdims=True)
        light = np.abs((normals * directions).sum(axis=-1))
        return np.where(np.isfinite(found["t_hit"].numpy()), light, np.nan)

    @staticmethod
    def _rays(pose: Pose, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Rays (origin, direction; mesh frame, float32, shape ``broadcast(xs, ys) + (6,)``)
        through the pixel centres (xs, ys): direction ``inv(M) @ ((x - u) / f, (y - v) / f, 1)``,
        one component at a time (about twice as fast as all three at once), the origin's as
        scalars."""
        mat, t = mesh_extrinsics(pose)
        inv = np.linalg.inv(mat)
        dx = (xs - pose.u) / pose.focal
        dy = (ys - pose.v) / pose.focal
        rays = np.empty(np.broadcast_shapes(dx.shape, dy.shape) + (6,), dtype=np.float32)
        for k, origin in enumerate(-inv @ t):
            rays[..., k] = origin
            rays[..., 3 + k] = dx * inv[k, 0] + dy * inv[k, 1] + inv[k, 2]
        return rays

    def render(self, pose: Pose) -> np.ndarray:
        """The full ``pose.height`` x ``pose.width`` boolean silhouette."""
        return self.render_window(pose).full(pose.width, pose.height)


def crop(window: Window, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The pixels ``[y0 : y0 + height, x0 : x0 + width]`` of the image that ``window``
    stands for (background outside it and outside the image)."""
    out = np.zeros((height, width), dtype=bool)
    h, w = window.mask.shape
    ox, oy = window.x0 - x0, window.y0 - y0  # window origin in ``out``
    sx0, sy0 = max(0, -ox), max(0, -oy)
    sx1, sy1 = min(w, out.shape[1] - ox), min(h, out.shape[0] - oy)
    if sx1 > sx0 and sy1 > sy0:
        out[oy + sy0 : oy + sy1, ox + sx0 : ox + sx1] = window.mask[sy0:sy1, sx0:sx1]
    return out


def _key(pose: Pose) -> tuple:
    return (pose.azimuth, pose.elevation, pose.theta, pose.distance, pose.focal, pose.u, pose.v, pose.width, pose.height)
