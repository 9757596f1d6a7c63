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


def test_reference_iou_window_equals_full_iou(car_renderer, rng):
    pose = Pose(azimuth=50, elevation=15, theta=0, distance=2, focal=400, u=150, v=100, width=300, height=200)
    reference_mask = car_renderer.render(pose.with_vector(pose.vector() + [5, 0, 2, 0, 10, 4, -3]))
    reference = Reference(reference_mask)
    window = car_renderer.render_window(pose)
    assert reference.iou_window(window) == pytest.approx(iou(window.full(300, 200), reference_mask), abs=1e-12)


def plane_mesh() -> Mesh:
    """An aircraft-like test mesh: fuselage box, thin wing and tail plates (0.01 thick: a few
    pixels at the poses below), a fin and a thin wire antenna."""
    import open3d as o3d

    parts = []
    for size, centre in [
        ((0.12, 1.0, 0.12), (0.0, 0.0, 0.0)),  # fuselage
        ((1.1, 0.18, 0.01), (0.0, -0.02, 0.0)),  # wing
        ((0.4, 0.1, 0.01), (0.0, 0.42, 0.03)),  # tail plane
        ((0.01, 0.12, 0.18), (0.0, 0.43, 0.12)),  # fin
        ((0.006, 0.006, 0.12), (0.0, -0.25, 0.12)),  # antenna
    ]:
        box = o3d.geometry.TriangleMesh.create_box(*size)
        box.translate(np.asarray(centre) - np.asarray(size) / 2.0)
        parts.append(box)
    vertices = np.vstack([np.asarray(p.vertices) for p in parts])
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    triangles = np.vstack([np.asarray(p.triangles) + o for p, o in zip(parts, offsets)]).astype(np.int32)
    return Mesh(vertices=vertices, triangles=triangles, name="test-plane")


@pytest.mark.parametrize("mesh_name", ["car", "plane"])
def test_band_render_equals_full_render_for_algorithm_1_moves(car, mesh_name, rng):
    """Every +-alpha*eps candidate of Algorithm 1's last levels, ray cast only in the band
    about a nearby anchor's outline, is the full render, thin wings, fin and wire included."""
    from geometry.band import OutlineBand
    from geometry.search import RELEASE_STEPS

    renderer = SilhouetteRenderer(car if mesh_name == "car" else plane_mesh())
    checked = 0
    for _ in range(4):
        anchor_pose = Pose(azimuth=rng.uniform(0, 360), elevation=rng.uniform(-5, 30), theta=rng.uniform(-10, 10),
                           distance=rng.uniform(1.6, 2.4), focal=420, u=rng.uniform(130, 170), v=rng.uniform(90, 110),
                           width=300, height=200)
        band = OutlineBand(renderer, anchor_pose, renderer.render_window(anchor_pose))
        for alpha in (0.25, 0.5):
            for i in range(7):
                for sign in (1, -1):
                    pose = anchor_pose.with_vector(anchor_pose.vector() + sign * alpha * RELEASE_STEPS * np.eye(7)[i])
                    window = band.render(pose)
                    assert window is not None, "a last-level step of Algorithm 1 fits the band"
                    np.testing.assert_array_equal(window.full(300, 200), renderer.render(pose))
                    checked += 1
    assert checked == 4 * 2 * 14


def test_band_refuses_poses_too_far_from_its_anchor(car_renderer):
    from geometry.band import OutlineBand

    pose = Pose(azimuth=30, elevation=10, theta=0, distance=2, focal=400, u=150, v=100, width=300, height=200)
    band = OutlineBand(car_renderer, pose, car_renderer.render_window(pose), max_radius=6)
    far = pose.with_vector(pose.vector() + [0, 0, 0, 0, 0, 8.0, 0])  # every point moves 8 px
    assert band.radius(far) is None and band.render(far) is None
    near = pose.with_vector(pose.vector() + [0, 0, 0, 0, 0, 0.25, 0])
    assert band.radius(near) == 2
    # Only pixels within 2 px of the outline are cast: far fewer than the window holds.
    ys, xs = band.pixels(2)
    assert len(ys) < 0.5 * car_renderer.render_window(pose).mask.size
