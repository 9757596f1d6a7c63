"""The finepose_error writer: one background thread; a waiting status is replaced by a newer one."""

import threading

from ls_backend.studio import taskdata as status
from ls_backend.settings import Settings

SETTINGS = Settings(label_studio_url="http://127.0.0.1:9", api_key="x")


def test_a_slow_label_studio_gets_one_write_per_task_with_the_newest_status(monkeypatch):
    """While a write hangs (Label Studio slow or unreachable: each write waits for its
    timeouts), 50 more failures of that task queue one write, which carries the newest text;
    another task keeps its own write."""
    started, release, written = threading.Event(), threading.Event(), []

    def slow_write(settings, task_id, text, project=None):
        started.set()
        release.wait(10)
        written.append((task_id, text))

    monkeypatch.setattr(status, "_write", slow_write)
    task = {"id": 7, "data": {}}
    assert status.report(SETTINGS, task, "first failure") is not None
    assert started.wait(10)  # the writer holds the first write
    futures = [status.report(SETTINGS, task, f"failure {k}") for k in range(50)]
    assert status.report(SETTINGS, {"id": 8, "data": {}}, "other task") is not None
    release.set()
    status.flush(timeout=10)
    assert futures[0] is not None and all(f is None for f in futures[1:])
    assert written == [(7, "first failure"), (7, "failure 49"), (8, "other task")]


def test_the_field_names_files_not_server_folders(tmp_path):
    """finepose_error reads as text and as HTML (the labeling screen): no server paths, no
    angle brackets, one line of at most MAX_CHARS."""
    settings = Settings(label_studio_url="http://127.0.0.1:9", api_key="x", model_dir=tmp_path)
    text = status.status_text(settings, f"keypoints of model 'car': {tmp_path}/models/car_kp.json is\nnot <valid>")
    assert text == "keypoints of model 'car': car_kp.json is not \u2039valid\u203a"
    assert len(status.status_text(settings, "x" * 2000)) == status.MAX_CHARS

