"""The ML backend through Flask's test client: predictions, sources of pose and reference,
smart regions, webhooks and bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from geometry.camera import project
from geometry.iou import iou
from geometry.pose import PARAMETER_NAMES
from ls_backend.server.app import create_app
from ls_backend.studio.predictions import brush_result, filled, outline
from tests.support.world import make_world
from tests.support.backend_client import FakeStudio, brushes, numbers, pose_of, predict


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("backend"))


@pytest.fixture(scope="module")
def client(world):
    return create_app(world.resources).test_client()


def test_health_and_setup_report_the_version_predictions_carry(client, world):
    health = client.get("/health").get_json()
    assert health["status"] == "UP" and health["models"] == 1
    version = client.post("/setup", json={"project": "3.1", "schema": world.label_config}).get_json()["model_version"]
    assert version == health["model_version"] and version.startswith("finepose-")
    response = predict(client, world, [world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))])
    assert response.get_json()["model_version"] == version
    assert response.get_json()["results"][0]["model_version"] == version


def test_prediction_from_data_pose_and_reference_has_every_part(client, world):
    response = predict(client, world, [world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))])
    assert response.status_code == 200, response.get_json()
    [prediction] = response.get_json()["results"]
    values = numbers(prediction)
    assert set(values) == set(PARAMETER_NAMES) | {"iou_before", "iou_after"}
    assert 0.0 <= values["azimuth"] < 360.0 and -180.0 < values["theta"] <= 180.0
    assert prediction["score"] == pytest.approx(values["iou_after"], abs=0.0006)  # iou_after on its 0.001 grid
    assert values["iou_after"] > values["iou_before"] + 0.1
    refined = pose_of(prediction, world)
    masks = brushes(prediction, fill=False)
    assert set(masks) == {"Projection", "Reference"}
    assert masks["Projection"].shape == (world.true_pose.height, world.true_pose.width)
    # The brush regions are the outlines of the refined silhouette (of the numbers as written)
    # and of the reference; filled, they give the masks back.
    projection = world.renderer.render(refined)
    assert np.array_equal(masks["Projection"], outline(projection)) and masks["Projection"].sum() < projection.sum() / 2
    assert np.array_equal(filled(masks["Reference"]), world.reference)
    assert iou(filled(masks["Projection"]), world.reference) > 0.97
    assert all(r.get("readonly") for r in prediction["result"] if r["type"] == "brushlabels" or r["from_name"].startswith("iou"))
    assert abs(refined.azimuth - world.true_pose.azimuth) < 3.0


def test_human_annotation_comes_before_data_pose(client, world):
    human = replace(world.true_pose, azimuth=30.0, u=240.0)
    task = world.task(pose=replace(world.true_pose, azimuth=120.0).to_dict(), reference=world.url("reference.png"))
    task["annotations"] = [world.human_annotation(human)]
    [prediction] = predict(client, world, [task]).get_json()["results"]
    expected_before = iou(world.renderer.render(human.rescaled(300, 200)), _work_reference(world))
    assert numbers(prediction)["iou_before"] == pytest.approx(expected_before, abs=0.0005)  # on the 0.001 grid
    assert iou(brushes(prediction)["Projection"], world.reference) > 0.97


def test_human_reference_brush_comes_before_data_reference(client, world):
    shifted = np.roll(world.reference, 25, axis=1)  # the human's own (shifted) reference
    config = _config(world)
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    task["annotations"] = [{"id": 3, "result": [brush_result(config, "Reference", shifted)]}]
    [prediction] = predict(client, world, [task]).get_json()["results"]
    masks = brushes(prediction)
    assert np.array_equal(masks["Reference"], shifted)
    assert iou(masks["Projection"], shifted) > 0.95
    assert pose_of(prediction, world).u == pytest.approx(world.true_pose.u + 25, abs=4)


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "RGBA", "P"])
def test_reference_masks_in_any_image_mode(world, tmp_path, mode):
    """Any channel over half is the object: white on black, a red object, a palette image;
    at another size the mask is brought to the photo's."""
    from PIL import Image

    from ls_backend.studio import media

    colour = np.zeros((*world.reference.shape, 3), np.uint8)
    colour[world.reference] = (220, 20, 20)  # red: only one channel over half
    image = Image.fromarray(colour)
    image = image.convert("L").point(lambda v: 255 if v else 0).convert("1") if mode == "1" else image.convert(mode)
    if mode == "L":
        image = image.point(lambda v: 255 if v else 0)
    image.save(tmp_path / "ref.png")
    mask = media.read_reference(tmp_path / "ref.png", world.settings, world.reference.shape[::-1])
    np.testing.assert_array_equal(mask, world.reference)
    image.resize((world.reference.shape[1] // 2, world.reference.shape[0] // 2), Image.NEAREST).save(tmp_path / "half.png")
    mask = media.read_reference(tmp_path / "half.png", world.settings, world.reference.shape[::-1])
    assert mask.shape == world.reference.shape and iou(mask, world.reference) > 0.97


def test_automatic_initial_pose_without_any_pose(client, world):
    [prediction] = predict(client, world, [world.task(reference=world.url("reference.png"))]).get_json()["results"]
    assert iou(brushes(prediction)["Projection"], world.reference) > 0.9


def test_smart_keypoints_fit_the_pose_and_are_remembered(client, world):
    from geometry.procedural_keypoints import car_keypoints

    keypoints = car_keypoints()
    names = sorted(keypoints)[:5]
    pixels = project(world.true_pose, np.array([keypoints[n] for n in names]))
    regions = [_keypoint_region(name, xy, world) for name, xy in zip(names, pixels)]
    task = world.task(task_id=41, reference=world.url("reference.png"))
    # Two clicks: too few for a pose; they are echoed back so they stay on screen.
    [first] = predict(client, world, [task], {"result": regions[:2]}).get_json()["results"]
    assert {r["value"]["keypointlabels"][0] for r in first["result"] if r["type"] == "keypointlabels"} == set(names[:2])
    assert not numbers(first)
    [message] = [r["value"]["text"][0] for r in first["result"] if r["type"] == "textarea"]
    assert message.startswith("2 of 4 keypoints placed: click 2 more")
    # Three more clicks, one call each (as Label Studio sends them): the pose is fitted.
    for region in regions[2:]:
        [last] = predict(client, world, [task], {"result": [region]}).get_json()["results"]
    assert len([r for r in last["result"] if r["type"] == "keypointlabels"]) == 5
    assert iou(brushes(last)["Projection"], world.reference) > 0.95
    [message] = [r["value"]["text"][0] for r in last["result"] if r["type"] == "textarea"]
    assert message.startswith("pose fitted to 5 keypoints") and "focal held at the default" in message


def test_smart_rectangle_searches_inside_the_box(client, world):
    ys, xs = np.nonzero(world.reference)
    w, h = world.true_pose.width, world.true_pose.height
    box = {"x": (xs.min() - 5) / w * 100, "y": (ys.min() - 5) / h * 100,
           "width": (xs.max() - xs.min() + 10) / w * 100, "height": (ys.max() - ys.min() + 10) / h * 100}
    region = {"from_name": "box", "to_name": "image", "type": "rectanglelabels", "value": {**box, "rectanglelabels": ["Object"]}}
    [prediction] = predict(client, world, [world.task(reference=world.url("reference.png"))], {"result": [region]}).get_json()["results"]
    assert iou(brushes(prediction)["Projection"], world.reference) > 0.9


def test_webhook_refines_the_human_pose_into_the_tasks_one_prediction(world, monkeypatch):
    studio = FakeStudio()
    studio.create(task=5, result=[], score=0.5, model_version=world.resources.model_version)  # Retrieve's, superseded
    monkeypatch.setattr(world.resources, "client", lambda: studio)
    client = create_app(world.resources).test_client()
    task = world.task(task_id=5, reference=world.url("reference.png"))
    body = {"action": "ANNOTATION_CREATED", "annotation": world.human_annotation(world.start_pose), "task": task,
            "project": {"id": 3, "label_config": world.label_config}}
    response = client.post("/webhook", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == "refined"
    [stored] = studio.stored.values()  # the earlier prediction of this version is gone
    assert stored["task"] == 5 and stored["model_version"] == world.resources.model_version
    assert stored["score"] > 0.97 and studio.deleted == [100]
    again = client.post("/webhook", json={**body, "action": "ANNOTATION_UPDATED"})  # the same pose saved again
    assert again.get_json()["status"] == "unchanged" and list(studio.stored) == [stored["id"]]
    ignored = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}], "project": {"id": 3}})
    assert ignored.status_code == 201 and ignored.get_json()["status"] == "ignored" and len(studio.stored) == 1


