"""Dataset import/export without a server: tasks from release pickles, final poses, exports.
(The round trip through a real Label Studio is in test_label_studio_e2e.py.)"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from geometry.conventions import seed
from geometry.frames import express_in_frame
from geometry.pose_io import pose_from_dict
from ls_backend.templates import POSE_ANNOTATION, read_template
from ls_backend.tools.dataset import DatasetError, export_project, final_pose, pascal3d_tasks, seed_tasks
from ls_backend.datasets.posesets import load_pose_set
from tests.support.data import data_path

SIZES = {"00001.jpg": (640, 480), "00002.jpg": (500, 375), "00003.jpg": (1024, 683)}


def release(rng, model="m1"):
    return {"model_id": model, "azimuth": rng.uniform(0, 6.28), "elevation": rng.uniform(-0.2, 0.5),
            "theta": rng.uniform(-0.05, 0.05), "distance": rng.uniform(1, 3), "f": rng.uniform(300, 900),
            "u": rng.uniform(-20, 20), "v": rng.uniform(-10, 10)}


@pytest.fixture
def dataset(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    for name, size in SIZES.items():
        Image.new("RGB", size, (90, 90, 90)).save(images / name)
    human = {name: release(rng) for name in [*SIZES, "00004.jpg"]}  # 00004 has no image
    refined = {name: {**r, "azimuth": r["azimuth"] + 0.01} for name, r in human.items()}
    with open(tmp_path / "test_anno.pkl", "wb") as f:
        pickle.dump(human, f)
    with open(tmp_path / "test_anno_v2.pkl", "wb") as f:
        pickle.dump(refined, f)
    return tmp_path, images, human, refined


class FakeClient:
    """Just enough of label-studio-sdk's client: ``tasks.list`` returns stored tasks,
    ``projects.get`` a project with finepose's labeling config."""

    def __init__(self, tasks):
        self.tasks = self.projects = self
        self._tasks = tasks

    def list(self, project, fields):
        return [{**t, "id": i + 1} for i, t in enumerate(self._tasks)]

    def get(self, id):
        return type("Project", (), {"label_config": read_template(POSE_ANNOTATION)})()


def test_seed_tasks_keep_the_records_and_predict_the_refined_poses(dataset):
    root, images, human, refined = dataset
    tasks, missing = seed_tasks(root / "test_anno.pkl", images, "/data/local-files/?d=cars/{name}", root / "test_anno_v2.pkl")
    assert missing == ["00004.jpg"] and len(tasks) == 3
    for task in tasks:
        data = task["data"]
        name = data["source"]["key"]
        assert data["image"] == f"/data/local-files/?d=cars/{name}" and data["source"]["split"] == "test"
        assert (data["pose"]["image_width"], data["pose"]["image_height"]) == SIZES[name]
        assert all(data["pose"][k] == human[name][k] for k in seed.FIELDS)  # not one number rewritten
        assert data["model"] == human[name]["model_id"]
        numbers = {r["from_name"]: r["value"]["number"] for r in task["predictions"][0]["result"]}
        expected = seed.to_pose(refined[name], *SIZES[name]).rescaled(*SIZES[name])
        # on the template's 0.1 px grid, so the imported prediction submits unchanged
        assert numbers["u"] == pytest.approx(expected.u, abs=0.05) and round(numbers["u"] * 10, 6).is_integer()
        assert numbers["focal"] == pytest.approx(expected.focal, abs=0.05)


def test_export_round_trips_imported_and_annotated_poses(dataset, tmp_path):
    root, images, human, _ = dataset
    tasks, _ = seed_tasks(root / "test_anno.pkl", images, "/data/local-files/?d={name}")
    annotated = tasks[1]
    moved = pose_from_dict(annotated["data"]["pose"]).rescaled(*SIZES["00002.jpg"])
    numbers = dict(zip(("azimuth", "elevation", "theta", "distance", "focal", "u", "v"), moved.vector() + 1.0))
    annotated["annotations"] = [{"id": 1, "result": [
        {"from_name": k, "to_name": "image", "type": "number", "value": {"number": v}} for k, v in numbers.items()]}]
    summary = export_project(FakeClient(tasks), 1, tmp_path / "export.json", tmp_path / "export.pkl")
    assert summary["tasks"] == 3 and summary["annotated"] == 1 and summary["split"]["method"] == "standard"
    exported = load_pose_set(tmp_path / "export.json")
    assert exported["00002.jpg"].pose.vector().tolist() == list(numbers.values())
    with open(tmp_path / "export.pkl", "rb") as f:
        records = pickle.load(f)
    for name in ("00001.jpg", "00003.jpg"):  # not annotated: exactly the imported record
        assert records[name] == human[name]
        pose = express_in_frame(exported[name].pose, "shapenet_seed")  # exported in shapenet_core, naming it
        assert np.allclose(pose.vector(), seed.to_pose(human[name], *SIZES[name]).rescaled(*SIZES[name]).vector(), atol=1e-9)
    # annotated numbers are in the release meshes' own frame (shapenet_core), converted at export
    back = seed.to_pose(records["00002.jpg"], *SIZES["00002.jpg"]).rescaled(*SIZES["00002.jpg"])
    difference = express_in_frame(back, "shapenet_core").vector() - list(numbers.values())
    difference[0] = (difference[0] + 180) % 360 - 180  # the azimuth, modulo a turn
    assert np.allclose(difference, 0, atol=1e-6), difference
    assert summary["passed_over"] == {}


