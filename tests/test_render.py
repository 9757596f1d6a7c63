from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from geometry import camera
from geometry.iou import Reference, iou
from geometry.mesh import Mesh
from geometry.pose import Pose
from geometry.procedural import sphere_mesh
from geometry.render import SilhouetteRenderer
from geometry.similarity import BaseSilhouette


def near_boundary(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """Pixels within ``pixels`` of the boundary of ``mask`` (either side)."""
    return ndimage.binary_dilation(mask, iterations=pixels) & ~ndimage.binary_erosion(mask, iterations=pixels)


def test_sphere_renders_as_the_predicted_ellipse():
    radius, centre = 0.4, np.array([0.6, 0.3, 0.2])  # off the optical axis: a true ellipse
    sphere = sphere_mesh(radius, resolution=160)
    mesh = Mesh(vertices=sphere.vertices + centre, triangles=sphere.triangles)
    pose = Pose(azimuth=25, elevation=15, theta=10, distance=3.0, focal=700, u=200, v=150, width=420, height=320)
    rendered = SilhouetteRenderer(mesh).render(pose)

    # Geometry: pixel p is inside iff its ray m = K^-1 p makes an angle <= asin(r/|c|) with
    # the sphere centre c (camera frame): (m.c)^2 >= |m|^2 (|c|^2 - r^2), m.c > 0.
    c = camera.camera_points(pose, centre[None])[0]
    ys, xs = np.mgrid[0 : pose.height, 0 : pose.width]
    m = np.stack([(xs - pose.u) / pose.focal, (ys - pose.v) / pose.focal, np.ones_like(xs, float)], axis=-1)
    dot = m @ c
    predicted = (dot > 0) & (dot**2 >= (m**2).sum(-1) * (c @ c - radius**2))

    assert predicted.sum() > 5000 and not np.isclose(predicted.sum(0).max(), predicted.sum(1).max())
    assert iou(rendered, predicted) > 0.99
    assert not np.any((rendered ^ predicted) & ~near_boundary(predicted, 1))


def rasterise_triangles(mesh: Mesh, pose: Pose) -> np.ndarray:
    """Independent rasteriser: fill every projected triangle (pixel centres inside)."""
    from skimage.draw import polygon

    xy = camera.project(pose, mesh.vertices)
    out = np.zeros((pose.height, pose.width), dtype=bool)
    for tri in mesh.triangles:
        rr, cc = polygon(xy[tri, 1], xy[tri, 0], shape=out.shape)
        out[rr, cc] = True
    return out


@pytest.mark.parametrize("azimuth,elevation,theta", [(30, 10, 0), (160, 25, -8), (-95, 5, 12)])
def test_raycast_mask_matches_independent_rasterisation(car, azimuth, elevation, theta):
    pose = Pose(azimuth=azimuth, elevation=elevation, theta=theta, distance=2.0, focal=420, u=160, v=120, width=320, height=240)
    rendered = SilhouetteRenderer(car).render(pose)
    expected = rasterise_triangles(car, pose)
    assert rendered.sum() > 3000
    assert not np.any((rendered ^ expected) & ~near_boundary(expected, 1))


def test_windowed_and_full_frame_renders_agree(car_renderer, rng):
    for _ in range(5):
        pose = Pose(azimuth=rng.uniform(0, 360), elevation=rng.uniform(0, 40), theta=rng.uniform(-10, 10),
                    distance=rng.uniform(1.5, 3), focal=400, u=rng.uniform(60, 240), v=rng.uniform(50, 150),
                    width=300, height=200)
        np.testing.assert_array_equal(car_renderer.render(pose), car_renderer.render_full_frame(pose))


def test_improper_mesh_frame_renders_the_mirror_image(car_renderer):
    """Mirroring the model in x and the camera to azimuth -a flips the image left-right."""
    pose = Pose(azimuth=40, elevation=10, theta=0, distance=2, focal=400, u=149.5, v=100, width=300, height=200)
    mirrored = replace(pose, azimuth=-40.0, mesh_frame=np.diag([-1.0, 1.0, 1.0]))
    original = car_renderer.render(pose)
    flipped = car_renderer.render(mirrored)
    assert not np.array_equal(flipped, original)
    assert not np.any((flipped ^ original[:, ::-1]) & ~near_boundary(flipped, 1))
    assert np.count_nonzero(flipped ^ original[:, ::-1]) < 10


def test_similarity_lookup_matches_exact_render_up_to_boundary(car_renderer, rng):
    pose = Pose(azimuth=50, elevation=15, theta=0, distance=2, focal=400, u=150, v=100, width=300, height=200)
    base = BaseSilhouette(car_renderer, pose, supersample=2.0)
    for _ in range(5):
        moved = pose.with_vector(pose.vector() + [0, 0, rng.uniform(-10, 10), 0, rng.uniform(-40, 40), rng.uniform(-15, 15), rng.uniform(-15, 15)])
        exact = car_renderer.render(moved)
        looked_up = base.window(moved).full(moved.width, moved.height)
        assert not np.any((exact ^ looked_up) & ~near_boundary(exact, 1))
        reference = Reference(exact)
        assert base.iou(moved, reference) > 0.97


def test_reference_iou_window_equals_full_iou(car_renderer, rng):
    pose = Pose(azimuth=50, elevation=15, theta=0, distance=2, focal=400, u=150, v=100, width=300, height=200)
    reference_mask = car_renderer.render(pose.with_vector(pose.vector() + [5, 0, 2, 0, 10, 4, -3]))
    reference = Reference(reference_mask)
    window = car_renderer.render_window(pose)
    assert reference.iou_window(window) == pytest.approx(iou(window.full(300, 200), reference_mask), abs=1e-12)