def test_webhook_corrects_a_projection_that_does_not_show_the_numbers(world, monkeypatch):
    """An annotator accepted a prediction, then typed another azimuth: the stored Projection
    and IoUs are the prediction's. The webhook redraws the Projection of the typed numbers,
    drops iou_before and gives iou_after of the typed numbers; a consistent one is left alone."""
    from ls_backend.studio import taskdata

    studio = FakeStudio()
    monkeypatch.setattr(world.resources, "client", lambda: studio)
    client = create_app(world.resources).test_client()
    task = world.task(task_id=6, pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    [predicted] = predict(client, world, [task]).get_json()["results"]
    typed = [dict(r) for r in predicted["result"]]
    for item in typed:
        if item["from_name"] == "azimuth":
            item["value"] = {"number": round((item["value"]["number"] + 20.0) % 360, 1)}
    annotation = {"id": 8, "result": typed, "was_cancelled": False}
    studio.annotation_results[8] = typed
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task,
            "project": {"id": 3, "label_config": world.label_config}}
    response = client.post("/webhook", json=body)
    assert response.get_json()["correcting_annotation"] is True
    taskdata.flush()
    fixed = studio.updated[8]
    shown = pose_of({"result": fixed}, world)
    projection = world.renderer.render(shown)
    assert np.array_equal(brushes({"result": fixed}, fill=False)["Projection"], outline(projection))
    assert "iou_before" not in numbers({"result": fixed})
    assert numbers({"result": fixed})["iou_after"] == pytest.approx(iou(projection, world.reference), abs=0.0006)
    assert numbers({"result": fixed})["iou_after"] < numbers(predicted)["iou_after"] - 0.05
    consistent = client.post("/webhook", json={**body, "annotation": {**annotation, "id": 9, "result": fixed}})
    assert consistent.get_json()["correcting_annotation"] is False
    echo = client.post("/webhook", json={**body, "action": "ANNOTATION_UPDATED", "annotation": {**annotation, "result": fixed}})
    assert echo.get_json()["status"] == "ignored"  # finepose's own correction, come back


