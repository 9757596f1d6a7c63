import math

import numpy as np
import pytest

from geometry import camera
from geometry.conventions import pascal3d
from geometry.pose import Pose


def random_pose(rng, width=640, height=480, **overrides):
    values = dict(
        azimuth=rng.uniform(-180, 180), elevation=rng.uniform(-60, 60), theta=rng.uniform(-30, 30),
        distance=rng.uniform(2, 6), focal=rng.uniform(300, 3000), u=rng.uniform(0, width), v=rng.uniform(0, height),
        width=width, height=height,
    )
    values.update(overrides)
    return Pose(**values)


def test_camera_centre_follows_pascal3d_formula(rng):
    for _ in range(20):
        pose = random_pose(rng)
        a, e, d = math.radians(pose.azimuth), math.radians(pose.elevation), pose.distance
        expected = d * np.array([math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e)])
        np.testing.assert_allclose(camera.camera_center(pose), expected, atol=1e-12)


def test_origin_projects_to_principal_point(rng):
    pose = random_pose(rng)
    np.testing.assert_allclose(camera.project(pose, np.zeros((1, 3)))[0], [pose.u, pose.v], atol=1e-9)


def test_azimuth_zero_sees_the_front():
    # Front at -y: a point on the front is nearer to the camera than one on the back.
    pose = Pose(azimuth=0, elevation=0, theta=0, distance=5, focal=500, u=100, v=100, width=200, height=200)
    depth = camera.camera_points(pose, np.array([[0, -1.0, 0], [0, 1.0, 0]]))[:, 2]
    assert depth[0] < depth[1]
    # z up images upwards (smaller y in pixels).
    assert camera.project(pose, np.array([[0, 0, 1.0]]))[0, 1] < 100


def test_projection_equals_pascal3d_project_3d(rng):
    for _ in range(50):
        pose = random_pose(rng)
        points = rng.normal(size=(100, 3)) * 0.5
        viewpoint = pascal3d.from_pose(pose)
        expected = pascal3d.project_3d(viewpoint, points) - 1.0  # 1-based -> 0-based
        np.testing.assert_allclose(camera.project(pose, points), expected, atol=1e-6)


def test_angles_from_rotation_inverts_rotation(rng):
    for _ in range(100):
        a, e, t = rng.uniform(-179, 179), rng.uniform(-85, 85), rng.uniform(-179, 179)
        np.testing.assert_allclose(camera.angles_from_rotation(camera.rotation(a, e, t)), (a, e, t), atol=1e-9)


def test_rescale_maps_pixels_and_round_trips(rng):
    pose = random_pose(rng, width=600, height=400)
    points = rng.normal(size=(20, 3)) * 0.5
    small = pose.rescaled(300, 200)
    # Continuous coordinates (x + 0.5) scale by the size ratio.
    np.testing.assert_allclose(camera.project(small, points) + 0.5, (camera.project(pose, points) + 0.5) / 2, atol=1e-9)
    back = small.rescaled(600, 400)
    np.testing.assert_allclose(back.vector(), pose.vector(), atol=1e-9)


def test_intrinsics_and_extrinsics_are_opencv(rng):
    pose = random_pose(rng)
    points = rng.normal(size=(10, 3))
    k = camera.intrinsics(pose)
    rot, t = camera.extrinsics(pose)
    homogeneous = (k @ (points @ rot.T + t).T).T
    np.testing.assert_allclose(homogeneous[:, :2] / homogeneous[:, 2:], camera.project(pose, points), atol=1e-9)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
