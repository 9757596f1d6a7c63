import json
import pickle

import numpy as np
import pytest

from geometry import camera
from geometry.conventions import pascal3d, seed
from geometry.pose import Pose, PoseError
from geometry.pose_io import load_pose, pose_from_dict, pose_to_dict

from tests.support.data import data_path


def random_record(rng):
    return dict(
        azimuth=rng.uniform(-np.pi, np.pi), elevation=rng.uniform(-0.8, 0.8), theta=rng.uniform(-0.5, 0.5),
        distance=rng.uniform(0.8, 3.0), f=rng.uniform(250, 2000), u=rng.uniform(-40, 40), v=rng.uniform(-40, 40),
    )


def test_seed_pose_projects_exactly_as_the_release_formula(rng):
    for _ in range(50):
        record = random_record(rng)
        width, height = int(rng.integers(200, 1200)), int(rng.integers(200, 1200))
        points = rng.normal(size=(200, 3)) * 0.4
        pose = seed.to_pose(record, width, height)
        np.testing.assert_allclose(camera.project(pose, points), seed.project(record, points, width, height), atol=1e-6)
        assert np.linalg.det(pose.mesh_frame) == pytest.approx(-1.0)  # the release images mirrored


def test_seed_round_trip_is_exact(rng):
    for _ in range(50):
        record = random_record(rng)
        pose = seed.to_pose(record, 600, 400)
        back = seed.from_pose(pose.rescaled(600, 400), 600, 400)
        for key in seed.FIELDS:
            assert back[key] == pytest.approx(record[key], abs=1e-6), key


def test_pascal3d_round_trip_is_exact(rng):
    for _ in range(50):
        viewpoint = dict(
            azimuth=rng.uniform(0, 360), elevation=rng.uniform(-40, 60), theta=rng.uniform(-20, 20),
            distance=rng.uniform(2, 10), focal=1.0, px=rng.uniform(1, 500), py=rng.uniform(1, 400), viewport=3000,
        )
        pose = pascal3d.to_pose(viewpoint, 500, 400)
        back = pascal3d.from_pose(pose)
        for key in pascal3d.FIELDS:
            assert back[key] == pytest.approx(viewpoint[key], abs=1e-6), key


def test_pose_json_dispatches_on_convention(rng):
    record = random_record(rng)
    as_json = {"convention": "seed", **record, "image_width": 640, "image_height": 480}
    pose = pose_from_dict(as_json)
    assert (pose.width, pose.height) == (300, 225)
    again = pose_from_dict(json.loads(json.dumps(pose.to_dict())))
    np.testing.assert_allclose(again.vector(), pose.vector())
    np.testing.assert_allclose(again.mesh_frame, seed.MESH_FRAME)
    exported = pose_to_dict(again, "seed", width=640, height=480)
    for key in seed.FIELDS:
        assert exported[key] == pytest.approx(record[key], abs=1e-6)


def test_bad_pose_json_names_the_problem(tmp_path):
    with pytest.raises(PoseError, match="convention"):
        pose_from_dict({"convention": "blender"})
    with pytest.raises(PoseError, match="image_width"):
        pose_from_dict({"convention": "pascal3d", "azimuth": 1})
    with pytest.raises(PoseError, match="finite"):
        Pose(azimuth=float("nan"), elevation=0, theta=0, distance=1, focal=1, u=0, v=0, width=10, height=10)
    with pytest.raises(PoseError, match="distance"):
        pose_from_dict({"azimuth": 0, "elevation": 0, "theta": 0, "distance": -1, "focal": 100, "u": 0, "v": 0,
                        "image_width": 10, "image_height": 10})
    bad = tmp_path / "pose.json"
    bad.write_text("{not json")
    with pytest.raises(PoseError, match="not valid JSON"):
        load_pose(bad)
    with pytest.raises(PoseError, match="not found"):
        load_pose(tmp_path / "missing.json")


def test_real_release_records_project_as_their_formula():
    """Real FGVC-Aircraft3D records on the vertices of a real ShapeNet airplane OBJ."""
    from geometry.mesh import load_mesh

    anno = data_path("finegrained_pose", "Anno3D", "FGVC_Aircraft", "test_anno_v2.pkl")
    vertices = load_mesh(data_path("meshes", "shapenet_airplane", "model.obj")).vertices
    with open(anno, "rb") as f:
        records = pickle.load(f, encoding="latin1")
    for key in sorted(records)[:25]:
        record = records[key]
        pose = seed.to_pose(record, 800, 533)
        np.testing.assert_allclose(camera.project(pose, vertices), seed.project(record, vertices, 800, 533), atol=1e-6)
