"""Record the HTTP requests a real Label Studio sends to an ML backend and to a webhook.

Run with finepose's venv after ``bash scripts/setup_label_studio.sh``::

    .venv/bin/python scripts/record_ls_requests.py [--out tests/fixtures/ls_requests]

It starts Label Studio (tests/support/label_studio.py), a recording server on 127.0.0.1, creates a
project with a brush + number config, imports a task whose image is a local file, connects
the recorder as ML backend (interactive), retrieves predictions through the Data Manager
action, calls interactive annotating, registers a webhook and creates an annotation. Every
request body is written as JSON (headers that carry the run's secrets are replaced).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.support.label_studio import RecordingBackend, start_label_studio  # noqa: E402

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Car"/>
  </BrushLabels>
  <Number name="azimuth" toName="image"/>
</View>"""


def car_png(w=64, h=48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 90
    img[16:36, 12:52] = (200, 40, 40)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def scrub(obj, secrets: dict):
    """Replace this run's tokens/ports/paths by stable placeholders."""
    text = json.dumps(obj)
    for value, placeholder in secrets.items():
        text = text.replace(value, placeholder)
    return json.loads(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "ls_requests"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from label_studio_sdk.converter.brush import mask2rle

    ls = start_label_studio()
    print(f"Label Studio {ls.url} ready in {ls.start_seconds:.1f} s", flush=True)
    rec = RecordingBackend(
        predict=lambda body: [
            {
                "model_version": "recorder-0.1",
                "score": 0.5,
                "result": [
                    {"from_name": "azimuth", "to_name": "image", "type": "number", "value": {"number": 30}}
                ],
            }
            for _ in (body or {}).get("tasks", [])
        ]
    )
    try:
        client = ls.client()
        project = client.projects.create(title="recording", label_config=LABEL_CONFIG)
        images = ls.local_storage(project.id, "recording")
        (images / "car.png").write_bytes(car_png())
        client.projects.import_tasks(id=project.id, request=[{"image": ls.local_file_url(images / "car.png")}])
        task = next(iter(client.tasks.list(project=project.id)))

        # 1. connect the ML backend: LS calls /health and /setup
        r = ls.api(
            "POST", "/api/ml",
            json={"url": rec.url, "project": project.id, "title": "recorder", "is_interactive": True},
        )  # fmt: skip
        print("POST /api/ml ->", r.status_code, r.text[:300], flush=True)
        r.raise_for_status()
        ml_id = r.json()["id"]
        time.sleep(1)
        connect = list(rec.requests)
        n0 = len(rec.requests)

        # 2. Data Manager action "Retrieve Predictions"
        r = ls.api(
            "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project.id}",
            json={"selectedItems": {"all": False, "included": [task.id]}},
        )  # fmt: skip
        print("retrieve predictions ->", r.status_code, r.text[:300], flush=True)
        time.sleep(1)
        retrieve = rec.requests[n0:]
        n1 = len(rec.requests)
        preds = client.predictions.list(task=task.id)
        print("predictions stored:", [(p.model_version, p.result) for p in preds], flush=True)

        # 3. interactive annotating (what the labeling UI sends with smart tools / auto-annotation)
        context = {
            "result": [
                {
                    "original_width": 64, "original_height": 48, "image_rotation": 0,
                    "value": {"x": 20.0, "y": 40.0, "width": 2.0, "height": 2.0, "keypointlabels": ["Car"]},
                    "is_positive": True, "id": "ctx1", "from_name": "mask", "to_name": "image",
                    "type": "keypointlabels", "origin": "manual",
                }
            ]
        }  # fmt: skip
        r = ls.api("POST", f"/api/ml/{ml_id}/interactive-annotating", json={"task": task.id, "context": context})
        print("interactive ->", r.status_code, r.text[:300], flush=True)
        interactive = rec.requests[n1:]
        n2 = len(rec.requests)

        # 4. webhook on ANNOTATION_CREATED, then an annotation
        r = ls.api(
            "POST", "/api/webhooks/",
            json={
                "project": project.id, "url": rec.url + "/hook", "send_payload": True,
                "send_for_all_actions": False, "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
                "is_active": True, "headers": {"X-Finepose": "e2e"},
            },
        )  # fmt: skip
        print("webhook ->", r.status_code, r.text[:200], flush=True)
        r.raise_for_status()
        mask = np.zeros((48, 64), np.uint8)
        mask[16:36, 12:52] = 255
        rle = mask2rle(mask)
        annotation = client.annotations.create(
            id=task.id,
            result=[
                {"from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": 64,
                 "original_height": 48, "image_rotation": 0,
                 "value": {"format": "rle", "rle": rle, "brushlabels": ["Car"]}},
                {"from_name": "azimuth", "to_name": "image", "type": "number", "value": {"number": 42}},
            ],  # fmt: skip
        )
        time.sleep(3)
        after_annotation = rec.requests[n2:]

        secrets = {ls.api_key: "<ADMIN_TOKEN>", ls.url: "http://127.0.0.1:<LS_PORT>",
                   f"http://localhost:{ls.port}": "http://localhost:<LS_PORT>",
                   rec.url: "http://127.0.0.1:<BACKEND_PORT>", str(ls.local_files_root): "<LOCAL_FILES_ROOT>",
                   f"127.0.0.1:{rec.port}": "127.0.0.1:<BACKEND_PORT>"}  # fmt: skip

        def save(name, entries, note):
            data = {"note": note, "label_studio": "1.23.2", "requests": scrub(entries, secrets)}
            (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
            print(f"{name}: {[(e['method'], e['path']) for e in entries]}", flush=True)

        save("connect", connect, "POST /api/ml {url, project, is_interactive}: what LS sends on connect")
        save("retrieve_predictions", retrieve,
             "POST /api/dm/actions?id=retrieve_tasks_predictions&project=ID {selectedItems}")  # fmt: skip
        save("interactive_annotating", interactive, "POST /api/ml/{id}/interactive-annotating {task, context}")
        save("webhook_annotation_created", after_annotation,
             "webhook (send_payload) + anything sent to the ML backend after POST /api/tasks/{id}/annotations/")  # fmt: skip
        # the bare bodies, for backend tests
        for name, entries, path in (
            ("setup_body", connect, "/setup"), ("predict_body_retrieve", retrieve, "/predict"),
            ("predict_body_interactive", interactive, "/predict"),
            ("webhook_body_annotation_created", after_annotation, "/hook"),
            ("ml_webhook_body_annotation_created", after_annotation, "/webhook"),
        ):  # fmt: skip
            bodies = [e["json"] for e in entries if e["path"] == path]
            if bodies:
                (out / f"{name}.json").write_text(json.dumps(scrub(bodies[0], secrets), indent=2) + "\n")
        print("annotation", annotation.id, "completed_by", annotation.completed_by)
    finally:
        rec.close()
        log = ls.log_tail(20000)
        ls.stop()
        for line in log.splitlines():
            if re.search(r"ERROR|Traceback|ml\.|/api/ml|webhook", line):
                print("LS log:", line[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
