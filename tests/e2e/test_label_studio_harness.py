"""The end-to-end harness works against a real Label Studio (pytest -m e2e).

Needs ``bash scripts/setup_label_studio.sh`` (Label Studio in .venv-ls, Chromium, playwright);
skips, saying so, without it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.support.browser import browser_available, screenshot_task
from tests.support.label_studio import RecordingBackend

pytestmark = pytest.mark.e2e

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Car" background="#00ff00"/>
  </BrushLabels>
  <Number name="azimuth" toName="image"/>
</View>"""
W, H = 320, 240


def photo() -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]
    img[60:180, 80:240] = (40, 40, 200)
    return img


def car_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[70:170, 90:230] = 255
    return m


def brush_result(mask: np.ndarray, azimuth: float) -> list[dict]:
    from label_studio_sdk.converter.brush import mask2rle

    return [
        {
            "id": "car1", "from_name": "mask", "to_name": "image", "type": "brushlabels",
            "original_width": W, "original_height": H, "image_rotation": 0,
            "value": {"format": "rle", "rle": mask2rle(mask), "brushlabels": ["Car"]},
        },
        {"id": "az1", "from_name": "azimuth", "to_name": "image", "type": "number", "value": {"number": azimuth}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def project(label_studio):
    ls = label_studio
    client = ls.client()
    proj = client.projects.create(title="harness", label_config=LABEL_CONFIG)
    folder = ls.local_storage(proj.id, "harness")
    paths = []
    for i in range(2):
        path = folder / f"car{i}.png"
        Image.fromarray(photo()).save(path)
        paths.append(path)
    client.projects.import_tasks(id=proj.id, request=[{"image": ls.local_file_url(p)} for p in paths])
    tasks = sorted(client.tasks.list(project=proj.id), key=lambda t: t.id)
    assert len(tasks) == 2
    return {"id": proj.id, "tasks": [t.id for t in tasks], "paths": paths}


def test_server_and_token(label_studio):
    ls = label_studio
    assert ls.url.startswith("http://127.0.0.1:")
    me = ls.client().users.whoami()
    assert me.email == ls.username
    # the image behind a task URL is served to API-token holders (what an ML backend does)
    r = requests.get(ls.url + ls.local_file_url(ls.local_files_root / "missing.png"), timeout=30)
    assert r.status_code in (401, 403, 404)


def test_image_served(label_studio, project):
    ls = label_studio
    task = ls.client().tasks.get(id=project["tasks"][0])
    url = task.data["image"]
    assert url.startswith("/data/local-files/?d=")
    r = ls.api("GET", url)  # Bearer <access token exchanged for the admin's PAT>
    assert r.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), photo())


def test_prediction_round_trip(label_studio, project):
    from label_studio_sdk.converter.brush import decode_rle

    client = label_studio.client()
    task_id = project["tasks"][0]
    result = brush_result(car_mask(), 37.5)
    created = client.predictions.create(task=task_id, result=result, score=0.9, model_version="finepose-test")
    back = client.predictions.get(id=created.id)
    assert back.task == task_id and back.model_version == "finepose-test" and back.score == pytest.approx(0.9)
    by_name = {r["from_name"]: r for r in back.result}
    assert by_name["azimuth"]["value"]["number"] == 37.5
    assert by_name["mask"]["value"]["rle"] == result[0]["value"]["rle"]
    assert by_name["mask"]["value"]["brushlabels"] == ["Car"]
    # the RLE decodes to the mask again (RGBA planes; alpha carries the mask)
    decoded = np.reshape(decode_rle(by_name["mask"]["value"]["rle"]), (H, W, 4))[..., 3]
    assert np.array_equal(decoded > 0, car_mask() > 0)
    listed = client.predictions.list(task=task_id)
    assert [p.id for p in listed] == [created.id]


def test_second_user_annotates(label_studio, project):
    ls = label_studio
    rater = ls.create_user("rater1@finepose.test", first_name="Rater", last_name="One")
    assert rater.id != ls.admin.id
    rc = rater.client()
    assert rc.users.whoami().email == "rater1@finepose.test"
    task_id = project["tasks"][1]
    ann = rc.annotations.create(id=task_id, result=brush_result(car_mask(), 12.0), lead_time=3.5)
    assert ann.completed_by == rater.id
    anns = ls.client().annotations.list(id=task_id)
    assert [(a.id, a.completed_by) for a in anns] == [(ann.id, rater.id)]
    # a second rater on the same task: each annotation is attributed to its author
    rater2 = ls.create_user("rater2@finepose.test")
    ann2 = rater2.client().annotations.create(id=task_id, result=brush_result(car_mask(), 14.0))
    assert ann2.completed_by == rater2.id
    authors = {a.completed_by for a in ls.client().annotations.list(id=task_id)}
    assert authors == {rater.id, rater2.id}


