"""The smart box through Label Studio 1.23's own labeling screen, in headless Chromium.

A photo shows two cars and its reference mask holds both; the task's start pose is on the
left one. An annotator opens the task from the Data Manager, switches Auto-Annotation on,
picks the smart rectangle tool (Auto-Detect -> rectangle) and the label *Car to pose*, and
drags a box around the right car. finepose's interactive answer poses the right car only,
and its message, shown on the screen, says the box kept one of the reference's two objects.
The screenshot ``box.png`` goes to ``$FINEPOSE_SCREENSHOT_DIR`` (else the test's tmp folder).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geometry.iou import iou
from geometry.masks import write_mask
from geometry.pose import PARAMETER_NAMES
from ls_backend.resources import Resources
from ls_backend.server.app import create_app
from ls_backend.studio.predictions import filled
from ls_backend.studio.taskdata import import_fields
from ls_backend.studio.tasks import brush_mask
from ls_backend.templates import POSE_ANNOTATION, read_template
from tests.support.backend_client import serving
from tests.support.browser import browser_available, task_view
from tests.support.world import TRUE_POSE, make_world

pytestmark = pytest.mark.e2e
SCREENSHOTS = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
CAR_A = replace(TRUE_POSE, distance=5.0, u=120.0, v=170.0)  # left
CAR_B = replace(TRUE_POSE, azimuth=70.0, distance=4.5, u=350.0, v=165.0)  # right, turned


def test_a_box_drawn_in_label_studio_poses_the_car_inside_it(label_studio, tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ls = label_studio
    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    car_a, car_b = world.renderer.render(CAR_A), world.renderer.render(CAR_B)
    client = ls.client()
    config = read_template(POSE_ANNOTATION)
    project = client.projects.create(title="smart box", label_config=config)
    folder = ls.local_storage(project.id, "smart-box")
    photo = np.full((*car_a.shape, 3), 110, np.uint8)
    photo[car_a], photo[car_b] = (200, 50, 40), (40, 90, 200)
    Image.fromarray(photo).save(folder / "photo.png")
    write_mask(folder / "two_cars.png", car_a | car_b)
    client.projects.import_tasks(id=project.id, request=[{
        "image": ls.local_file_url(folder / "photo.png"), "model": "toy-car",
        "reference": ls.local_file_url(folder / "two_cars.png"), "pose": replace(CAR_A, azimuth=45.0).to_dict(),
        **import_fields(config)}])  # fmt: skip
    [task] = [t.id for t in client.tasks.list(project=project.id)]
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    ys, xs = np.nonzero(car_b)
    box = (xs.min() - 8, ys.min() - 8, xs.max() + 8, ys.max() + 8)
    out = Path(SCREENSHOTS or tmp_path) / "smart-box"
    out.mkdir(parents=True, exist_ok=True)
    with serving(create_app(Resources(settings))) as backend_url:
        r = ls.api("POST", "/api/ml", json={"url": backend_url, "project": project.id, "title": "finepose",
                                            "is_interactive": True})  # fmt: skip
        assert r.status_code == 201, r.text
        seen = task_view(ls, project.id, out, box_task=task, box=[float(v) for v in box], box_label="Car to pose")
    answer = seen["box"]
    assert answer["status"] == 200, answer
    shapes = {m["value"]["brushlabels"][0]: m for m in answer["result"] if m["type"] == "brushlabels"}
    projection = filled(brush_mask(shapes["Projection"]))
    assert iou(projection, car_b) > 0.95 and iou(projection, car_a) < 0.05  # the boxed car, not the start's
    assert iou(filled(brush_mask(shapes["Reference"])), car_b) > 0.99  # the reference drawn: the boxed car only
    [message] = [m["value"]["text"][0] for m in answer["result"] if m["type"] == "textarea"]
    assert "the box keeps 1 of the reference's 2 objects" in message, message
    assert answer["shown"] == message  # the annotator reads it on the screen
    fields = answer["fields"]
    assert abs(float(fields["u"][0]) - CAR_B.u) < 15 and set(PARAMETER_NAMES) <= set(fields)