def test_concurrent_predicts_of_a_task_share_one_refinement_and_one_stored_answer(world, monkeypatch):
    """Label Studio asks for a task from several requests at once (a task opened while a
    Retrieve runs): one refinement runs; the request that ran it answers the predictions and
    the others nothing, so Label Studio stores them once. A repeat later gets the same answer."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import ls_backend.pipeline.predict as pipeline

    calls, real = [], pipeline.predict_task

    def slow(request, resources):
        calls.append(request.task["id"])
        time.sleep(0.5)
        return real(request, resources)

    monkeypatch.setattr(pipeline, "predict_task", slow)
    app = create_app(world.resources)
    task = world.task(task_id=31, pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: predict(app.test_client(), world, [task]).get_json()["results"], range(3)))
    assert calls == [31]
    answered = [a for a in answers if a != [[]]]
    assert len(answered) == 1 and answers.count([[]]) == 2
    assert predict(app.test_client(), world, [task]).get_json()["results"] == answered[0] and calls == [31]
    edited = {**task, "data": {**task["data"], "editor": "https://finepose.example/editor/31?t=x"}}  # finepose's own field
    assert predict(app.test_client(), world, [edited]).get_json()["results"] == answered[0] and calls == [31]


def test_an_out_of_range_start_is_passed_over_and_said(client, world):
    """A start holding an out-of-range number never blocks its task: the prediction starts
    from the next source (here the automatic pose from the reference) and says why."""
    task = world.task(pose={**world.start_pose.to_dict(), "distance": -1}, reference=world.url("reference.png"))
    response = predict(client, world, [task])
    assert response.status_code == 200, response.get_json()
    [prediction] = [p if isinstance(p, dict) else p[-1] for p in response.get_json()["results"]]
    assert prediction["score"] > 0.95
    [message] = [r["value"]["text"][0] for r in prediction["result"] if r["type"] == "textarea"]
    assert "data.pose not used" in message and "distance" in message and "automatic" in message


@pytest.mark.parametrize(
    "change, status, words",
    [
        (lambda t: t.pop("data"), 422, "'data'"),
        (lambda t: t["data"].pop("model"), 422, "data.model"),
        (lambda t: t["data"].update(model="no-such-car"), 404, "unknown model 'no-such-car'"),
        (lambda t: t["data"].update(image="/data/local-files/?d=missing.png"), 422, "LABEL_STUDIO_URL"),
        (lambda t: t["data"].update(pose={**t["data"]["pose"], "azimuth": math.nan}), 422, "azimuth"),
        (lambda t: t["data"].update(reference="file:///etc/passwd"), 422, "refused"),
        (lambda t: t["data"].update(image="/data/local-files/?d=../../etc/passwd"), 422, ".."),
        (lambda t: t["data"].update(image="http://evil.example.com/a.png"), 422, "FINEPOSE_ALLOWED_HOSTS"),
    ],
)
def test_bad_tasks_get_clear_errors_and_the_server_keeps_serving(client, world, change, status, words):
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    change(task)
    response = predict(client, world, [task])
    assert response.status_code == status, response.get_json()
    assert words in response.get_json()["error"]
    good = predict(client, world, [world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))])
    assert good.status_code == 200


def test_bad_requests(client, world):
    assert client.post("/predict", data="not json", content_type="application/json").status_code == 400
    assert client.post("/predict", json={"tasks": [], "label_config": world.label_config}).status_code == 422
    wrong = client.post("/predict", json={"tasks": [world.task()], "label_config": "<View><Image name='i' value='$image'/></View>"})
    assert wrong.status_code == 422 and "Number" in wrong.get_json()["error"]
    broken = client.post("/predict", json={"tasks": [world.task()], "label_config": "<View><Image"})
    assert broken.status_code == 422 and "not a valid Label Studio config" in broken.get_json()["error"]
    assert client.post("/webhook", json={"no": "action"}).status_code == 422


def test_a_bad_task_in_a_batch_does_not_sink_the_others(client, world):
    good = world.task(task_id=1, pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    bad = world.task(task_id=2, model="unknown")
    results = predict(client, world, [good, bad]).get_json()["results"]
    assert results[0]["score"] > 0.97
    assert results[1] == []  # no prediction: Label Studio stores nothing and a later retrieve tries again


def test_missing_segmentation_weights_say_which_file(client, world, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("FINEPOSE_MASKRCNN_WEIGHTS", raising=False)
    import ls_backend.segmentation.models as segmentation

    segmentation._segmenter.forget()
    response = predict(client, world, [world.task(pose=world.start_pose.to_dict())])
    assert response.status_code == 503
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in response.get_json()["error"]
    assert "$TORCH_HOME/hub/checkpoints/" in response.get_json()["error"]
    assert str(tmp_path) not in response.get_data(as_text=True)  # the answer names no server path...
    assert str(tmp_path) in caplog.text  # ...the log has it


def _config(world):
    from ls_backend.studio.label_config import parse_label_config

    return parse_label_config(world.label_config)


def _work_reference(world):
    from geometry.masks import resize_mask

    return resize_mask(world.reference, 300, 200)


def _keypoint_region(name, xy, world):
    w, h = world.true_pose.width, world.true_pose.height
    value = {"x": (xy[0] + 0.5) / w * 100, "y": (xy[1] + 0.5) / h * 100, "width": 0.5, "keypointlabels": [name]}
    return {"from_name": "keypoints", "to_name": "image", "type": "keypointlabels", "original_width": w,
            "original_height": h, "value": value}


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ls_requests"


def real_body(name: str) -> dict:
    """A request body recorded from Label Studio 1.23.2 (see scripts/record_ls_requests.py)."""
    return json.loads((FIXTURES / name).read_text())


def test_real_label_studio_bodies(client, world):
    setup = real_body("setup_body.json")
    assert client.post("/setup", json=setup).get_json()["model_version"] == world.resources.model_version
    body = real_body("predict_body_retrieve.json")
    # As recorded, the project's config has no pose controls: a clear 422, not a crash.
    refused = client.post("/predict", json=body)
    assert refused.status_code == 422 and "elevation" in refused.get_json()["error"]
    # The same request from a finepose project (context null, as Label Studio sends it).
    body["label_config"] = world.label_config
    body["tasks"][0]["data"] = {"image": world.url("photo.png"), "model": "toy-car", "reference": world.url("reference.png"),
                                "pose": world.start_pose.to_dict()}
    [prediction] = client.post("/predict", json=body).get_json()["results"]
    assert prediction["score"] > 0.97 and prediction["model_version"] == world.resources.model_version
    # An interactive call: the recorded context holds one keypoint of an unknown control.
    interactive = real_body("predict_body_interactive.json")
    interactive["label_config"] = world.label_config
    interactive["tasks"] = body["tasks"]
    [answer] = client.post("/predict", json=interactive).get_json()["results"]
    assert answer["score"] > 0.97  # the region is not a finepose keypoint: the task is refined as usual


def test_real_webhook_body_with_a_wrong_config_is_refused(client, world):
    body = real_body("webhook_body_annotation_created.json")
    response = client.post("/webhook", json=body)
    assert response.status_code == 422 and "Number" in response.get_json()["error"]


@pytest.mark.parametrize("keypoints_file, said", [
    (None, "has no CAD keypoints"),
    ("{not json", "toy_car_keypoints.json: cannot read keypoints as JSON"),
])
def test_the_first_smart_click_says_what_is_wrong_with_the_models_keypoints(world, tmp_path, keypoints_file, said):
    """A model without (readable) CAD keypoints is said on the first click, in the message box,
    naming the file but not the server's folders."""
    import json
    import shutil

    from ls_backend.resources import Resources

    shutil.copy(world.root / "toy_car.ply", tmp_path / "toy_car.ply")
    if keypoints_file is not None:
        (tmp_path / "toy_car_keypoints.json").write_text(keypoints_file)
    (tmp_path / "registry.json").write_text(json.dumps({"toy-car": {"mesh": "toy_car.ply", "category": "car"}}))
    resources = Resources(replace(world.settings, registry=tmp_path / "registry.json", model_dir=tmp_path / "md"))
    client = create_app(resources).test_client()
    region = _keypoint_region("left_front_wheel", (200.0, 180.0), world)
    response = predict(client, world, [world.task(task_id=77, reference=world.url("reference.png"))], {"result": [region]})
    assert response.status_code == 200, response.get_json()
    [answer] = response.get_json()["results"]
    [message] = [r["value"]["text"][0] for r in answer["result"] if r["type"] == "textarea"]
    assert said in message and str(tmp_path) not in response.get_data(as_text=True)


def test_a_correction_never_overwrites_a_newer_save(world, monkeypatch):
    """The annotator saved again between the webhook and its correction: the newer save stays
    (its own webhook sees to it)."""
    from ls_backend.studio import taskdata

    studio = FakeStudio()
    monkeypatch.setattr(world.resources, "client", lambda: studio)
    client = create_app(world.resources).test_client()
    task = world.task(task_id=16, pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    [predicted] = predict(client, world, [task]).get_json()["results"]
    typed = [dict(r, value={"number": 123.4}) if r["from_name"] == "azimuth" else r for r in predicted["result"]]
    newer = [dict(r, value={"number": 200.0}) if r["from_name"] == "azimuth" else r for r in predicted["result"]]
    studio.annotation_results[18] = newer  # what Label Studio holds by the time the correction is written
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 18, "result": typed, "was_cancelled": False},
            "task": task, "project": {"id": 3, "label_config": world.label_config}}
    assert client.post("/webhook", json=body).get_json()["correcting_annotation"] is True
    taskdata.flush()
    assert 18 not in studio.updated and studio.annotation_results[18] == newer

