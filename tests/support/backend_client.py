"""What backend tests share: a ``/predict`` call and readers of its answer, a WSGI app served
on a loopback port, and an in-memory Label Studio for the webhook's calls."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from werkzeug.serving import make_server

from geometry.pose import PARAMETER_NAMES
from ls_backend.studio.predictions import filled
from ls_backend.studio.tasks import brush_mask


def predict(client, world, tasks, context=None):
    body = {"tasks": tasks, "label_config": world.label_config, "project": "3.1700000000", "params": {"context": context or {}}}
    return client.post("/predict", json=body)


def numbers(prediction) -> dict:
    return {r["from_name"]: r["value"]["number"] for r in prediction["result"] if r["type"] == "number"}


def brushes(prediction, fill: bool = True) -> dict:
    """The brush regions by label, filled (the prediction draws outlines) unless ``fill`` is False."""
    return {r["value"]["brushlabels"][0]: (filled if fill else np.asarray)(brush_mask(r))
            for r in prediction["result"] if r["type"] == "brushlabels"}


def pose_of(prediction, world):
    values = numbers(prediction)
    return replace(world.true_pose, **{name: values[name] for name in PARAMETER_NAMES})


def first_health(url: str, process, timeout: float = 120.0):
    """The first answer of ``url``/health from a server starting in ``process`` (a Popen),
    polled until it answers; AssertionError when the process exits or ``timeout`` passes."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited ({process.returncode})"
        try:
            return requests.get(f"{url}/health", timeout=5)
        except requests.ConnectionError:
            time.sleep(0.5)
    raise AssertionError(f"{url}/health did not answer within {timeout:.0f} s")


@contextmanager
def serving(app):
    """Serve a WSGI app on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


class FakeStudio:
    """Label Studio's prediction and annotation endpoints, in memory (what the webhook calls)."""

    def __init__(self):
        self.stored: dict[int, dict] = {}
        self.deleted: list[int] = []
        self.updated: dict[int, list] = {}
        self.annotation_results: dict[int, list] = {}  # what annotations.get answers
        self.predictions, self.annotations = self, self  # client.predictions.*, client.annotations.*

    def create(self, **kwargs):
        new_id = 100 + len(self.stored) + len(self.deleted)
        self.stored[new_id] = {"id": new_id, **kwargs}
        return type("Stored", (), {"id": new_id})()

    def list(self, task):
        return [p for p in self.stored.values() if p["task"] == task]

    def delete(self, id):
        self.stored.pop(id)
        self.deleted.append(id)

    def get(self, id):
        return {"id": id, "result": self.annotation_results.get(id)}

    def update(self, id, result):
        self.updated[id] = self.annotation_results[id] = result