def test_an_imported_prediction_submitted_unchanged_exports_as_the_refined_record(dataset, tmp_path):
    """import-seed and export read the seven numbers in one frame (no registry: shapenet_core):
    a refined prediction accepted as it is comes back out as the refined record."""
    root, images, _, refined = dataset
    tasks, _ = seed_tasks(root / "test_anno.pkl", images, "/data/local-files/?d={name}", root / "test_anno_v2.pkl")
    for i, task in enumerate(tasks):
        task["annotations"] = [{"id": i + 1, "result": task["predictions"][0]["result"]}]
    export_project(FakeClient(tasks), 1, tmp_path / "export.json", tmp_path / "export.pkl")
    with open(tmp_path / "export.pkl", "rb") as f:
        records = pickle.load(f)
    for name in SIZES:
        got, want = records[name], refined[name]
        assert abs((got["azimuth"] - want["azimuth"] + np.pi) % (2 * np.pi) - np.pi) < 0.002, (name, got, want)
        assert abs(got["elevation"] - want["elevation"]) < 0.002 and abs(got["f"] - want["f"]) < 0.1


def test_export_passes_over_an_unusable_annotation_as_the_backend_does(dataset, tmp_path):
    """An annotation holding distance = 99999999999 (Label Studio's API checks no range):
    the export keeps the imported pose for that task and says why, instead of failing."""
    root, images, human, _ = dataset
    tasks, _ = seed_tasks(root / "test_anno.pkl", images, "/data/local-files/?d={name}")
    moved = pose_from_dict(tasks[1]["data"]["pose"]).rescaled(*SIZES["00002.jpg"])
    numbers = dict(zip(("azimuth", "elevation", "theta", "distance", "focal", "u", "v"), moved.vector()))
    numbers["distance"] = 99999999999
    tasks[1]["annotations"] = [{"id": 1, "result": [
        {"from_name": k, "to_name": "image", "type": "number", "value": {"number": v}} for k, v in numbers.items()]}]
    summary = export_project(FakeClient(tasks), 1, tmp_path / "export.json")
    assert summary["annotated"] == 0 and list(summary["passed_over"]) == [2]
    assert "the annotation's numbers not used" in summary["passed_over"][2] and "distance" in summary["passed_over"][2]
    exported = express_in_frame(load_pose_set(tmp_path / "export.json")["00002.jpg"].pose, "shapenet_seed")
    difference = exported.vector() - moved.vector()
    difference[0] = (difference[0] + 180) % 360 - 180  # the azimuth, modulo a turn
    assert np.allclose(difference, 0, atol=1e-9), difference


def test_random_split_is_seeded_and_recorded(dataset, tmp_path):
    root, images, _, _ = dataset
    tasks, _ = seed_tasks(root / "test_anno.pkl", images, "/x/{name}")
    for task in tasks:
        task["data"]["source"]["split"] = None
    first = export_project(FakeClient(tasks), 1, tmp_path / "a.json", seed_value=5)
    second = export_project(FakeClient(tasks), 1, tmp_path / "b.json", seed_value=5)
    assert first["split"] == {"method": "random", "seed": 5, "test_fraction": pytest.approx(1 / 3)}
    splits = [r.split for r in load_pose_set(tmp_path / "a.json").values()]
    assert splits.count("test") == 1 and splits.count("train") == 2
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_pascal3d_viewpoints(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    Image.new("RGB", (500, 333)).save(images / "2008_000027.jpg")
    viewpoint = {"azimuth": 30.0, "elevation": 10.0, "theta": 2.0, "distance": 5.0, "focal": 1.0,
                 "px": 250.0, "py": 170.0, "viewport": 3000, "model": "car01"}
    (tmp_path / "vp.json").write_text(json.dumps({"2008_000027.jpg": viewpoint, "missing.jpg": viewpoint}))
    tasks, missing = pascal3d_tasks(tmp_path / "vp.json", images, "/data/local-files/?d={name}")
    assert missing == ["missing.jpg"] and tasks[0]["data"]["model"] == "car01"
    pose, origin, _ = final_pose(tasks[0])
    assert origin == "data.pose" and pose.focal == pytest.approx(3000.0) and pose.u == pytest.approx(249.0)


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="no annotated pose and no data.pose"):
        final_pose({"id": 3, "data": {"image": "x"}})
    (tmp_path / "vp.json").write_text("[not json")
    with pytest.raises(DatasetError, match="not a JSON object"):
        pascal3d_tasks(tmp_path / "vp.json", tmp_path, "{name}")


def test_real_release_records_import_exactly(tmp_path):
    anno = data_path("finegrained_pose", "Anno3D", "StanfordCars", "test_anno.pkl")
    with open(anno, "rb") as f:
        records = pickle.load(f, encoding="latin1")
    names = sorted(records)[:20]
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (600 + 10 * i, 400)).save(images / name)
    subset = tmp_path / "test_anno.pkl"
    with open(subset, "wb") as f:
        pickle.dump({n: records[n] for n in names}, f)
    tasks, missing = seed_tasks(subset, images, "/data/local-files/?d={name}")
    assert not missing and len(tasks) == 20
    summary = export_project(FakeClient(tasks), 1, tmp_path / "e.json", tmp_path / "e.pkl")
    with open(tmp_path / "e.pkl", "rb") as f:
        back = pickle.load(f)
    assert summary["tasks"] == 20 and all(back[n] == records[n] for n in names)
