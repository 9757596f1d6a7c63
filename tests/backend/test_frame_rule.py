"""finepose's one frame rule (geometry.frames.pose_in_model_frame): every pose of a model is
expressed in the registry model's frame, converted across a rotation, refused across a
reflection; the backend's prediction, the webhook and the numbers agree."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from geometry.camera import project
from geometry.conventions import pascal3d, seed
from geometry.frames import FRAMES, FrameError, express_in_frame, frame_matrix, pose_in_model_frame
from geometry.iou import iou
from geometry.pose import PARAMETER_NAMES, Pose
from geometry.pose_io import read_pose
from ls_backend.server.app import create_app
from ls_backend.resources import Resources
from tests.support.world import make_world
from tests.support.backend_client import FakeStudio

POINTS = np.random.default_rng(0).uniform(-1, 1, (50, 3))


def random_pose(rng, frame) -> Pose:
    return Pose(azimuth=rng.uniform(0, 360), elevation=rng.uniform(-60, 60), theta=rng.uniform(-20, 20),
                distance=rng.uniform(3, 6), focal=rng.uniform(300, 900), u=rng.uniform(100, 500),
                v=rng.uniform(100, 300), width=600, height=400, mesh_frame=frame_matrix(frame))


@pytest.mark.parametrize("source,target", [("shapenet", "pascal3d"), ("pascal3d", "shapenet"),
                                           ("shapenet_seed", "shapenet_seed"), ("canonical", "shapenet")])
def test_a_rotation_apart_the_pose_is_converted_and_images_every_point_alike(source, target):
    rng = np.random.default_rng(1)
    for _ in range(20):
        pose = random_pose(rng, source)
        converted = express_in_frame(pose, target)
        np.testing.assert_allclose(converted.mesh_frame, FRAMES[target])
        np.testing.assert_allclose(project(converted, POINTS), project(pose, POINTS), atol=1e-6)
        assert (converted.distance, converted.focal, converted.u, converted.v) == (
            pose.distance, pose.focal, pose.u, pose.v)


@pytest.mark.parametrize("source,target", [("shapenet_seed", "shapenet"), ("pascal3d", "shapenet_seed")])
def test_a_reflection_apart_the_pose_is_refused_naming_both_frames(source, target):
    pose = random_pose(np.random.default_rng(2), source)
    with pytest.raises(FrameError, match=rf"mesh frame '{source}', the model in '{target}'.*reflection"):
        express_in_frame(pose, target)


def test_numbers_naming_no_frame_are_read_in_the_model_frame_and_none_keeps_the_pose_own():
    pose = random_pose(np.random.default_rng(3), "pascal3d")
    taken = pose_in_model_frame(pose, "shapenet", names_frame=False)
    assert taken.vector().tolist() == pose.vector().tolist()
    np.testing.assert_allclose(taken.mesh_frame, FRAMES["shapenet"])
    assert pose_in_model_frame(pose, None, names_frame=True) is pose
    # read_pose is the rule applied to pose JSON: a release record names its (mirrored) frame
    record = {"convention": "seed", **seed.from_pose(replace(pose, mesh_frame=seed.MESH_FRAME), 600, 400),
              "image_width": 600, "image_height": 400}
    np.testing.assert_allclose(read_pose(record, model_frame="shapenet_seed").mesh_frame, seed.MESH_FRAME)
    with pytest.raises(FrameError, match="reflection"):
        read_pose(record, model_frame="shapenet")


# --- the backend: predicted numbers submitted unchanged come back no worse from the webhook ---------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The toy car registered twice: as a Pascal3D+ model and in the release's mirrored frame,
    each with its photo's reference rendered at the true pose in that frame."""
    world = make_world(tmp_path_factory.mktemp("frames"))
    registry = {
        "toy-car": {"mesh": "toy_car.ply", "frame": "pascal3d", "category": "car"},
        "toy-car-release": {"mesh": "toy_car.ply", "frame": "shapenet_seed", "category": "car"},
        "toy-car-shapenet": {"mesh": "toy_car.ply", "frame": "shapenet", "category": "car"},
    }
    (world.root / "registry.json").write_text(json.dumps(registry))
    from geometry.masks import write_mask

    write_mask(world.root / "reference-release.png",
               world.renderer.render(replace(world.true_pose, mesh_frame=seed.MESH_FRAME)))
    world.resources = Resources(world.settings)
    return world


