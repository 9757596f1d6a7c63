"""An annotation team's day in a default Label Studio 1.23.2, as the annotator sees it.

Label Studio starts with its default token settings (legacy tokens off); the admin creates a
Personal Access Token as the UI does and the backend runs with it as LABEL_STUDIO_API_KEY,
downloading task media from Label Studio (no local roots). The manager retrieves predictions;
the annotator opens the labeling stream in Chromium, sees the prediction (the projection's
outline checked in the screenshot), submits it unchanged with no warning, and the webhook's
refined prediction arrives; a task that
fails shows its reason in a Data Manager column and is predicted once the cause is fixed.
In the task view, a front view's back-view rival is one click away above the photo, and six
smart keypoints are placed through the editor (Auto-Annotation, the smart keypoint tool, a
label, a click on the photo).
The same flow runs once with a legacy token.

Screenshots go to ``$FINEPOSE_SCREENSHOT_DIR`` (else the test's tmp folder); round trips are
printed and written to ``round_trips.json`` there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from scipy import ndimage

from geometry.camera import project as project_points
from geometry.iou import iou
from geometry.pose import PARAMETER_NAMES
from geometry.procedural_keypoints import car_keypoints
from ls_backend.studio import taskdata as status
from ls_backend.server.app import create_app
from ls_backend.studio.predictions import filled, outline
from ls_backend.resources import Resources
from ls_backend.studio.tasks import brush_mask
from ls_backend.studio.taskdata import import_fields
from ls_backend.templates import POSE_ANNOTATION, read_template
from tests.support.world import make_world
from tests.support.browser import annotate_stream, browser_available, task_view
from tests.support.label_studio import numbers, wait_until
from tests.support.backend_client import serving

pytestmark = pytest.mark.e2e
SCREENSHOTS = os.environ.get("FINEPOSE_SCREENSHOT_DIR")


def inside_point(mask: np.ndarray, xy, depth_px: float = 4.0) -> tuple[float, float]:
    """The pixel nearest to ``xy`` (x, y px) lying ``depth_px`` or more inside ``mask`` (the
    image's edge counts as outside), ``xy`` rounded when no pixel is that deep: a click there
    misses the mask's outline, and a projection outline drawn within ~2 px of it."""
    deep = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] >= depth_px
    y, x = np.clip(np.round(xy[::-1]).astype(int), 0, np.array(mask.shape) - 1)
    if not deep.any():
        return float(x), float(y)
    _, (rows, cols) = ndimage.distance_transform_edt(~deep, return_indices=True)
    return float(cols[y, x]), float(rows[y, x])


def pose_iou(world, values: dict, true_pose=None) -> float:
    """IoU of the pose ``values`` with the silhouette at ``true_pose`` (the world's by default)."""
    pose = replace(world.true_pose, **{k: values[k] for k in PARAMETER_NAMES})
    if true_pose is None:
        return iou(world.renderer.render(pose), world.reference)
    return iou(world.renderer.render(pose), world.renderer.render(true_pose))


def retrieve(ls, project_id: int) -> float:
    """The manager's Data Manager action "Retrieve Predictions" on all tasks; its seconds."""
    t0 = time.monotonic()
    r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
               json={"selectedItems": {"all": True, "excluded": []}})
    assert r.status_code == 200, r.text
    seconds = time.monotonic() - t0
    status.flush()  # the finepose_error field is written just after /predict answers
    return seconds


