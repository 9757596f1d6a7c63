import json
import math

import numpy as np
import pytest

from geometry.camera import project
from geometry.conventions.seed import MESH_FRAME as SEED_FRAME
from geometry.iou import iou
from geometry.keypoints import (
    KeypointError,
    fit_pose_to_keypoints,
    keypoints_for_mesh,
    keypoints_path,
    load_keypoints,
    project_keypoints,
)
from geometry.pose import Pose, wrap_degrees
from geometry.procedural_keypoints import car_keypoints
from tests.support.data import data_path

WIDTH, HEIGHT = 300, 200


def random_pose(rng, mesh_frame=np.eye(3)) -> Pose:
    """A realistic photo of a ~1-unit-long object: focal 0.8-2 x width, distance 1.5-4."""
    return Pose(
        azimuth=rng.uniform(0, 360),
        elevation=rng.uniform(-10, 40),
        theta=rng.uniform(-5, 5),
        distance=rng.uniform(1.5, 4.0),
        focal=rng.uniform(0.8, 2.0) * WIDTH,
        u=WIDTH / 2 + rng.uniform(-30, 30),
        v=HEIGHT / 2 + rng.uniform(-20, 20),
        width=WIDTH,
        height=HEIGHT,
        mesh_frame=mesh_frame,
    )


def clicks(pose, keypoints, rng=None, sigma=0.0) -> dict:
    """The keypoints' pixels under ``pose``, plus Gaussian noise of ``sigma`` px."""
    xy = project(pose, np.array(list(keypoints.values())))
    if sigma:
        xy = xy + rng.normal(0.0, sigma, xy.shape)
    return dict(zip(keypoints, xy))


def angle_errors(fit, pose) -> tuple[float, float, float]:
    return (
        abs(wrap_degrees(fit.pose.azimuth - pose.azimuth)),
        abs(fit.pose.elevation - pose.elevation),
        abs(wrap_degrees(fit.pose.theta - pose.theta)),
    )


def subset(keypoints, count, rng) -> dict:
    names = rng.choice(sorted(keypoints), count, replace=False)
    return {n: keypoints[n] for n in names}


# -- keypoint files --------------------------------------------------------------------------


def test_load_keypoints_reads_pascal3d_json(tmp_path):
    path = tmp_path / "car_keypoints.json"
    path.write_text(json.dumps({"left_front_wheel": [-0.15, -0.28, -0.06], "nose": [0, -0.4, 0.0]}))
    points = load_keypoints(path)
    assert set(points) == {"left_front_wheel", "nose"}
    np.testing.assert_array_equal(points["left_front_wheel"], [-0.15, -0.28, -0.06])
    assert points["nose"].dtype == float


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read keypoints as JSON"),
        ("[1, 2, 3]", "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"wheel": [1, 2]}', "'wheel' must be 3 finite numbers"),
        ('{"wheel": ["a", 2, 3]}', "'wheel' must be 3 finite numbers"),
        ('{"wheel": [NaN, 2, 3]}', "'wheel' must be 3 finite numbers"),
        ('{"wheel": 3}', "'wheel' must be 3 finite numbers"),
    ],
)
def test_load_keypoints_names_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad_keypoints.json"
    path.write_text(content)
    with pytest.raises(KeypointError, match=message):
        load_keypoints(path)


def test_load_keypoints_missing_file(tmp_path):
    with pytest.raises(KeypointError, match="keypoint file not found"):
        load_keypoints(tmp_path / "nope.json")


def test_keypoints_for_mesh_finds_the_file_beside_the_mesh(tmp_path):
    mesh = tmp_path / "car07.off"
    assert keypoints_path(mesh) == tmp_path / "car07_keypoints.json"
    assert keypoints_for_mesh(mesh) is None
    keypoints_path(mesh).write_text('{"nose": [0, -0.5, 0]}')
    np.testing.assert_array_equal(keypoints_for_mesh(mesh)["nose"], [0, -0.5, 0])


