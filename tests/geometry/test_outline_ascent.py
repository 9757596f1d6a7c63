"""The IoU ascent (geometry/outline_ascent.py) and the reference's outline ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geometry.iou import Reference, iou
from geometry.masks import border_pixels, explained_iou, outline_ceiling, realistic_noise
from geometry.outline_ascent import ascend_iou, ascent_direction, outline_points
from geometry.outline_fit import fit_outline
from geometry.pose import Pose
from geometry.procedural import sphere_mesh
from geometry.render import SilhouetteRenderer
from geometry.search import RELEASE_STEPS

HIDDEN = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)


def test_outline_points_find_a_spheres_outline_within_a_fraction_of_a_pixel():
    """A sphere of radius R at distance d, centred on (u, v), projects to a circle of radius
    f R / sqrt(d^2 - R^2). Border pixel centres lie up to a pixel inside it; the bisected
    outline points within about 1/8 px (plus the tessellation's)."""
    radius, distance, focal = 0.5, 3.0, 150.0
    renderer = SilhouetteRenderer(sphere_mesh(radius, resolution=200))
    pose = Pose(azimuth=30, elevation=20, theta=0, distance=distance, focal=focal, u=80.3, v=60.6, width=160, height=120)
    window = renderer.render_window(pose)
    ys, xs = np.nonzero(border_pixels(window.mask))
    xs, ys = xs + window.x0, ys + window.y0
    outline = outline_points(renderer, pose, window, xs, ys)
    circle = focal * radius / math.sqrt(distance**2 - radius**2)
    centre = np.array([pose.u, pose.v])
    pixel_error = np.abs(np.hypot(xs - pose.u, ys - pose.v) - circle)
    outline_error = np.abs(np.linalg.norm(outline.pixels - centre, axis=1) - circle)
    assert len(outline.pixels) > 0.95 * len(xs)
    assert pixel_error.mean() > 0.3
    assert outline_error.mean() < 0.1 and outline_error.max() < 0.25
    # Normals point out of the circle; the surface points lie on the sphere.
    radial = (outline.pixels - centre) / np.linalg.norm(outline.pixels - centre, axis=1, keepdims=True)
    assert np.min(np.sum(radial * outline.normals, axis=1)) > 0.9
    np.testing.assert_allclose(np.linalg.norm(outline.surface, axis=1), radius, atol=2e-3)


def test_the_ascent_direction_raises_the_iou(car_renderer):
    reference = Reference(car_renderer.render(HIDDEN))
    for offset in ([0, 0, 0, 0, 12.0, 0, 0], [0, 0, 0, 0, 0, 2.0, -1.5], [2.0, 0, 0, 0, 0, 0, 0]):
        pose = HIDDEN.with_vector(HIDDEN.vector() + offset)
        window = car_renderer.render_window(pose)
        value = reference.iou_window(window)
        direction = ascent_direction(car_renderer, reference, pose, window, value, np.random.default_rng(0))
        step = pose.with_vector(pose.vector() + 0.5 * direction * RELEASE_STEPS)
        assert reference.iou_window(car_renderer.render_window(step)) > value
        # It moves back towards the hidden pose: the offset's parameters change against it.
        moved = direction * RELEASE_STEPS
        changed = np.flatnonzero(offset)
        assert np.all(moved[changed] * np.asarray(offset)[changed] < 0)


def test_the_ascent_goes_on_where_the_outline_fit_stops_on_a_ragged_reference(car_renderer):
    """On a CNN-like reference the outline fit's optimum is not the IoU's: the ascent raises
    it, returns the better pose, and is deterministic."""
    mask = realistic_noise(car_renderer.render(HIDDEN), np.random.default_rng(0), amplitude_px=3.0)
    reference = Reference(mask)
    start = HIDDEN.with_vector(HIDDEN.vector() + [4.0, -3.0, 2.0, 0.05, 15.0, 5.0, -4.0])
    fit = fit_outline(car_renderer, reference, start)
    window = car_renderer.render_window(start.with_vector(fit.x))
    value = reference.iou_window(window)
    first = ascend_iou(car_renderer, reference, start, fit.x, value, window)
    again = ascend_iou(car_renderer, reference, start, fit.x, value, window)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.iterations > 0 and first.renders > 0
    assert first.value > value + 1e-3
    # Its value comes from band renders: a full render agrees to a few pixels.
    assert abs(iou(car_renderer.render(start.with_vector(first.x)), mask) - first.value) < 1e-3


def test_outline_ceiling_is_what_a_smooth_outline_allows():
    ys, xs = np.mgrid[0:200, 0:300]
    disk = (xs - 150) ** 2 + (ys - 100) ** 2 <= 60**2
    assert outline_ceiling(disk) > 0.99
    # Pixels within 2 px of the outline flipped at random: a ragged edge, not a smooth one.
    edge = np.abs(np.hypot(xs - 150, ys - 100) - 60) < 2
    ragged = disk ^ (edge & (np.random.default_rng(0).random(disk.shape) < 0.3))
    assert outline_ceiling(ragged) < outline_ceiling(disk) - 0.005
    assert outline_ceiling(np.zeros((20, 30), bool)) == 1.0


def test_explained_iou_leaves_out_what_no_pose_explains():
    ys, xs = np.mgrid[0:200, 0:300]
    disk = (xs - 150) ** 2 + (ys - 100) ** 2 <= 60**2
    # An occluder's bite out of the reference and a second object merged into it: thick
    # disagreements, left out of the union.
    bitten = disk & ((xs - 210) ** 2 + (ys - 100) ** 2 > 25**2)
    merged = disk | ((xs > 200) & (xs < 260) & (ys > 120) & (ys < 170))
    for reference in (bitten, merged):
        assert iou(disk, reference) < 0.93
        assert explained_iou(disk, reference) > 0.99
    # A silhouette 2 px off (a pose slightly wrong) disagrees in strips thinner than an
    # occluder: it keeps them. One 10 px off disagrees thickly both ways: half stays.
    near = (xs - 152) ** 2 + (ys - 100) ** 2 <= 60**2
    assert explained_iou(near, disk) == pytest.approx(iou(near, disk))
    far = (xs - 160) ** 2 + (ys - 100) ** 2 <= 60**2
    assert iou(far, disk) < explained_iou(far, disk) < 0.9
    assert explained_iou(disk, ~disk) == 0.0
    assert explained_iou(np.zeros((20, 30), bool), np.zeros((20, 30), bool)) == 1.0