def annotator_day(ls, out: Path) -> dict:
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"world-{ls.token_kind}").mkdir(exist_ok=True)
    world = make_world(out / f"world-{ls.token_kind}")
    client = ls.client()
    project = client.projects.create(title=f"annotator day ({ls.token_kind})", label_config=read_template(POSE_ANNOTATION))
    folder = ls.local_storage(project.id, f"day-{ls.token_kind}")
    for name in ("photo.png", "reference.png"):
        shutil.copy(world.root / name, folder / name)
    front = front_view(world, folder)  # a car seen from the front: its back view fits almost as well
    data = {"image": ls.local_file_url(folder / "photo.png"), "model": "toy-car",
            "reference": ls.local_file_url(folder / "reference.png"), **import_fields(read_template(POSE_ANNOTATION))}
    client.projects.import_tasks(id=project.id, request=[
        {**data, "pose": world.start_pose.to_dict()}, {**data, "model": "no-such-car"},
        {**data, "image": ls.local_file_url(folder / "front.png"),
         "reference": ls.local_file_url(folder / "front_reference.png")}])
    good, bad, ambiguous = sorted(t.id for t in client.tasks.list(project=project.id))
    # The backend as README says: LABEL_STUDIO_URL + the user's token, media fetched from Label Studio.
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    trips = {"token": ls.token_kind}
    with serving(create_app(Resources(settings))) as backend_url:
        r = ls.api("POST", "/api/ml", json={"url": backend_url, "project": project.id, "title": "finepose",
                                            "is_interactive": True})
        assert r.status_code == 201 and r.json()["readable_state"] == "Connected", r.text

        # 1. Retrieve: the good task is predicted; the failing one gets no prediction and its reason.
        trips["retrieve_3_tasks_s"] = round(retrieve(ls, project.id), 3)
        [predicted] = client.predictions.list(task=good)
        assert predicted.score > 0.97
        assert client.predictions.list(task=bad) == []
        assert "unknown model 'no-such-car'" in client.tasks.get(id=bad).data["finepose_error"]
        assert client.tasks.get(id=good).data.get("finepose_error", "") == ""
        # the front view: its back view is stored first as a second prediction, the best last
        rival, best = sorted(client.predictions.list(task=ambiguous), key=lambda p: p.id)
        assert best.score >= rival.score >= best.score - 0.05
        assert abs((numbers(best.result)["azimuth"] - numbers(rival.result)["azimuth"]) % 360 - 180) < 30
        assert pose_iou(world, numbers(best.result), front) > 0.95

        # 2. The annotator's labeling stream in Chromium: see, check, submit unchanged.
        seen = annotate_stream(ls, project.id, out / f"browser-{ls.token_kind}")
        fields = seen["fields"]
        assert seen["warnings"] == [], seen["warnings"]  # no "Number ... is not valid" dialog
        assert fields["iou_before"][1] and fields["iou_after"][1]  # read-only
        assert not fields["azimuth"][1]
        assert all(bottom <= 1000 - 60 for _, _, bottom, _ in fields.values()), fields  # above the bottom bar
        assert all(fits for *_, fits in fields.values()), fields  # no value truncated
        assert {k: float(v[0]) for k, v in fields.items()} == pytest.approx(numbers(predicted.result))
        check_outline_in_screenshot(out / f"browser-{ls.token_kind}" / "stream.png", seen["image_box"], world,
                                    numbers(predicted.result))
        assert "finepose_error" in seen["data_manager_text"] and "no-such-car" in seen["data_manager_text"]
        trips["submit_click_to_saved_s"] = seen["submit_seconds"]

        # 3. The webhook refines the submitted pose into the task's one prediction (the same
        #    one when the refinement of the submitted pose changes nothing): at least as good.
        t0 = time.monotonic()
        wait_until(lambda: requests.get(f"{backend_url}/metrics", timeout=10).json().get("webhook_requests", 0) >= 1,
                   what="the webhook")
        [newest] = wait_until(lambda: (p := client.predictions.list(task=good)) and len(p) == 1 and p,
                              what="the webhook's prediction")
        [annotation] = client.annotations.list(id=good)
        trips["submit_to_webhook_done_s"] = round(time.monotonic() - t0 + seen["submit_seconds"], 3)
        submitted = pose_iou(world, numbers(annotation.result))
        refined = pose_iou(world, numbers(newest.result))
        trips["iou_submitted"], trips["iou_webhook"] = round(submitted, 4), round(refined, 4)
        assert refined >= submitted - 0.002, (submitted, refined)

        # 4. The task view (Data Manager -> click the task): the front view opens its best
        # prediction, the back view is one click away above the photo; then smart keypoints:
        # Auto-Annotation on, the smart keypoint tool, a label and a click on the photo, six times.
        names = ["left_front_wheel", "left_back_wheel", "left_front_light", "right_front_light",
                 "upper_left_windshield", "left_back_trunk"]
        keypoints = car_keypoints()
        pixels = project_points(world.true_pose, np.array([keypoints[n] for n in names]))
        labels = keypoint_labels(read_template(POSE_ANNOTATION))
        asides = [inside_point(world.reference, xy) for xy in pixels]  # where a retry clicks
        view = task_view(ls, project.id, out / f"browser-{ls.token_kind}", alternatives_task=ambiguous,
                         keypoints_task=good,
                         clicks=[(labels[n], *xy, *aside) for n, xy, aside in zip(names, pixels, asides)])
        shown = view["alternatives"]
        assert float(shown["opened_azimuth"]) == pytest.approx(numbers(best.result)["azimuth"])
        assert "second finepose prediction" in shown["opened_message"]
        assert {float(c["azimuth"]) for c in shown["clicked"]} == {numbers(p.result)["azimuth"] for p in (best, rival)}
        assert any(c["message"].startswith("Second hypothesis") for c in shown["clicked"])
        clicks = view["keypoints"]["clicks"]
        assert [c["status"] for c in clicks] == [200] * 6, clicks
        for i, click in enumerate(clicks[:3], start=1):
            assert click["message"].startswith(f"{i} of 4 keypoints placed: click {4 - i} more"), click
        assert clicks[-1]["message"].startswith("pose fitted to 6 keypoints"), clicks[-1]
        assert clicks[-1]["shown"] == clicks[-1]["message"]  # the annotator reads it on the screen
        projection = next(m for m in view["keypoints"]["result"]
                          if m["type"] == "brushlabels" and m["value"]["brushlabels"] == ["Projection"])
        assert iou(filled(brush_mask(projection)), world.reference) > 0.95
        fields = view["keypoints"]["fields"]
        assert pose_iou(world, {k: float(fields[k][0]) for k in PARAMETER_NAMES}) > 0.95  # the numbers on screen
        trips["keypoint_click_s"] = [c["seconds"] for c in clicks]

        # 5. The failing task's cause fixed (its model named), retrieve again: predicted, reason cleared.
        client.tasks.update(id=bad, data={**client.tasks.get(id=bad).data, "model": "toy-car"})
        trips["retrieve_after_fix_s"] = round(retrieve(ls, project.id), 3)
        assert len(client.predictions.list(task=bad)) == 1
        assert client.tasks.get(id=bad).data["finepose_error"] == ""
    (out / f"round_trips-{ls.token_kind}.json").write_text(json.dumps(trips, indent=1))
    print(json.dumps(trips))
    return trips