def test_procedural_car_keypoints_lie_on_the_mesh(car):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(car.vertices.astype(np.float32)), o3d.core.Tensor(car.triangles.astype(np.uint32))
    )
    points = np.array(list(car_keypoints().values()), dtype=np.float32)
    assert scene.compute_distance(o3d.core.Tensor(points)).numpy().max() < 1e-5


def test_project_keypoints_applies_the_mesh_frame(rng):
    """Mesh-file keypoints under a frame image like their canonical coordinates without one."""
    keypoints = car_keypoints()
    pose = random_pose(rng, mesh_frame=SEED_FRAME)
    projected = project_keypoints(pose, keypoints)
    canonical = {name: SEED_FRAME @ point for name, point in keypoints.items()}
    plain = Pose(*pose.vector(), WIDTH, HEIGHT)  # same numbers, identity frame
    for name, xy in project_keypoints(plain, canonical).items():
        np.testing.assert_allclose(xy, projected[name], atol=1e-9)
    assert project_keypoints(pose, {}) == {}


# -- synthetic fits --------------------------------------------------------------------------


def test_all_points_without_noise_recover_the_pose_exactly(rng):
    keypoints = car_keypoints()
    for _ in range(10):
        pose = random_pose(rng)
        fit = fit_pose_to_keypoints(keypoints, clicks(pose, keypoints), WIDTH, HEIGHT, focal_weight=0.0)
        assert fit.rms < 1e-3
        assert max(angle_errors(fit, pose)) < 1e-3
        np.testing.assert_allclose(fit.pose.vector()[3:], pose.vector()[3:], rtol=1e-5, atol=1e-4)
        assert fit.num_points == 12 and not fit.ambiguous and not fit.poor
        assert max(fit.errors.values()) < 3e-3


def test_the_focal_prior_barely_biases_a_clean_fit(rng):
    """With the default prior (centred at 1.155 x width, while the true focal is 0.8-2 x
    width) clean clicks are still fitted to a fraction of a pixel; centred on the true focal
    the prior costs nothing."""
    keypoints = car_keypoints()
    for _ in range(10):
        pose = random_pose(rng)
        image_points = clicks(pose, keypoints)
        fit = fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT)
        assert fit.rms < 0.2
        assert max(angle_errors(fit, pose)[:2]) < 0.3
        exact = fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT, focal_prior=pose.focal)
        assert exact.rms < 1e-3


@pytest.mark.parametrize("count, max_azimuth, max_elevation", [(4, 5.0, 3.0), (6, 2.0, 1.0)])
def test_few_points_without_noise(count, max_azimuth, max_elevation):
    rng = np.random.default_rng(count)
    for _ in range(15):
        pose = random_pose(rng)
        keypoints = subset(car_keypoints(), count, rng)
        fit = fit_pose_to_keypoints(keypoints, clicks(pose, keypoints), WIDTH, HEIGHT)
        assert fit.rms < 0.5
        azimuth, elevation, _ = angle_errors(fit, pose)
        assert azimuth < max_azimuth and elevation < max_elevation


@pytest.mark.parametrize("count, max_azimuth", [(12, 3.0), (6, 6.0)])
def test_one_pixel_noise(count, max_azimuth):
    rng = np.random.default_rng(100 + count)
    rms, azimuths = [], []
    for _ in range(15):
        pose = random_pose(rng)
        keypoints = subset(car_keypoints(), count, rng)
        fit = fit_pose_to_keypoints(keypoints, clicks(pose, keypoints, rng, sigma=1.0), WIDTH, HEIGHT)
        rms.append(fit.rms)
        azimuths.append(angle_errors(fit, pose)[0])
    # 2N residuals, 7 parameters: rms of the 2D error ~ sigma * sqrt(2 (2N - 7) / 2N).
    expected = math.sqrt(2 * (2 * count - 7) / (2 * count))
    assert 0.6 * expected < np.median(rms) < 1.3 * expected
    assert max(rms) < 2.0
    assert max(azimuths) < max_azimuth and np.median(azimuths) < max_azimuth / 3


