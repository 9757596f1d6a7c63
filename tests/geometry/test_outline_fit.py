"""The fast refiner's parts: border pixels, signed distance, rim points, Jacobian, moment
alignment, and the Gauss-Newton fit itself."""

import math

import numpy as np
import pytest

from geometry.distance import SignedDistance
from geometry.iou import Reference, iou
from geometry.masks import border_pixels, realistic_noise
from geometry.outline_fit import projection_jacobian, align_moments, fit_outline
from geometry.pose import Pose, wrap_degrees
from geometry.procedural import sphere_mesh
from geometry.refine import FALLBACK_GAP, refine_fast, refine_paper
from geometry.render import SilhouetteRenderer
from geometry.search import RELEASE_STEPS

HIDDEN = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)


def disk(width=120, height=90, centre=(50.0, 40.0), radius=30.0) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2


def test_border_pixels_are_the_inside_pixels_next_to_the_outside():
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:30] = True
    border = border_pixels(mask)
    assert np.count_nonzero(border) == 2 * (10 + 20) - 4
    assert not border[6:14, 11:29].any()
    # Pixels on the image's edge border the outside too.
    expected = np.ones((4, 5), bool)
    expected[1:3, 1:4] = False
    np.testing.assert_array_equal(border_pixels(np.ones((4, 5), bool)), expected)


def test_signed_distance_of_a_disk(rng):
    centre, radius = np.array([50.0, 40.0]), 30.0
    distance = SignedDistance(disk(centre=tuple(centre), radius=radius))
    angles = rng.uniform(0, 2 * np.pi, 200)
    offsets = rng.uniform(-12, 12, 200)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = centre + directions * (radius + offsets)[:, None]
    values, gradient = distance.sample(points)
    # Pixelated disk: its outline is within about half a pixel of the true circle.
    np.testing.assert_allclose(values, offsets, atol=0.8)
    radial = np.sum(gradient * directions, axis=1)  # grid distances point roughly radially
    assert np.median(radial) > 0.98 and radial.min() > 0.7
    # Off the image, the distance to the image is added.
    inside_edge, _ = distance.sample(np.array([[0.0, 40.0]]))
    off, _ = distance.sample(np.array([[-10.0, 40.0]]))
    assert off[0] == pytest.approx(inside_edge[0] + 10.0)


def test_surface_points_lie_on_the_near_side_of_a_sphere():
    radius = 0.4
    renderer = SilhouetteRenderer(sphere_mesh(radius, resolution=120))
    pose = Pose(azimuth=30, elevation=20, theta=0, distance=3.0, focal=500, u=80, v=60, width=160, height=120)
    xs, ys = np.meshgrid(np.arange(0, 160, 7), np.arange(0, 120, 7))
    points, hit = renderer.surface_points(pose, xs.ravel(), ys.ravel())
    np.testing.assert_array_equal(hit, renderer.render(pose)[ys.ravel(), xs.ravel()])
    assert 20 < len(points) < hit.size
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), radius, atol=2e-3)
    from geometry.camera import camera_points

    depth = camera_points(pose, points)[:, 2]
    assert np.all(depth < pose.distance)  # the surface facing the camera, not the far side


def test_projection_jacobian_matches_finite_differences_and_the_similarity_moves(car):
    points = car.vertices[::50]
    projected, jacobian = projection_jacobian(HIDDEN, points)
    offset = projected - [HIDDEN.u, HIDDEN.v]
    # u and v: one release step (1 px) moves every point by one pixel.
    np.testing.assert_allclose(jacobian[:, :, 5], np.tile([1.0, 0.0], (len(points), 1)), atol=1e-6)
    np.testing.assert_allclose(jacobian[:, :, 6], np.tile([0.0, 1.0], (len(points), 1)), atol=1e-6)
    # focal: scaling about (u, v), 10 px a step.
    np.testing.assert_allclose(jacobian[:, :, 4], offset / HIDDEN.focal * RELEASE_STEPS[4], atol=1e-6)
    # Every column equals a finite difference of the projection (one release step's 1e-3).
    from geometry.camera import project

    for i, unit in enumerate(RELEASE_STEPS):
        moved = HIDDEN.vector()
        moved[i] += 1e-3 * unit
        difference = (project(HIDDEN.with_vector(moved), points) - projected) / 1e-3
        np.testing.assert_allclose(jacobian[:, :, i], difference, atol=2e-3 * np.abs(difference).max() + 1e-9)
    # theta: rotation about (u, v), 1.8 degrees a step.
    along = np.sum(jacobian[:, :, 2] * offset, axis=1)
    np.testing.assert_allclose(along, 0.0, atol=1e-2 * np.abs(offset).max())
    np.testing.assert_allclose(
        np.linalg.norm(jacobian[:, :, 2], axis=1), np.linalg.norm(offset, axis=1) * math.radians(1.8), rtol=1e-3
    )


