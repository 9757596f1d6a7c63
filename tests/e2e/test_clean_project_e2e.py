"""A project that stays clean as a team works in it: Label Studio 1.23.2 with its defaults, a
Personal Access Token, Chromium.

1. An annotator opens a task while the manager runs ``editor links`` and then Retrieve
   Predictions: every task holds its best prediction, plus the back view for the front view,
   and nothing twice.
2. A typed distance over the template's max is refused by Label Studio on Submit.
3. A task whose stored annotation (made through the API) holds such a distance still gets a
   prediction, and says why in its message box and ``finepose_error``.
4. An annotator changes the azimuth of a prediction and submits: the stored annotation's
   Projection and IoU become those of its own numbers.
5. ``finepose prelabel`` on a project with a broken task exits 3, its failures grouped; the
   reason is in the Data Manager and on the labeling screen.

The counts are printed and written to ``clean_project.json`` (``$FINEPOSE_SCREENSHOT_DIR`` or
the test's tmp folder, with the screenshots).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geometry.iou import iou
from geometry.masks import write_mask
from geometry.pose import PARAMETER_NAMES
from ls_backend.editor.links import fill_project_links
from ls_backend.resources import Resources
from ls_backend.server.app import create_app
from ls_backend.studio import taskdata
from ls_backend.studio.client import as_dict
from ls_backend.studio.predictions import outline
from ls_backend.studio.tasks import brush_mask, find_brush
from tests.support.backend_client import serving
from tests.support.browser import browser_available, walk_steps
from tests.support.label_studio import numbers, template_project, wait_until
from tests.support.world import make_world

pytestmark = pytest.mark.e2e
SCREENSHOTS = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
FRONT = dict(azimuth=0.0, elevation=10.0, theta=0.0)


def finepose_predictions(client, task_id: int, version: str) -> list[dict]:
    return [as_dict(p) for p in client.predictions.list(task=task_id) if p.model_version == version]


def message(prediction: dict) -> str:
    return " ".join(r["value"]["text"][0] for r in prediction["result"] if r["type"] == "textarea")


def retrieve(ls, project_id: int) -> None:
    r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
               json={"selectedItems": {"all": True, "excluded": []}})
    assert r.status_code == 200, r.text
    taskdata.flush()


def test_a_project_stays_clean_as_a_team_works_in_it(label_studio, tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ls = label_studio
    assert ls.token_kind == "pat"
    out = Path(SCREENSHOTS or tmp_path) / "clean-project"
    out.mkdir(parents=True, exist_ok=True)
    (out / "world").mkdir(exist_ok=True)
    world = make_world(out / "world")
    client = ls.client()
    project, data = template_project(ls, world, "clean project")
    folder = Path(ls.local_storage(project.id, "clean-project"))
    front_pose = replace(world.true_pose, **FRONT)
    front = world.renderer.render(front_pose)
    photo = np.full((*front.shape, 3), 90, np.uint8)
    photo[front] = (200, 40, 40)
    Image.fromarray(photo).save(folder / "front.png")
    write_mask(folder / "front_reference.png", front)
    posed = {**data, "pose": world.start_pose.to_dict()}
    client.projects.import_tasks(id=project.id, request=[
        posed, {**data, "image": ls.local_file_url(folder / "front.png"),
                "reference": ls.local_file_url(folder / "front_reference.png")},
        posed, posed, posed])
    opened, ambiguous, typed_badly, stored_badly, edited = sorted(t.id for t in client.tasks.list(project=project.id))
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    resources = Resources(settings)
    version = resources.model_version
    figures = {}
    with serving(create_app(resources)) as backend_url:
        settings = resources.settings = replace(settings, editor_url=backend_url)  # known once it serves
        r = ls.api("POST", "/api/ml", json={"url": backend_url, "project": project.id, "title": "finepose",
                                            "is_interactive": True})
        assert r.status_code == 201 and r.json()["readable_state"] == "Connected", r.text

        # 1. A task opened while `editor links` runs, then Retrieve Predictions.
        browsing = {}
        walker = threading.Thread(target=lambda: browsing.update(walk_steps(
            ls, project.id, out, [{"do": "open", "task": opened}])))
        walker.start()
        links = fill_project_links(client, project.id, settings)
        walker.join()
        retrieve(ls, project.id)
        counts = {task: len(finepose_predictions(client, task, version))
                  for task in (opened, ambiguous, typed_badly, stored_badly, edited)}
        figures["predictions_per_task_after_open_links_retrieve"] = counts
        assert links["tasks"] == 5 and browsing["steps"][0]["fields"]["azimuth"][0] != ""
        assert counts == {opened: 1, ambiguous: 2, typed_badly: 1, stored_badly: 1, edited: 1}, counts
        editor_field = client.tasks.get(id=opened).data["editor"]
        assert editor_field.startswith(f"{backend_url}/editor/{opened}?t=")  # a plain URL in the Data Manager

        # 3. An annotation holding distance = 99999999999, saved through the API (Label Studio's
        #    API checks no range): the task still gets its prediction, and says why.
        bad = [{**r, "value": {"number": 99999999999 if r["from_name"] == "distance" else r["value"]["number"]}}
               for r in finepose_predictions(client, stored_badly, version)[0]["result"] if r["type"] == "number"]
        client.annotations.create(id=stored_badly, result=bad)
        said = wait_until(lambda: "not used" in client.tasks.get(id=stored_badly).data.get("finepose_error", "")
                          and client.tasks.get(id=stored_badly).data["finepose_error"], what="the webhook's note")
        [kept] = wait_until(lambda: [p for p in finepose_predictions(client, stored_badly, version) if "not used" in message(p)],
                            what="the webhook's prediction")
        assert len(finepose_predictions(client, stored_badly, version)) == 1
        assert "the annotation's numbers not used" in said and "distance" in said and "data.pose" in said
        assert "not used" in message(kept) and kept["score"] > 0.95

        # 2. and 4. In the browser: a typed distance over the max is refused; an edited azimuth
        #    is saved, and what Label Studio then holds shows those numbers.
        azimuth = numbers(finepose_predictions(client, edited, version)[0]["result"])["azimuth"]
        new_azimuth = round((azimuth + 15.0) % 360, 1)
        steps = walk_steps(ls, project.id, out, [
            {"do": "submit", "task": typed_badly, "type": {"distance": 99999999999}},
            {"do": "submit", "task": edited, "type": {"azimuth": new_azimuth}},
            {"do": "open", "task": stored_badly},
        ])["steps"]
        refused, saved, reopened = steps
        assert refused["posted"] == [] and client.annotations.list(id=typed_badly) == []
        assert any("less than or equal to 1000000" in w for w in refused["warnings"]), refused["warnings"]
        assert len(saved["posted"]) == 1, saved
        assert "the annotation's numbers not used" in reopened["screen"]  # beside the editor link

        def corrected():
            [annotation] = client.annotations.list(id=edited)
            result = as_dict(annotation)["result"]
            drawn = find_brush(result, "masks", "Projection")
            values = numbers(result)
            pose = replace(world.true_pose, **{k: values[k] for k in PARAMETER_NAMES})
            shown = world.renderer.render(pose)
            return (drawn is not None and np.array_equal(brush_mask(drawn), outline(shown))
                    and "iou_before" not in values and (result, shown))

        result, shown = wait_until(corrected, what="the annotation's Projection redrawn for its numbers")
        assert numbers(result)["azimuth"] == pytest.approx(new_azimuth)
        assert numbers(result)["iou_after"] == pytest.approx(iou(shown, world.reference), abs=0.0015)
        figures["predictions_per_task_at_the_end"] = {
            task: len(finepose_predictions(client, task, version))
            for task in (opened, ambiguous, typed_badly, stored_badly, edited)}
        # the webhooks replaced the submitted tasks' predictions: still one each (two for the front view)
        assert figures["predictions_per_task_at_the_end"] == counts, figures

    # 5. prelabel on a project (no ML backend attached) with a broken task.
    second, data2 = template_project(ls, world, "prelabel project")
    client.projects.import_tasks(id=second.id, request=[{**data2, "pose": world.start_pose.to_dict()},
                                                       {**data2, "model": "no-such-car"}])
    good, broken = sorted(t.id for t in client.tasks.list(project=second.id))
    env = {**os.environ, "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key,
           "FINEPOSE_REGISTRY": str(world.root / "registry.json"), "MODEL_DIR": str(out / "model-dir")}
    run = subprocess.run([sys.executable, "-m", "ls_backend.cli", "prelabel", "--project", str(second.id),
                          "--workers", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 3, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "1 of 2 tasks failed" in run.stderr and "1 x unknown model 'no-such-car'" in run.stderr
    assert "unknown model 'no-such-car'" in client.tasks.get(id=broken).data["finepose_error"]
    assert client.tasks.get(id=good).data["finepose_error"] == ""
    shown = walk_steps(ls, second.id, out / "prelabel", [{"do": "data_manager"}, {"do": "open", "task": broken}])
    table, screen = shown["steps"]
    assert "unknown model 'no-such-car'" in table["text"]
    assert "unknown model 'no-such-car'" in screen["screen"] and "Open in the pose editor" in screen["screen"]
    figures["prelabel"] = {k: summary[k] for k in ("tasks", "done", "failed", "failures")}
    (out / "clean_project.json").write_text(json.dumps(figures, indent=1, default=str))
    print(json.dumps(figures, default=str))