def test_an_improper_mesh_frame_is_fitted_like_the_vertices(rng):
    """Keypoints in ShapeNet OBJ coordinates under the release's mirrored frame."""
    obj_points = {name: SEED_FRAME.T @ point for name, point in car_keypoints().items()}  # SEED_FRAME is orthogonal
    pose = random_pose(rng, mesh_frame=SEED_FRAME)
    fit = fit_pose_to_keypoints(obj_points, clicks(pose, obj_points), WIDTH, HEIGHT, mesh_frame=SEED_FRAME)
    assert fit.rms < 0.2 and max(angle_errors(fit, pose)[:2]) < 0.3
    np.testing.assert_array_equal(fit.pose.mesh_frame, SEED_FRAME)


def test_initial_pose_is_used_as_a_start_and_gives_its_frame(rng):
    keypoints = car_keypoints()
    pose = random_pose(rng, mesh_frame=SEED_FRAME)
    obj_points = {name: SEED_FRAME.T @ point for name, point in keypoints.items()}
    start = pose.with_vector(pose.vector() + [8, -4, 2, 0.3, 40, 10, -5]).rescaled(600, 400)
    fit = fit_pose_to_keypoints(obj_points, clicks(pose, obj_points), WIDTH, HEIGHT, initial=start)
    np.testing.assert_array_equal(fit.pose.mesh_frame, SEED_FRAME)
    assert (fit.pose.width, fit.pose.height) == (WIDTH, HEIGHT)
    assert fit.rms < 0.2


def test_front_back_look_alike_is_flagged_ambiguous():
    """Four wheel centres seen from far away look the same from the front and the back."""
    wheels = {n: p for n, p in car_keypoints().items() if n.endswith("_wheel")}
    far = Pose(azimuth=40, elevation=25, theta=0, distance=20, focal=2400, u=150, v=100, width=WIDTH, height=HEIGHT)
    fit = fit_pose_to_keypoints(wheels, clicks(far, wheels), WIDTH, HEIGHT)
    assert fit.ambiguous
    azimuths = sorted(abs(wrap_degrees(p.azimuth - far.azimuth)) for p in (fit.pose, fit.alternative))
    assert azimuths[0] < 3.0 and azimuths[1] > 170.0
    near = far.with_vector([40, 25, 0, 2.5, 300, 150, 100])
    assert not fit_pose_to_keypoints(car_keypoints(), clicks(near, car_keypoints()), WIDTH, HEIGHT).ambiguous


def test_clicks_no_pose_can_explain_are_flagged_poor(rng):
    keypoints = car_keypoints()
    image_points = {name: rng.uniform(0, [WIDTH, HEIGHT]) for name in keypoints}
    fit = fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT)
    assert fit.poor and fit.rms > 5.0


def test_unknown_names_are_ignored_and_reported(rng):
    keypoints = car_keypoints()
    pose = random_pose(rng)
    image_points = clicks(pose, keypoints) | {"propeller": np.array([10.0, 20.0])}
    fit = fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT)
    assert fit.ignored == ["propeller"] and "propeller" not in fit.errors and fit.num_points == 12
    json.dumps(fit.to_dict())


# -- bad input -------------------------------------------------------------------------------


def test_three_points_are_too_few():
    keypoints = car_keypoints()
    three = dict(list(clicks(Pose(30, 10, 0, 2.5, 350, 150, 100, WIDTH, HEIGHT), keypoints).items())[:3])
    with pytest.raises(ValueError, match="at least 4 .* got 3 clicked, 3 known"):
        fit_pose_to_keypoints(keypoints, three, WIDTH, HEIGHT)