def test_moment_alignment_undoes_a_scale_and_shift(car_renderer):
    reference = Reference(car_renderer.render(HIDDEN))
    start = HIDDEN.with_vector(HIDDEN.vector() + [0, 0, 0, 0, -90.0, 14.0, -9.0])
    assert iou(car_renderer.render(start), reference.mask) < 0.6
    aligned = start.with_vector(align_moments(reference, start, car_renderer.render_window(start)))
    assert iou(car_renderer.render(aligned), reference.mask) > 0.95
    assert align_moments(reference, start, car_renderer.render_window(start.with_vector(start.vector() + [0, 0, 0, 0, 0, 900.0, 0]))) is None


def test_fast_refiner_recovers_a_far_start_at_least_as_well_as_algorithm_1(car_renderer):
    """20 degrees of azimuth, a quarter of the scale and 15 px off: the two-sided outline
    fit pulls the silhouette in; the ray-cast IoU guards every step."""
    reference = realistic_noise(car_renderer.render(HIDDEN), np.random.default_rng(5), amplitude_px=1.5)
    start = HIDDEN.with_vector(HIDDEN.vector() + [20.0, -8.0, 6.0, 0.0, -80.0, 15.0, 8.0])
    fast = refine_fast(car_renderer, reference, start)
    paper = refine_paper(car_renderer, reference, start, windowed=True)
    assert fast.iou_initial < 0.6
    assert fast.iou_refined > 0.95 and fast.iou_refined >= paper.iou_refined - 0.005
    error = fast.refined.vector() - HIDDEN.vector()
    assert abs(wrap_degrees(error[0])) < 3.0 and abs(error[1]) < 3.0
    assert fast.renders < 40


def test_fit_never_returns_a_worse_pose_and_is_deterministic(car_renderer):
    """A reference the model cannot match (a disk): whatever the steps, the IoU never drops,
    and Algorithm 1 takes over from the fit."""
    mask = disk(width=300, height=200, centre=(140.0, 110.0), radius=45.0)
    reference = Reference(mask)
    start = HIDDEN
    first = fit_outline(car_renderer, reference, start)
    again = fit_outline(car_renderer, reference, start)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.value >= reference.iou_window(car_renderer.render_window(start))
    result = refine_fast(car_renderer, mask, start)
    assert result.iou_refined >= result.iou_initial
    # The fit ends far under what the disk allows and hands over to the fallback: the
    # coarse restart, then Algorithm 1 from the start, so the result is no lower than
    # Algorithm 1's.
    assert result.details["ceiling"] - result.details["explained"] > FALLBACK_GAP
    assert result.details["restarted"] and result.details["fallback_sweeps"] > 0
    assert result.iou_refined >= first.value - 0.01  # (the fit's value may come from band renders)
    assert result.iou_refined >= refine_paper(car_renderer, mask, start, windowed=True).iou_refined
    assert result.iou_refined == pytest.approx(iou(car_renderer.render(result.refined), mask), abs=1e-12)


@pytest.mark.parametrize("offset", [[5.0, -3.0, -2.5, 0.08, 20.0, -7.0, 6.0], [-4.0, 4.0, 2.0, -0.1, -25.0, 8.0, -5.0]])
def test_an_occluders_edges_inside_the_silhouette_do_not_pull_it(car_renderer, offset):
    """A pole in front of the car cuts a bar out of the reference: its edges lie deep inside
    the silhouette and must not pull the outline (they did: 3-6 degrees of azimuth off)."""
    clean = car_renderer.render(HIDDEN)
    xs = np.nonzero(clean)[1]
    span = xs.max() - xs.min()
    occluded = clean.copy()
    x0 = int(xs.min() + 0.45 * span)
    occluded[:, x0 : x0 + int(0.15 * span)] = False
    start = HIDDEN.with_vector(HIDDEN.vector() + offset)
    result = refine_fast(car_renderer, occluded, start, fallback=False)
    assert iou(car_renderer.render(result.refined), clean) > 0.98
    assert abs(wrap_degrees(result.refined.azimuth - HIDDEN.azimuth)) < 1.5
