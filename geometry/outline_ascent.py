"""IoU ascent: steps along the gradient of the silhouette IoU itself, from its outline.

The outline fit (:mod:`.outline_fit`) minimises outline distances, whose optimum is not the
IoU's on a ragged or partial reference (a CNN's mask) and whose pixel-quantised residuals
stall it short of the optimum. This module goes on from there on the IoU itself:

1. **Sub-pixel outline points.** From each border pixel of the silhouette, rays are cast
   along the silhouette's outward normal and the crossing is bisected (``levels`` times:
   bracketed to 1/8 px for 3, its midpoint taken); the surface point hit by the last inside ray moves with the model, so the
   outline's normal speed per parameter is ``n . J`` with ``J`` the projection's Jacobian
   (:func:`.outline_fit.projection_jacobian`, per release step).
2. **The IoU's gradient.** Moving the outline out by ``dt`` at a point adds ``dt`` of area,
   inside the reference with weight ``s`` (the reference sampled bilinearly there): the
   intersection ``I`` grows by ``s dt``, the union ``U`` by ``(1 - s) dt``, so
   ``d IoU = sum_k (s_k (1 + IoU) - IoU) v_k . dx / U``: a point pushes out where the
   reference covers more than ``IoU / (1 + IoU)`` of it, in where less.
3. **The step.** ``dx = N^-1 g`` with ``N`` the mean ``v v^T`` (so a step's size is measured
   as the outline's RMS displacement, in pixels, whatever the parameters): tried at
   ``scale`` px RMS, taken when the ray-cast IoU improves (then the next try is 1.5x
   longer), else halved; it stops under ``min_scale`` px or after ``max_iterations``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .distance import bilinear
from .iou import Reference
from .masks import border_pixels
from .outline_fit import CandidateSilhouettes, projection_jacobian, random_subset
from .pose import Pose
from .render import SilhouetteRenderer, Window
from .search import RELEASE_STEPS

BISECTION_LEVELS = 3  # the crossing is bracketed to 1/2**levels px (1/8), its midpoint taken
STEP_GROWTH = 1.5  # next try's length after a step that raised the IoU


@dataclass
class OutlinePoints:
    """Silhouette outline samples that hit the model (border pixels moved out to the outline)."""

    pixels: np.ndarray  # (K, 2) x, y: the outline's estimated position
    normals: np.ndarray  # (K, 2) outward unit normals of the silhouette
    surface: np.ndarray  # (K, 3) mesh points just inside the outline (they move with the model)


@dataclass
class Ascent:
    x: np.ndarray  # the 7 parameters (Pose.vector order)
    value: float  # IoU of the last accepted silhouette (band renders; confirm with a full one)
    renders: int
    iterations: int


def outline_points(
    renderer: SilhouetteRenderer, pose: Pose, window: Window, xs: np.ndarray, ys: np.ndarray,
    levels: int = BISECTION_LEVELS,
) -> OutlinePoints:
    """The outline crossing along the outward normal of each border pixel ``(xs, ys)`` (image
    pixels, inside ``window``, the silhouette at ``pose``), bisected between the pixel centre
    (inside) and one pixel out."""
    smooth = ndimage.gaussian_filter(np.pad(window.mask.astype(float), 2), 1.0)
    grad_y, grad_x = np.gradient(smooth)
    col, row = xs - window.x0 + 2, ys - window.y0 + 2
    normals = -np.stack([grad_x[row, col], grad_y[row, col]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    inside, outside = np.zeros(len(xs)), np.ones(len(xs))
    for _ in range(levels):
        middle = 0.5 * (inside + outside)
        hit = renderer.cast_pixels(pose, xs + middle * normals[:, 0], ys + middle * normals[:, 1])
        inside, outside = np.where(hit, middle, inside), np.where(hit, outside, middle)
    last_x, last_y = xs + inside * normals[:, 0], ys + inside * normals[:, 1]
    surface, hit = renderer.surface_points(pose, last_x, last_y)
    crossing = 0.5 * (inside + outside)
    pixels = np.stack([xs + crossing * normals[:, 0], ys + crossing * normals[:, 1]], axis=1)
    return OutlinePoints(pixels=pixels[hit], normals=normals[hit], surface=surface)


def ascent_direction(
    renderer: SilhouetteRenderer, reference: Reference, pose: Pose, window: Window, value: float,
    rng: np.random.Generator, points: int = 800,
) -> np.ndarray | None:
    """The IoU's steepest ascent at ``pose`` (``window``: its silhouette, ``value``: its IoU)
    in release steps, scaled to move the outline 1 px RMS; None when too few outline points
    hit the model. ``points`` border pixels are used (a random subset)."""
    ys, xs = np.nonzero(border_pixels(window.mask))
    keep = random_subset(rng, len(xs), points)
    outline = outline_points(renderer, pose, window, xs[keep] + window.x0, ys[keep] + window.y0)
    # Where the image edge cuts the silhouette there is no outline to move: leave it out.
    x, y = outline.pixels[:, 0], outline.pixels[:, 1]
    within = (x >= 0) & (x <= reference.width - 1) & (y >= 0) & (y <= reference.height - 1)
    if np.count_nonzero(within) < 7:
        return None
    _, jacobian = projection_jacobian(pose, outline.surface[within])
    speed = np.einsum("ki,kij->kj", outline.normals[within], jacobian)  # outward px per release step
    covered = bilinear(reference.mask.astype(float), outline.pixels[within])
    gradient = ((covered * (1.0 + value) - value)[:, None] * speed).sum(axis=0)
    metric = speed.T @ speed / len(speed)
    metric += 1e-6 * np.trace(metric) / 7.0 * np.eye(7)
    direction = np.linalg.solve(metric, gradient)
    length = float(np.sqrt(direction @ metric @ direction))
    return direction / length if length > 0 else None


def ascend_iou(
    renderer: SilhouetteRenderer, reference: Reference, pose: Pose, x: np.ndarray, value: float, window: Window,
    max_iterations: int = 20, scale: float = 1.0, min_scale: float = 0.125, seed: int = 0,
) -> Ascent:
    """Raise the IoU from the pose vector ``x`` (of ``pose``'s image size; ``window``: its
    silhouette, ``value``: its IoU) by steps along :func:`ascent_direction`, each taken only
    when the ray-cast IoU improves (candidates cast about the last accepted outline)."""
    candidates = CandidateSilhouettes(renderer, reference, pose)
    candidates.accept(x, window)
    rng = np.random.default_rng(seed)
    iterations = 0
    while iterations < max_iterations and scale >= min_scale:
        iterations += 1
        direction = ascent_direction(renderer, reference, pose.with_vector(x), window, value, rng)
        if direction is None:
            break
        while scale >= min_scale:
            candidate = x + scale * direction * RELEASE_STEPS
            tried = candidates.evaluate(candidate)
            if tried is not None and tried[0] > value:
                x, (value, window) = candidate, tried
                candidates.accept(x, window)
                scale *= STEP_GROWTH
                break
            scale *= 0.5
    return Ascent(x=x, value=value, renders=candidates.renders, iterations=iterations)