def test_unknown_names_leaving_too_few_are_named():
    keypoints = car_keypoints()
    image_points = dict(list(clicks(Pose(30, 10, 0, 2.5, 350, 150, 100, WIDTH, HEIGHT), keypoints).items())[:3])
    image_points |= {"nose": np.array([1.0, 2.0]), "tail": np.array([3.0, 4.0])}
    with pytest.raises(ValueError, match="got 5 clicked, 3 known; names unknown to the model: nose, tail"):
        fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT)


@pytest.mark.parametrize("which", ["image", "model"])
def test_nan_coordinates_are_named(which):
    keypoints = car_keypoints()
    image_points = clicks(Pose(30, 10, 0, 2.5, 350, 150, 100, WIDTH, HEIGHT), keypoints)
    target = image_points if which == "image" else keypoints
    target["left_front_wheel"] = target["left_front_wheel"] * np.nan
    with pytest.raises(ValueError, match=f"{which} point 'left_front_wheel' must be .* finite numbers"):
        fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT)


def test_bad_focal_prior_is_refused():
    keypoints = car_keypoints()
    image_points = clicks(Pose(30, 10, 0, 2.5, 350, 150, 100, WIDTH, HEIGHT), keypoints)
    with pytest.raises(ValueError, match="focal prior"):
        fit_pose_to_keypoints(keypoints, image_points, WIDTH, HEIGHT, focal_prior=-1.0)


# -- real Pascal3D+ CAD models ---------------------------------------------------------------

REAL_POSES = {
    "car01": Pose(azimuth=35, elevation=12, theta=3, distance=2.2, focal=360, u=152, v=104, width=WIDTH, height=HEIGHT),
    "aeroplane01": Pose(
        azimuth=-120, elevation=20, theta=-4, distance=2.0, focal=330, u=147, v=98, width=WIDTH, height=HEIGHT
    ),
}


@pytest.mark.parametrize("name", sorted(REAL_POSES))
@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_real_cad_keypoints_recover_the_pose_and_silhouette(name, sigma):
    from geometry.mesh import load_mesh
    from geometry.render import SilhouetteRenderer

    mesh_path = data_path("meshes", "pascal3d_off", f"{name}.off")
    keypoints = keypoints_for_mesh(mesh_path)
    assert keypoints is not None and len(keypoints) >= 8
    pose = REAL_POSES[name]
    rng = np.random.default_rng(7)
    fit = fit_pose_to_keypoints(keypoints, clicks(pose, keypoints, rng, sigma), WIDTH, HEIGHT)
    azimuth, elevation, theta = angle_errors(fit, pose)
    assert azimuth < 0.3 + 2 * sigma and elevation < 0.3 + 2 * sigma and theta < 0.3 + 2 * sigma
    assert fit.rms < 0.2 + 1.5 * sigma and not fit.poor and not fit.ambiguous
    renderer = SilhouetteRenderer(load_mesh(mesh_path))
    # Clean clicks: the silhouette itself. 1 px of click noise on a 300 px image moves an
    # aeroplane's thin wings and tail by a few pixels (IoU ~0.9); the IoU refinement follows.
    assert iou(renderer.render(fit.pose), renderer.render(pose)) > (0.99 if sigma == 0 else 0.85)


def test_angles_past_the_pole_normalise_to_the_same_camera(rng):
    """The optimiser may leave [-90, 90] elevation; the reported angles are the same camera."""
    from geometry.keypoints import _normalised

    for _ in range(20):
        x = np.array([rng.uniform(-500, 500), rng.uniform(-300, 300), rng.uniform(-400, 400), 0.9, 5.8, 150, 100])
        pose = Pose(*x[:3], math.exp(x[3]), math.exp(x[4]), *x[5:], WIDTH, HEIGHT)
        y = _normalised(x)
        assert -90 <= y[1] <= 90 and -180 <= y[0] < 180 and -180 <= y[2] < 180
        same = Pose(*y[:3], math.exp(y[3]), math.exp(y[4]), *y[5:], WIDTH, HEIGHT)
        points = np.array(list(car_keypoints().values()))
        np.testing.assert_allclose(project(same, points), project(pose, points), atol=1e-9)