def front_view(world, folder: Path):
    """A photo and reference of the world's car seen from the front (azimuth 0): the pose."""
    from geometry.masks import write_mask

    pose = replace(world.true_pose, azimuth=0.0, elevation=10.0, theta=0.0)
    mask = world.renderer.render(pose)
    photo = np.full((*mask.shape, 3), 90, np.uint8)
    photo[mask] = (200, 40, 40)
    Image.fromarray(photo).save(folder / "front.png")
    write_mask(folder / "front_reference.png", mask)
    return pose


def keypoint_labels(config: str) -> dict:
    """CAD keypoint name (a label's alias) -> the label's text in the labeling config."""
    from label_studio_sdk.label_interface import LabelInterface

    control = LabelInterface(config).get_control("keypoints")
    return {alias: tag.attr["value"] for alias, tag in control.labels_attrs.items()}


def check_outline_in_screenshot(png: Path, box, world, values: dict) -> None:
    """The projection's outline is drawn where the predicted pose's silhouette edge is, and the
    photo shows through inside it (an outline, not a fill)."""
    shot = np.asarray(Image.open(png).convert("RGB")).astype(int)
    x0, y0, bw, bh, nw, nh = box
    pose = replace(world.true_pose, **{k: values[k] for k in PARAMETER_NAMES})
    silhouette = world.renderer.render(pose)
    edge = outline(silhouette)
    ys, xs = np.nonzero(edge)
    sx = np.clip(np.round(x0 + (xs + 0.5) / nw * bw).astype(int), 0, shot.shape[1] - 1)
    sy = np.clip(np.round(y0 + (ys + 0.5) / nh * bh).astype(int), 0, shot.shape[0] - 1)
    r, g, b = shot[sy, sx].T  # the brush layer blends cyan over the photo: cyan-ish, not pure
    near_cyan = (g - r > 40) & (b - r > 40)
    assert near_cyan.mean() > 0.5, f"only {near_cyan.mean():.2f} of the outline pixels are drawn cyan"
    inside = silhouette & ~np.asarray(Image.fromarray(edge).resize((nw, nh))) & (world.reference)
    from scipy import ndimage

    deep = ndimage.binary_erosion(inside, iterations=6)
    ys, xs = np.nonzero(deep)
    sx = np.round(x0 + (xs + 0.5) / nw * bw).astype(int)
    sy = np.round(y0 + (ys + 0.5) / nh * bh).astype(int)
    photo = np.array([200, 40, 40])  # the world's car colour
    assert (np.abs(shot[sy, sx] - photo).sum(axis=1) < 60).mean() > 0.9, "the photo is not visible inside the outline"


def test_annotator_day_with_a_personal_access_token(label_studio, tmp_path):
    assert label_studio.token_kind == "pat" and label_studio.api_key.count(".") == 2  # a JWT
    annotator_day(label_studio, Path(SCREENSHOTS or tmp_path))


def test_annotator_day_with_a_legacy_token(label_studio_legacy, tmp_path):
    assert label_studio_legacy.token_kind == "legacy" and "." not in label_studio_legacy.api_key
    annotator_day(label_studio_legacy, Path(SCREENSHOTS or tmp_path))