def test_ml_backend_connection_and_requests(label_studio, project):
    """LS 1.23 calls /health + /setup on connect, /predict on 'Retrieve Predictions' and on
    interactive annotating, and POSTs ANNOTATION_CREATED to a webhook (and to the backend's /webhook)."""
    ls = label_studio
    client = ls.client()
    proj = client.projects.create(title="ml-connection", label_config=LABEL_CONFIG)
    folder = ls.local_storage(proj.id, "ml")
    Image.fromarray(photo()).save(folder / "a.png")
    client.projects.import_tasks(id=proj.id, request=[{"image": ls.local_file_url(folder / "a.png")}])
    task_id = next(iter(client.tasks.list(project=proj.id))).id

    def predict(body):
        return [
            {"result": brush_result(car_mask(), 21.0), "score": 0.8, "model_version": "recorder-0.1"}
            for _ in body["tasks"]
        ]

    with RecordingBackend(predict=predict) as rec:
        r = ls.api("POST", "/api/ml", json={"url": rec.url, "project": proj.id, "title": "rec", "is_interactive": True})
        assert r.status_code == 201, r.text
        ml = r.json()
        assert ml["readable_state"] == "Connected"
        assert rec.find("/health", "GET") and rec.find("/setup", "POST")
        setup = rec.find("/setup")[0]["json"]
        assert setup["project"].startswith(f"{proj.id}.") and setup["schema"] == proj.label_config
        # Label Studio sends the project creator's *legacy* token, which its own default settings
        # refuse: finepose ignores it and uses LABEL_STUDIO_API_KEY instead
        assert setup["access_token"] and setup["access_token"] != ls.api_key
        refused = requests.get(ls.url + "/api/current-user/whoami",
                               headers={"Authorization": f"Token {setup['access_token']}"}, timeout=30)
        assert refused.status_code == 401
        assert setup["hostname"] == f"http://localhost:{ls.port}"

        r = ls.api(
            "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={proj.id}",
            json={"selectedItems": {"all": False, "included": [task_id]}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        body = rec.wait_for("/predict")[0]["json"]
        assert [t["id"] for t in body["tasks"]] == [task_id]
        assert body["tasks"][0]["data"]["image"].startswith("/data/local-files/?d=")
        assert body["label_config"] == proj.label_config and body["params"]["context"] is None
        preds = client.predictions.list(task=task_id)
        assert len(preds) == 1 and preds[0].model_version == "recorder-0.1"

        # the backend can fetch the image with the hostname /setup gave it and its own token
        img = requests.get(
            setup["hostname"] + body["tasks"][0]["data"]["image"], headers=ls.admin.connection.headers(), timeout=30,
        )  # fmt: skip
        assert img.status_code == 200 and img.content[:4] == b"\x89PNG"

        context = {"result": [{"from_name": "mask", "to_name": "image", "type": "keypointlabels",
                               "value": {"x": 50.0, "y": 50.0, "width": 1.0, "keypointlabels": ["Car"]},
                               "is_positive": True, "original_width": W, "original_height": H}]}  # fmt: skip
        r = ls.api("POST", f"/api/ml/{ml['id']}/interactive-annotating", json={"task": task_id, "context": context})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["result"][1]["value"]["number"] == 21.0
        inter = rec.wait_for("/predict", count=2)[1]["json"]
        assert inter["params"]["context"] == context
        assert inter["tasks"][0]["predictions"]  # interactive requests carry predictions/drafts/annotations

        r = ls.api(
            "POST", "/api/webhooks/",
            json={"project": proj.id, "url": rec.url + "/hook", "send_payload": True,
                  "send_for_all_actions": False, "actions": ["ANNOTATION_CREATED"]},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        ann = client.annotations.create(id=task_id, result=brush_result(car_mask(), 5.0))
        hook = rec.wait_for("/hook")[0]["json"]
        assert hook["action"] == "ANNOTATION_CREATED"
        assert hook["annotation"]["id"] == ann.id and hook["task"]["id"] == task_id
        assert hook["project"]["id"] == proj.id
        ml_hook = rec.wait_for("/webhook")[0]["json"]  # LS also tells the ML backend itself
        assert ml_hook["action"] == "ANNOTATION_CREATED"


def test_screenshot_of_labeling_screen(label_studio, project, tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ls = label_studio
    task_id = project["tasks"][0]
    client = ls.client()
    if not client.predictions.list(task=task_id):  # when run alone
        client.predictions.create(task=task_id, result=brush_result(car_mask(), 37.5), model_version="finepose-test")
    out = tmp_path / "labeling.png"
    info = screenshot_task(ls, project["id"], task_id, out)
    assert out.exists() and info["regions"] >= 1 and info["image_size"] == [W, H]
    shot = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert shot.shape == (800, 1280, 3)
    assert shot.std() > 20  # not a blank page
    # the brush mask (#00ff00 over the photo) is drawn: strongly green pixels exist
    green = (shot[..., 1] > 120) & (shot[..., 0] < 80) & (shot[..., 2] < 120)
    assert green.sum() > 2000, green.sum()
