"""finepose's one frame rule (geometry.frames.pose_in_model_frame): every pose of a model is
expressed in the registry model's frame, converted across a rotation, and across a reflection
through the model's mirror symmetry; the backend's prediction, the webhook, the editor and the
numbers agree, and a release record on a model registered in its true frame reads as the
model's own numbers (azimuth 0 = its front)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from geometry.camera import project
from geometry.conventions import pascal3d, seed
from geometry.frames import FRAMES, FrameError, express_in_frame, frame_matrix, pose_in_model_frame
from geometry.iou import iou
from geometry.masks import write_mask
from geometry.mesh import Mesh, save_mesh
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


@pytest.mark.parametrize("source,target", [("shapenet_seed", "shapenet_core"), ("shapenet_core", "shapenet_seed")])
def test_a_release_pose_and_the_true_frame_convert_through_the_file_mirror_symmetry(source, target):
    """Each point of a ShapeNetCore file is imaged where its mirror image across the file's
    z = 0 plane (its left-right plane) was: the same silhouette of a symmetric model; converting
    back gives the numbers again."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        pose = random_pose(rng, source)
        converted = express_in_frame(pose, target)
        np.testing.assert_allclose(project(converted, POINTS), project(pose, POINTS * [1.0, 1.0, -1.0]), atol=1e-6)
        back = express_in_frame(converted, source)
        np.testing.assert_allclose(back.vector(), pose.vector(), atol=1e-9)


@pytest.mark.parametrize("source,target", [("shapenet_seed", "shapenet"), ("pascal3d", "shapenet_seed"),
                                           ("shapenet_seed", "pascal3d")])
def test_a_reflection_across_another_plane_is_refused_naming_both_frames(source, target):
    """Frames whose side axis is not the release files' z (Pascal3D+'s, the old 'shapenet'):
    the mirrored pose would show another picture, so it is refused, as before."""
    pose = random_pose(np.random.default_rng(2), source)
    with pytest.raises(FrameError, match=rf"mesh frame '{source}', the model in '{target}'.*reflection"):
        express_in_frame(pose, target)


def test_a_matrix_that_is_not_a_rotation_or_reflection_is_refused_naming_both_frames():
    pose = random_pose(np.random.default_rng(2), "pascal3d")
    with pytest.raises(FrameError, match=r"mesh frame 'pascal3d', the model in matrix .*more than a rotation"):
        express_in_frame(pose, np.diag([2.0, 1.0, 1.0]))


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
    np.testing.assert_allclose(read_pose(record, model_frame="shapenet_core").mesh_frame, FRAMES["shapenet_core"])
    with pytest.raises(FrameError, match="reflection"):
        read_pose(record, model_frame="shapenet")


# --- the backend: predicted numbers submitted unchanged come back no worse from the webhook ---------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The toy car registered as a Pascal3D+ model, in the release's mirrored frame and in the
    ``shapenet`` frame (one file), and as a ShapeNetCore file in ``shapenet_core``; references
    rendered at the true pose in the Pascal3D+ and the release's frames."""
    world = make_world(tmp_path_factory.mktemp("frames"), editor_secret="frames-secret")
    registry = {
        "toy-car": {"mesh": "toy_car.ply", "frame": "pascal3d", "category": "car"},
        "toy-car-release": {"mesh": "toy_car.ply", "frame": "shapenet_seed", "category": "car"},
        "toy-car-shapenet": {"mesh": "toy_car.ply", "frame": "shapenet", "category": "car"},
        "toy-car-core": {"mesh": "toy_car_core.ply", "frame": "shapenet_core", "category": "car"},
    }
    (world.root / "registry.json").write_text(json.dumps(registry))
    car = world.renderer.mesh  # the same car as a ShapeNetCore file: file = F^T canonical
    save_mesh(world.root / "toy_car_core.ply", Mesh(car.vertices @ FRAMES["shapenet_core"], car.triangles))

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


