"""Pose refinement by aligning outlines: damped Gauss-Newton, every step checked by the IoU.

One iteration, at the current pose:

1. Ray cast the silhouette's border pixels (:func:`.masks.border_pixels`): points of the
   model's rim, in mesh coordinates.
2. Residuals in pixels, of two kinds (a two-sided chamfer distance):
   - at each rim point's projection, the reference's signed distance (:mod:`.distance`),
     plus 0.5 (border pixels sit half a pixel inside an outline): pulls the silhouette's
     outline onto the reference's;
   - for each border pixel of the reference, the offset of the nearest rim point's
     projection from it, along the reference outline's normal: pulls the silhouette out to
     the parts of the reference it misses (reference outline more than ``INSIDE_GAP_PX``
     inside the silhouette, an occluder's edge or a hole, is left out).
3. Their Jacobian in the 7 parameters (the projection's derivatives in closed form, the
   rotation's by central differences of the 3x3 matrix), each parameter in units of the
   release's steps (:data:`.search.RELEASE_STEPS`) so that all weigh alike.
4. A Levenberg-Marquardt step with Huber weights (threshold: the median absolute residual,
   at least 1 px); residuals beyond ``max(trim_px, 3 x median)`` are left out.
5. The step is taken only when the ray-cast IoU with the reference improves; otherwise the
   damping grows fourfold and a shorter step is tried (up to 4 times).

It stops when an iteration gains less than ``tol`` IoU or finds no better step. Once steps
are small, candidates are ray cast only about the current silhouette's outline
(:class:`.band.OutlineBand`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .band import AnchoredSilhouettes
from .camera import mesh_extrinsics, rotation
from .distance import SignedDistance
from .iou import Reference
from .masks import border_pixels
from .pose import Pose, pose_or_none
from .render import SilhouetteRenderer, Window
from .search import RELEASE_STEPS

MAX_TRIES = 4  # shorter steps tried per iteration before giving up
INSIDE_GAP_PX = 6.0  # reference outline this far inside the silhouette does not pull it
DAMPING_GROWTH = 4.0  # damping factor after a step that did not raise the IoU


@dataclass
class OutlineFit:
    x: np.ndarray  # the 7 parameters (Pose.vector order)
    value: float  # IoU of the last accepted silhouette (band renders may differ from a full one in a few pixels)
    renders: int  # ray-cast silhouettes, full or band
    iterations: int


class CandidateSilhouettes:
    """Ray-cast IoU of pose vectors; near the last accepted pose, cast only about its outline."""

    def __init__(self, renderer: SilhouetteRenderer, reference: Reference, template: Pose):
        self.silhouettes = AnchoredSilhouettes(renderer)
        self.reference = reference
        self.template = template
        self.renders = 0

    def evaluate(self, x: np.ndarray) -> tuple[float, Window] | None:
        """(IoU, silhouette) at ``x``, or None where ``x`` is no camera (:func:`.pose.pose_or_none`)."""
        pose = pose_or_none(self.template, x)
        if pose is None:
            return None
        window = self.silhouettes.render(pose)
        self.renders += 1
        return self.reference.iou_window(window), window

    def accept(self, x: np.ndarray, window: Window) -> None:
        self.silhouettes.anchor(self.template.with_vector(x), window)


def fit_outline(
    renderer: SilhouetteRenderer,
    reference: Reference,
    pose: Pose,
    max_iterations: int = 40,
    tol: float = 1e-3,
    points: int = 600,
    rim_points: int = 800,
    trim_px: float = 25.0,
    align: bool = True,
    seed: int = 0,
    start: Window | None = None,
) -> OutlineFit:
    """Refine ``pose`` (of ``reference``'s image size) to the reference's outline.

    ``points``: residuals of each kind per iteration (a random subset, fixed by ``seed``);
    ``rim_points``: border pixels cast per iteration. ``align`` first tries matching the
    silhouette's area and centroid by scaling focal and moving (u, v) (kept if the IoU
    improves): it brings far-off starts within reach. ``start``: the silhouette at ``pose``
    when the caller has it (saves a render).
    """
    distance = SignedDistance(reference.mask)
    targets = _reference_border(reference.mask, distance)
    rng = np.random.default_rng(seed)
    candidates = CandidateSilhouettes(renderer, reference, pose)
    x = pose.vector()
    if start is None:
        value, window = candidates.evaluate(x)
    else:
        value, window = reference.iou_window(start), start
    if align:
        aligned = align_moments(reference, pose.with_vector(x), window)
        tried = candidates.evaluate(aligned) if aligned is not None else None
        if tried is not None and tried[0] > value:
            x, (value, window) = aligned, tried
    damping = 1e-2
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        system = _normal_equations(renderer, pose.with_vector(x), window, distance, targets, rng, points, rim_points, trim_px)
        if system is None:
            break
        normal, gradient = system
        regulariser = np.diag(np.diag(normal)) + 1e-6 * np.trace(normal) / 7.0 * np.eye(7)
        gain = None
        for _ in range(MAX_TRIES):
            candidate = x + np.linalg.solve(normal + damping * regulariser, gradient) * RELEASE_STEPS
            tried = candidates.evaluate(candidate)
            if tried is not None and tried[0] > value:
                gain = tried[0] - value
                x, (value, window) = candidate, tried
                candidates.accept(x, window)
                damping = max(damping / 3.0, 1e-4)
                break
            damping *= DAMPING_GROWTH
        if gain is None or gain < tol:
            break
    return OutlineFit(x=x, value=value, renders=candidates.renders, iterations=iterations)


def align_moments(reference: Reference, pose: Pose, window: Window) -> np.ndarray | None:
    """``pose``'s vector with focal scaled and (u, v) moved so that the silhouette ``window``
    has the reference's area and centroid (scaling about (u, v) moves the centroid ``c`` to
    ``(u, v) + s (c - (u, v))``); None for an empty silhouette."""
    ys, xs = np.nonzero(window.mask)
    if len(xs) == 0:
        return None
    centroid = np.array([xs.mean() + window.x0, ys.mean() + window.y0])
    ref_ys, ref_xs = np.nonzero(reference.mask)
    ref_centroid = np.array([ref_xs.mean(), ref_ys.mean()])
    scale = float(np.sqrt(reference.area / len(xs)))
    x = pose.vector()
    origin = x[5:7].copy()
    x[4] *= scale
    x[5:7] = ref_centroid - scale * (centroid - origin)
    return x


def _reference_border(mask: np.ndarray, distance: SignedDistance) -> tuple[np.ndarray, np.ndarray]:
    """The reference's border pixels (M, 2) as (x, y) and the outline's unit normals there."""
    ys, xs = np.nonzero(border_pixels(mask))
    pixels = np.stack([xs, ys], axis=1).astype(float)
    _, gradient = distance.sample(pixels)
    normals = gradient / (np.linalg.norm(gradient, axis=1, keepdims=True) + 1e-12)
    return pixels, normals


def _normal_equations(renderer, pose, window, distance, targets, rng, points, rim_points, trim_px):
    """(J^T W J, -J^T W r) of both residual kinds at ``pose`` (parameters in release steps),
    or None when too few border pixels hit the model."""
    ys, xs = np.nonzero(border_pixels(window.mask))
    keep = random_subset(rng, len(xs), rim_points)
    xs, ys = xs[keep] + window.x0, ys[keep] + window.y0
    rim, hit = renderer.surface_points(pose, xs, ys)
    if len(rim) < 7:
        return None
    projected, jacobian = projection_jacobian(pose, rim)
    # Silhouette outline -> reference outline.
    k = random_subset(rng, len(rim), points)
    signed, gradient = distance.sample(projected[k])
    residuals = [signed + 0.5]
    rows = [gradient[:, :1] * jacobian[k, 0] + gradient[:, 1:] * jacobian[k, 1]]
    # Reference outline -> nearest silhouette outline point.
    ref_pixels, normals = targets
    m = random_subset(rng, len(ref_pixels), points)
    gap, nearest = cKDTree(np.stack([xs[hit], ys[hit]], axis=1)).query(ref_pixels[m])
    # Reference outline deep inside the silhouette is a hole or an occluder's edge, not a
    # part the silhouette misses (the first kind of residual pulls an oversized silhouette in).
    keep = ~(_inside(window, ref_pixels[m]) & (gap > INSIDE_GAP_PX))
    m, nearest = m[keep], nearest[keep]
    residuals.append(np.sum(normals[m] * (projected[nearest] - ref_pixels[m]), axis=1))
    rows.append(normals[m, :1] * jacobian[nearest, 0] + normals[m, 1:] * jacobian[nearest, 1])
    r, jac = np.concatenate(residuals), np.concatenate(rows)
    weights = _huber_weights(r, trim_px)
    normal = jac.T @ (jac * weights[:, None])
    if not np.trace(normal) > 0:
        return None
    return normal, -jac.T @ (weights * r)


def _inside(window: Window, pixels: np.ndarray) -> np.ndarray:
    """Whether integer pixels (N, 2) as (x, y) are in the silhouette ``window``."""
    h, w = window.mask.shape
    x = pixels[:, 0].astype(np.intp) - window.x0
    y = pixels[:, 1].astype(np.intp) - window.y0
    within = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    inside = np.zeros(len(pixels), dtype=bool)
    inside[within] = window.mask[y[within], x[within]]
    return inside


def projection_jacobian(pose: Pose, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel projections (N, 2) of mesh points and their derivatives (N, 2, 7) per release
    step. Camera point ``c = M X + (0, 0, d)`` with ``M = R(a, e, theta) @ mesh_frame``;
    pixel ``f (c_x, c_y) / c_z + (u, v)``. dM/d(angle) by central differences of the 3x3
    rotation (degrees)."""
    mat, t = mesh_extrinsics(pose)
    cam = points @ mat.T + t
    inv_z = 1.0 / cam[:, 2]
    normalised = cam[:, :2] * inv_z[:, None]
    projected = normalised * pose.focal + np.array([pose.u, pose.v])
    # d(pixel)/d(camera point), as rows (N, 2, 3).
    d_cam = np.zeros((len(points), 2, 3))
    d_cam[:, 0, 0] = d_cam[:, 1, 1] = pose.focal * inv_z
    d_cam[:, :, 2] = -pose.focal * normalised * inv_z[:, None]
    jacobian = np.empty((len(points), 2, 7))
    h = 1e-3  # degrees
    angles = {"azimuth": pose.azimuth, "elevation": pose.elevation, "theta": pose.theta}
    for i, name in enumerate(angles):
        plus, minus = dict(angles), dict(angles)
        plus[name] += h
        minus[name] -= h
        d_mat = (rotation(**plus) - rotation(**minus)) @ pose.mesh_frame / (2.0 * h)
        jacobian[:, :, i] = np.einsum("nij,nj->ni", d_cam, points @ d_mat.T)
    jacobian[:, :, 3] = d_cam[:, :, 2]  # distance moves c_z
    jacobian[:, :, 4] = normalised
    jacobian[:, :, 5] = [1.0, 0.0]
    jacobian[:, :, 6] = [0.0, 1.0]
    return projected, jacobian * RELEASE_STEPS


def _huber_weights(residuals: np.ndarray, trim_px: float) -> np.ndarray:
    size = np.abs(residuals)
    spread = max(1.0, float(np.median(size)))
    weights = np.minimum(1.0, spread / np.maximum(size, 1e-12))
    weights[size > max(trim_px, 3.0 * spread)] = 0.0
    return weights


def random_subset(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """Indices of ``count`` of ``n`` items chosen at random, in increasing order (all when fewer)."""
    if n <= count:
        return np.arange(n)
    return np.sort(rng.choice(n, count, replace=False))
