"""finepose against a real Label Studio 1.23.2 on 127.0.0.1 (tests/support/label_studio.py):
the backend connected to a project made from templates/pose_annotation.xml, predictions,
the webhook round trip, interactive keypoints, a browser screenshot; a dataset imported
and exported (the satisfaction study: test_study_e2e.py)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geometry.camera import project as project_points
from geometry.iou import iou
from geometry.pose import PARAMETER_NAMES
from geometry.procedural_keypoints import car_keypoints
from geometry.frames import FRAMES, express_in_frame
from geometry.conventions import seed
from ls_backend.templates import POSE_ANNOTATION, SEGMENTATION_GT, read_template
from ls_backend.server.app import create_app
from ls_backend.tools.dataset import export_project, import_into_project, seed_tasks
from ls_backend.datasets.posesets import PoseRecord, load_pose_set
from ls_backend.registry import Registry
from ls_backend.resources import Resources
from ls_backend.studio.predictions import filled
from ls_backend.studio.tasks import brush_mask
from tests.support.world import make_world
from tests.support.browser import browser_available, screenshot_task
from tests.support.label_studio import numbers, template_project, wait_until
from tests.support.backend_client import serving

pytestmark = pytest.mark.e2e
SCREENSHOT_DIR = os.environ.get("FINEPOSE_SCREENSHOT_DIR")




@pytest.fixture(scope="module")
def pose_project(label_studio, tmp_path_factory):
    """A project from the finepose template with one task, and the backend serving it."""
    ls = label_studio
    world = make_world(tmp_path_factory.mktemp("e2e-world"))
    client = ls.client()
    project, data = template_project(ls, world, "finepose e2e")
    client.projects.import_tasks(id=project.id, request=[{**data, "pose": world.start_pose.to_dict()}])
    task_id = next(iter(client.tasks.list(project=project.id))).id
    # Media are downloaded from Label Studio with the API key (no local roots).
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    resources = Resources(settings)
    with serving(create_app(resources)) as backend_url:
        response = ls.api("POST", "/api/ml", json={"url": backend_url, "project": project.id, "title": "finepose",
                                                   "is_interactive": True})
        assert response.status_code == 201, response.text
        yield {"ls": ls, "client": client, "project": project, "task": task_id, "world": world,
               "resources": resources, "ml": response.json()}


def test_template_makes_a_project_and_the_backend_connects(pose_project):
    assert pose_project["ml"]["readable_state"] == "Connected"
    assert "Number" in pose_project["project"].label_config


def test_retrieved_prediction_is_the_refined_pose(pose_project):
    ls, client, task_id, world = pose_project["ls"], pose_project["client"], pose_project["task"], pose_project["world"]
    version = pose_project["resources"].model_version
    retrieve = lambda: ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pose_project['project'].id}",
                              json={"selectedItems": {"all": False, "included": [task_id]}})
    assert retrieve().status_code == 200
    [prediction] = wait_until(lambda: client.predictions.list(task=task_id), what="the prediction")
    assert prediction.model_version == version and prediction.score > 0.97
    values = numbers(prediction.result)
    assert set(PARAMETER_NAMES) <= set(values) and values["iou_after"] > values["iou_before"]
    refined = replace(world.true_pose, **{k: values[k] for k in PARAMETER_NAMES})
    # the overlay draws outlines; filled, they are the refined silhouette and the reference
    masks = {r["value"]["brushlabels"][0]: filled(brush_mask(r)) for r in prediction.result if r["type"] == "brushlabels"}
    assert iou(masks["Projection"], world.reference) > 0.97
    assert np.array_equal(masks["Reference"], world.reference)
    assert abs(refined.azimuth - world.true_pose.azimuth) < 3.0
    # Retrieving again predicts nothing new: the task already holds this model version.
    assert retrieve().status_code == 200
    time.sleep(2)
    assert len(client.predictions.list(task=task_id)) == 1


def test_screenshot_of_the_refined_projection(pose_project, tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    task_id = pose_project["task"]  # holds only the retrieved prediction, shown as the first draft
    out = Path(SCREENSHOT_DIR or tmp_path) / "labeling_screen.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = screenshot_task(pose_project["ls"], pose_project["project"].id, task_id, out)
    shot = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert info["regions"] >= 2 and shot.std() > 20
    blue = (shot[..., 2] > 150) & (shot[..., 0] < 110)  # the Projection brush (#1f77b4) over the photo
    assert blue.sum() > 1000, blue.sum()


def test_webhook_stores_the_refined_human_pose(pose_project):
    client, task_id, world = pose_project["client"], pose_project["task"], pose_project["world"]
    human = replace(world.start_pose, azimuth=world.start_pose.azimuth - 9.0)
    result = [{"from_name": k, "to_name": "image", "type": "number", "value": {"number": float(v)}}
              for k, v in zip(PARAMETER_NAMES, human.vector())]
    client.annotations.create(id=task_id, result=result)
    # it started from the human pose, not data.pose, and replaced Retrieve's prediction
    newest = wait_until(lambda: next((p for p in client.predictions.list(task=task_id)
                                      if numbers(p.result)["iou_before"] < 0.9), None), what="the webhook's prediction")
    assert newest.score > 0.97
    assert [p.id for p in client.predictions.list(task=task_id)] == [newest.id]
    annotations = client.annotations.list(id=task_id)
    assert len(annotations) == 1 and numbers(annotations[0].result)["azimuth"] == pytest.approx(human.azimuth)


def test_interactive_keypoints(pose_project):
    ls, world, task_id = pose_project["ls"], pose_project["world"], pose_project["task"]
    keypoints = car_keypoints()
    names = sorted(keypoints)[:6]
    pixels = project_points(world.true_pose, np.array([keypoints[n] for n in names]))
    w, h = world.true_pose.width, world.true_pose.height
    regions = [{"from_name": "keypoints", "to_name": "image", "type": "keypointlabels", "original_width": w,
                "original_height": h, "value": {"x": (x + 0.5) / w * 100, "y": (y + 0.5) / h * 100, "width": 0.5,
                                                "keypointlabels": [n]}} for n, (x, y) in zip(names, pixels)]
    response = ls.api("POST", f"/api/ml/{pose_project['ml']['id']}/interactive-annotating",
                      json={"task": task_id, "context": {"result": regions}})
    assert response.status_code == 200, response.text
    result = response.json()["data"]["result"]
    projection = next(r for r in result if r["type"] == "brushlabels" and r["value"]["brushlabels"] == ["Projection"])
    assert iou(filled(brush_mask(projection)), world.reference) > 0.95
    assert len([r for r in result if r["type"] == "keypointlabels"]) == 6


def test_dataset_import_export_round_trip(label_studio, tmp_path, rng):
    ls = label_studio
    client = ls.client()
    project = client.projects.create(title="dataset round trip", label_config=read_template(POSE_ANNOTATION))
    folder = ls.local_storage(project.id, "dataset")
    records = {}
    for i in range(6):
        name = f"{i + 1:05d}.jpg"
        Image.new("RGB", (400 + 37 * i, 300), (80, 80, 80)).save(folder / name)
        records[name] = {"model_id": f"m{i % 2}", "azimuth": float(rng.uniform(0, 6.28)), "elevation": float(rng.uniform(-0.2, 0.4)),
                         "theta": float(rng.uniform(-0.05, 0.05)), "distance": float(rng.uniform(1, 3)),
                         "f": float(rng.uniform(300, 900)), "u": float(rng.uniform(-20, 20)), "v": float(rng.uniform(-9, 9))}
    with open(tmp_path / "test_anno.pkl", "wb") as f:
        pickle.dump(records, f)
    prefix = ls.local_file_url(folder / "x").removesuffix("x")
    tasks, missing = seed_tasks(tmp_path / "test_anno.pkl", folder, prefix + "{name}")
    assert not missing and import_into_project(client, project.id, tasks) == 6
    summary = export_project(client, project.id, tmp_path / "export.json", tmp_path / "export.pkl")
    assert summary["tasks"] == 6 and summary["split"]["method"] == "standard"
    with open(tmp_path / "export.pkl", "rb") as f:
        assert pickle.load(f) == records  # every number exactly as imported
    exported = load_pose_set(tmp_path / "export.json")
    for name, record in records.items():
        size = Image.open(folder / name).size
        # in the release meshes' own frame (no registry: shapenet_core), naming it
        expected = express_in_frame(seed.to_pose(record, *size).rescaled(*size), "shapenet_core")
        assert np.allclose(exported[name].pose.vector(), expected.vector(), atol=1e-9)
        assert np.array_equal(exported[name].pose.mesh_frame, FRAMES["shapenet_core"])
        assert exported[name].split == "test" and exported[name].model == record["model_id"]


def test_prelabel_a_project_in_parallel_and_resume(label_studio, tmp_path, monkeypatch):
    from ls_backend.tools.prelabel import prelabel

    ls = label_studio
    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    client = ls.client()
    project, good = template_project(ls, world, "prelabel")
    tasks = [{**good, "pose": replace(world.start_pose, azimuth=world.start_pose.azimuth + d).to_dict()} for d in (-2, 0, 2)]
    client.projects.import_tasks(id=project.id, request=[*tasks, {**good, "model": "no-such-model"}])
    # Worker processes configure themselves from the environment, as the CLI does.
    env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key,
           "FINEPOSE_REGISTRY": str(world.root / "registry.json"), "MODEL_DIR": str(tmp_path / "model-dir")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from ls_backend import resources as resources_module
    resources_module._shared_resources.forget()
    first = prelabel(project.id, workers=2)
    assert (first["tasks"], first["done"], first["failed"]) == (4, 3, 1)
    state = [json.loads(line) for line in Path(first["state"]).read_text().splitlines()]
    assert any("unknown model 'no-such-model'" in r.get("error", "") for r in state)
    stored = [p for t in client.tasks.list(project=project.id) for p in client.predictions.list(task=t.id)]
    assert len(stored) == 3 and all(p.score > 0.97 and p.model_version == first["model_version"] for p in stored)
    assert first["store_calls"] == 1  # the three tasks' predictions in one bulk write
    again = prelabel(project.id, workers=2)  # resumable: nothing left; the failed task waits for --retry-failed
    assert (again["tasks"], again["done"], again["failed"], again["skipped_failed"]) == (0, 0, 0, 1)
    retried = prelabel(project.id, workers=2, retry_failed=True)
    assert (retried["tasks"], retried["done"], retried["failed"]) == (1, 0, 1)


def test_evaluate_against_masks_painted_in_label_studio(label_studio, tmp_path):
    from ls_backend.tools.evaluate import ProjectMasks, evaluate
    from ls_backend.studio.predictions import brush_result
    from ls_backend.studio.label_config import PoseConfig

    ls = label_studio
    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    client = ls.client()
    project = client.projects.create(title="ground truth", label_config=read_template(SEGMENTATION_GT))
    folder = ls.local_storage(project.id, "gt")
    shutil.copy(world.root / "photo.png", folder / "img0.png")
    client.projects.import_tasks(id=project.id, request=[{"image": ls.local_file_url(folder / "img0.png")}])
    task = next(iter(client.tasks.list(project=project.id)))
    brush = brush_result(PoseConfig(image="image", image_key="image", brush="mask", numbers=()), "Car", world.reference)
    client.annotations.create(id=task.id, result=[brush])
    masks = ProjectMasks(client, project.id)
    assert list(masks) == ["img0"] and np.array_equal(masks["img0"], world.reference)
    sets = {"true": {"img0": PoseRecord("img0.png", "toy-car", None, pose=world.true_pose)},
            "start": {"img0": PoseRecord("img0.png", "toy-car", None, pose=world.start_pose)}}
    result = evaluate(masks, sets, Registry.load(world.root / "registry.json"))
    assert result.ious["true"][0] == 1.0
    assert result.ious["start"][0] == pytest.approx(iou(world.renderer.render(world.start_pose), world.reference))
