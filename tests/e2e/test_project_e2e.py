"""A newcomer's own CAD model and photos, through the command line, on Label Studio 1.23.2 with
its defaults (Personal Access Token, no local-files serving):

1. ``finepose registry add`` on an OBJ in ShapeNetCore's frame turned by an axis rotation (its
   frame found from its shape; the preview kept);
2. ``finepose project create`` with photos rendered at known poses and their masks, the
   backend connected;
3. Retrieve Predictions: every task gets a prediction whose seven numbers, read in the
   registry's frame, are the true pose (azimuth 0 = the model's front);
4. ``project create`` again with one more photo adds only that photo;
5. an annotator (a user of their own) opens the labeling stream in Chromium, sees the
   prediction and submits it: the annotation is theirs and holds the prediction's numbers;
6. a photo without a mask on a machine without segmentation weights: ``project create`` warns,
   and the task's labeling screen says why it has no prediction and what to run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geometry.frames import FRAMES
from geometry.iou import iou
from geometry.masks import write_mask
from geometry.mesh import Mesh, save_mesh
from geometry.pose import Pose
from geometry.procedural import car_mesh
from geometry.render import SilhouetteRenderer
from ls_backend.cli import main
from ls_backend.registry import Registry
from ls_backend.resources import Resources
from ls_backend.server.app import create_app
from ls_backend.settings import Settings
from ls_backend.studio.resolve import prediction_pose
from geometry.frame_detection import axis_rotations
from tests.support.backend_client import serving
from tests.support.browser import annotate_stream, screenshot_task
from tests.support.label_studio import numbers, wait_until

pytestmark = pytest.mark.e2e

SCREENSHOTS = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
SIZE = (480, 320)
TRUTHS = [Pose(azimuth=a, elevation=e, theta=0.0, distance=2.6, focal=560.0, u=240.0 + du, v=165.0, width=SIZE[0],
               height=SIZE[1]) for a, e, du in ((35.0, 12.0, 0.0), (300.0, 18.0, 10.0), (160.0, 10.0, -8.0), (95.0, 25.0, 4.0))]
TOLERANCE = {"azimuth": 3.0, "elevation": 3.0}  # degrees, the stated pose error


def finepose(capsys, *args) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def photo(path: Path, mask_path: Path, renderer, pose: Pose) -> None:
    """A photo of the car (red on grey) at ``pose``, and its mask."""
    mask = renderer.render(pose)
    picture = np.full((*mask.shape, 3), 90, np.uint8)
    picture[mask] = (200, 40, 40)
    Image.fromarray(picture).save(path)
    write_mask(mask_path, mask)


def test_own_model_and_photos_to_predictions(label_studio, tmp_path, capsys, monkeypatch):
    ls = label_studio
    car = car_mesh()
    turn = axis_rotations()[17]
    in_file = Mesh(car.vertices @ FRAMES["shapenet_core"] @ turn.T, car.triangles)  # file = turn @ S^T @ canonical
    (tmp_path / "cad").mkdir()
    save_mesh(tmp_path / "cad" / "my_car.obj", in_file)
    code, added, err = finepose(capsys, "registry", "add", tmp_path / "cad" / "my_car.obj", "--id", "my-car",
                                "--category", "car", "--registry", tmp_path / "registry.json")
    assert code == 0, err
    out = Path(SCREENSHOTS or tmp_path) / "own-project"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(added["preview"] if Path(added["preview"]).is_absolute() else tmp_path / added["preview"],
                out / "registry_add_preview.png")
    assert Image.open(out / "registry_add_preview.png").size[0] > 600

    renderer = SilhouetteRenderer(car)  # photos of the real object: its canonical geometry
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for k, truth in enumerate(TRUTHS[:3]):
        photo(photos / f"car{k}.png", masks / f"car{k}.png", renderer, truth)

    registry = Registry.load(tmp_path / "registry.json")
    settings = Settings(registry=tmp_path / "registry.json", label_studio_url=ls.url, api_key=ls.api_key,
                        model_dir=tmp_path / "model-dir")
    for key, value in {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key,
                       "FINEPOSE_REGISTRY": str(tmp_path / "registry.json"), "MODEL_DIR": str(tmp_path / "cli")}.items():
        monkeypatch.setenv(key, value)
    from ls_backend import resources as resources_module

    resources_module._shared_resources.forget()
    with serving(create_app(Resources(settings))) as backend_url:
        monkeypatch.setenv("FINEPOSE_EDITOR_URL", backend_url)  # the pose editor's links are written too
        code, made, err = finepose(capsys, "project", "create", "--title", "my cars", "--photos", photos,
                                   "--masks", masks, "--model", "my-car", "--backend", backend_url)
        assert code == 0, err
        assert made["created"] and made["added"] == 3 and made["masks"] == 3 and made["media"] == "upload"
        assert made["backend"] == "connected" and made["category"] == "car"
        client = ls.client()
        r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={made['project']}",
                   json={"selectedItems": {"all": True, "excluded": []}})
        assert r.status_code == 200, r.text
        tasks = sorted((t.model_dump() for t in client.tasks.list(project=made["project"], fields="all")),
                       key=lambda t: t["data"]["photo_file"])
        entry = registry.entry("my-car")
        errors = []
        for task, truth in zip(tasks, TRUTHS):
            assert task["data"]["model"] == "my-car" and task["data"]["image"].startswith("/data/upload/")
            assert task["predictions"], f"task {task['id']} has no prediction"
            found = prediction_pose(task, entry.frame_matrix, *SIZE)
            errors.append({"azimuth": abs((found.azimuth - truth.azimuth + 180) % 360 - 180),
                           "elevation": abs(found.elevation - truth.elevation),
                           "iou": iou(SilhouetteRenderer(in_file).render(found), renderer.render(truth))})
        with capsys.disabled():
            print("\nown project: pose errors", json.dumps(errors))
        for error in errors:
            assert error["azimuth"] <= TOLERANCE["azimuth"] and error["elevation"] <= TOLERANCE["elevation"], errors
            assert error["iou"] >= 0.98, errors

        # a second run adds only the new photo
        photo(photos / "car3.png", masks / "car3.png", renderer, TRUTHS[3])
        code, again, err = finepose(capsys, "project", "create", "--title", "my cars", "--photos", photos,
                                    "--masks", masks, "--model", "my-car", "--backend", backend_url)
        assert code == 0, err
        assert (again["project"], again["created"], again["added"], again["already_there"]) == (made["project"], False, 1, 3)
        assert again["backend"] == "already connected"
        assert len(list(client.tasks.list(project=made["project"]))) == 4
        assert "warning" not in again  # every photo has its mask

        # 5. an annotator of their own submits a prediction in the labeling stream
        r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={made['project']}",
                   json={"selectedItems": {"all": True, "excluded": []}})
        assert r.status_code == 200, r.text
        shown = {t.id: [numbers(p.result) for p in client.predictions.list(task=t.id)]
                 for t in client.tasks.list(project=made["project"])}  # before the webhook adds its own
        annotator = ls.create_user("newcomer@finepose.test")
        seen = annotate_stream(ls, made["project"], out / "stream", email=annotator.email, password=annotator.password)
        annotation = client.annotations.get(id=seen["annotation_id"])
        assert annotation.completed_by == annotator.id
        assert numbers(annotation.result) in shown[annotation.task]  # a prediction, submitted as shown
        assert seen["warnings"] == [], seen["warnings"]
        assert "Pose editor link in these instructions" in seen["instructions"], seen["instructions"]
        instructions = client.projects.get(id=made["project"]).expert_instruction  # after two runs: each block once
        assert instructions.count("Place the CAD model") == 1 and instructions.count("Pose editor: the next") == 1

        # 6. a photo without a mask, and no segmentation weights on this machine
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
        Image.open(photos / "car0.png").save(photos / "street.png")
        code, third, err = finepose(capsys, "project", "create", "--title", "my cars", "--photos", photos,
                                    "--masks", masks, "--model", "my-car", "--backend", backend_url)
        assert code == 0 and third["added"] == 1 and third["masks"] == 0, err
        assert "finepose weights download" in third["warning"] and "1 photo(s) have no mask" in third["warning"]
        [street] = [t for t in client.tasks.list(project=made["project"], fields="all") if t.data["photo_file"] == "street.png"]
        r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={made['project']}",
                   json={"selectedItems": {"all": False, "included": [street.id]}})
        assert r.status_code == 200, r.text
        wait_until(lambda: "weights" in (client.tasks.get(id=street.id).data.get("finepose_error") or ""), 60)
        assert client.predictions.list(task=street.id) == []
        shown = screenshot_task(ls, made["project"], street.id, out / "task_without_weights.png", min_regions=0,
                                email=annotator.email, password=annotator.password)
        assert "segmentation weights not installed: run 'finepose weights download'" in shown["text"], shown["text"]

    # what a newcomer gets wrong is said in one line
    for args, words in ((["--model", "nope"], "nope"), (["--photos", tmp_path / "none"], "photo folder not found")):
        base = {"--title": "x", "--photos": photos, "--model": "my-car"}
        base.update(dict(zip(args[::2], args[1::2])))
        code, _, err = finepose(capsys, "project", "create", *[v for kv in base.items() for v in kv])
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