def editor_start(world, task) -> dict:
    """The seven numbers the pose editor opens a task with."""
    from flask import Flask

    from ls_backend.editor import create_editor_blueprint, links
    from ls_backend.server.app import error_handler
    from tests.support.editor_world import LocalSource

    source = LocalSource({task["id"]: {"data": task["data"]}}, world.label_config)
    app = Flask("frames-editor")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    signed = links.LinkSigner(world.settings).token(1, task["id"])
    state = app.test_client().get(f"/editor/{task['id']}/state?t={signed}").get_json()
    return state["start"]


def predicted_numbers(world, task) -> dict:
    response = create_app(world.resources).test_client().post("/predict", json={"tasks": [task],
                                                                               "label_config": world.label_config})
    assert response.status_code == 200, response.get_json()
    best = response.get_json()["results"][0]
    best = best[-1] if isinstance(best, list) else best
    messages = " ".join(t for r in best["result"] if r["type"] == "textarea" for t in r["value"]["text"])
    assert "not used" not in messages, messages  # the given pose was used (a front/back note may remain)
    return {r["from_name"]: r["value"]["number"] for r in best["result"] if r["type"] == "number"}


def test_a_release_record_and_the_same_pose_in_the_true_frame_show_the_same_seven_numbers(world):
    """The toy car as a ShapeNetCore file (y up, front at +x) registered ``shapenet_core``: a
    release record (``shapenet_seed``, which images it mirrored) and the same pose as finepose
    JSON in ``shapenet_core`` open the editor with the same numbers and are predicted to the
    same numbers; the numbers are the truth's in the canonical frame, and a front view reads
    azimuth 0 (the release's own number for it is not)."""
    start_core = replace(world.start_pose, mesh_frame=FRAMES["shapenet_core"])
    record = {"convention": "seed", **seed.from_pose(express_in_frame(start_core, "shapenet_seed"), 480, 320),
              "image_width": 480, "image_height": 320}
    as_json = start_core.to_dict()  # names its frame, shapenet_core
    shown, predicted = [], []
    for k, pose in enumerate((record, as_json)):
        task = world.task(task_id=20 + k, model="toy-car-core", pose=pose, reference=world.url("reference.png"))
        shown.append(editor_start(world, task))
        predicted.append(predicted_numbers(world, task))
    assert shown[0]["source"] == shown[1]["source"] == "data.pose"
    assert shown[0]["pose"] == pytest.approx(shown[1]["pose"], abs=1e-6)
    assert shown[0]["pose"]["azimuth"] == pytest.approx(world.start_pose.azimuth, abs=1e-6)  # the canonical numbers
    assert predicted[0] == predicted[1]
    assert abs(predicted[0]["azimuth"] - world.true_pose.azimuth) < 1.0, predicted[0]

    front_truth = replace(world.true_pose, azimuth=0.0)  # the photo of its front
    write_mask(world.root / "reference-front.png", world.renderer.render(front_truth))
    front_start = replace(front_truth, azimuth=4.0, elevation=front_truth.elevation + 3, mesh_frame=FRAMES["shapenet_core"])
    release = seed.from_pose(express_in_frame(front_start, "shapenet_seed"), 480, 320)
    assert abs((np.degrees(release["azimuth"]) + 180) % 360 - 180) > 30  # not 0 in the release's numbers
    task = world.task(task_id=30, model="toy-car-core", reference=world.url("reference-front.png"),
                      pose={"convention": "seed", **release, "image_width": 480, "image_height": 320})
    assert abs(editor_start(world, task)["pose"]["azimuth"] - 4.0) < 1e-6
    front = predicted_numbers(world, task)["azimuth"]
    assert min(front, 360 - front) < 1.5, front


def test_a_release_pose_on_a_model_registered_in_another_handedness_is_passed_over_by_name(world):
    """The pose is not used (a reflection across another plane than the model's left-right one cannot
    be converted), and the message names both
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