def stored_by_webhook(world, task, numbers):
    studio = FakeStudio()
    world.resources.client = lambda: studio
    annotation = {"id": 7, "was_cancelled": False, "updated_at": "2026-11-30T10:00:00Z", "result": [
        {"from_name": n, "to_name": "image", "type": "number", "value": {"number": numbers[n]}}
        for n in PARAMETER_NAMES]}
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task,
            "project": {"id": 3, "label_config": world.label_config}}
    response = create_app(world.resources).test_client().post("/webhook", json=body)
    assert response.status_code == 201, response.get_json()
    [stored] = studio.stored.values()
    return stored


@pytest.mark.parametrize("model,reference,start_json", [
    ("toy-car-release", "reference-release.png",
     lambda start: {"convention": "seed", **seed.from_pose(replace(start, mesh_frame=seed.MESH_FRAME), 480, 320),
                    "image_width": 480, "image_height": 320}),
    ("toy-car", "reference.png",
     lambda start: {"convention": "pascal3d", **pascal3d.from_pose(start), "image_width": 480, "image_height": 320}),
    # a pose naming another frame a rotation apart: converted, so the numbers shown are the model's
    ("toy-car", "reference.png", lambda start: express_in_frame(start, "shapenet").to_dict()),
])
def test_submitting_the_prediction_unchanged_never_makes_the_webhook_pose_worse(world, model, reference, start_json):
    start = replace(world.start_pose, azimuth=world.start_pose.azimuth + 4, distance=world.start_pose.distance * 1.08)
    task = world.task(task_id=11, model=model, pose=start_json(start), reference=world.url(reference))
    client = create_app(world.resources).test_client()
    response = client.post("/predict", json={"tasks": [task], "label_config": world.label_config})
    assert response.status_code == 200, response.get_json()
    [prediction] = response.get_json()["results"]
    numbers = {r["from_name"]: r["value"]["number"] for r in prediction["result"] if r["type"] == "number"}
    entry = world.resources.registry.entry(model)
    submitted = Pose(**{n: numbers[n] for n in PARAMETER_NAMES}, width=480, height=320, mesh_frame=entry.frame_matrix)
    truth_mask = world.renderer.render(replace(world.true_pose, mesh_frame=entry.frame_matrix))
    submitted_iou = iou(world.renderer.render(submitted), truth_mask)
    assert submitted_iou > 0.9  # the prediction's numbers, read in the model's frame, show the car
    stored = stored_by_webhook(world, task, numbers)
    refined = {r["from_name"]: r["value"]["number"] for r in stored["result"] if r["type"] == "number"}
    stored_pose = replace(submitted, **{n: refined[n] for n in PARAMETER_NAMES})
    assert iou(world.renderer.render(stored_pose), truth_mask) >= submitted_iou - 0.002


def test_a_release_pose_on_a_model_registered_in_another_handedness_is_passed_over_by_name(world):
    """The pose is not used (a reflection cannot be converted), and the message names both
    frames; the task is still predicted, from the automatic pose."""
    record = {"convention": "seed", **seed.from_pose(replace(world.start_pose, mesh_frame=seed.MESH_FRAME), 480, 320),
              "image_width": 480, "image_height": 320}
    task = world.task(task_id=12, model="toy-car-shapenet", pose=record, reference=world.url("reference.png"))
    client = create_app(world.resources).test_client()
    response = client.post("/predict", json={"tasks": [task], "label_config": world.label_config})
    assert response.status_code == 200, response.get_json()
    best = response.get_json()["results"][0]
    best = best[-1] if isinstance(best, list) else best
    [message] = [r["value"]["text"][0] for r in best["result"] if r["type"] == "textarea"]
    assert "data.pose not used" in message and "'shapenet_seed'" in message and "'shapenet'" in message
    assert "automatic pose" in message
