"""``finepose up`` as a person runs it: it starts a real Label Studio 1.23.2 (from .venv-ls) and
the backend, makes a user with a Personal Access Token and the synthetic demo project; the
demo tasks get predictions at the poses their photos were made at; Ctrl-C leaves no process
behind; a second ``up`` reuses the data (same login, same project)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ls_backend.studio.client import Connection
from ls_backend.studio.resolve import prediction_pose
from tests.support.label_studio import LS_VENV, free_port, label_studio_available

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
DEMO_AZIMUTHS = {"demo0.png": 35.0, "demo1.png": 300.0, "demo2.png": 150.0}


def start_up(data: Path, sigint_ignored: bool = False, args: tuple = (), env: dict | None = None
             ) -> tuple[subprocess.Popen, dict]:
    """``finepose up`` in its own process; what it said when ready. ``sigint_ignored``: as a
    shell starts a background job (``finepose up &``): SIGINT ignored when it starts."""
    process = subprocess.Popen(
        # Label Studio's virtualenv as README gives it, relative to where finepose runs (the servers run elsewhere)
        [sys.executable, "-m", "ls_backend.cli", "up", "--data", str(data), "--label-studio", os.path.relpath(LS_VENV, REPO),
         "--port", str(free_port()), "--backend-port", str(free_port()), *args],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None)
    started = time.monotonic()
    while time.monotonic() - started < 400:
        ready, _, _ = select.select([process.stdout], [], [], 5)
        if ready:
            line = process.stdout.readline()
            if line.startswith("{"):
                return process, json.loads(line)
        if process.poll() is not None:
            raise AssertionError(f"finepose up stopped ({process.returncode}): {process.stderr.read()[-3000:]}")
    process.kill()
    raise AssertionError("finepose up was not ready within 400 s")


def ctrl_c(process: subprocess.Popen, said: dict, sig: int = signal.SIGINT, twice: bool = False) -> None:
    """Stop ``up`` with ``sig`` (``twice``: again 0.3 s later, while it is stopping, as an
    impatient person does); it exits 0 and leaves neither server behind."""
    process.send_signal(sig)
    if twice:
        time.sleep(0.3)
        process.send_signal(sig)
    assert process.wait(timeout=90) == 0, process.stderr.read()[-2000:]
    for pid in said["pids"]:  # Label Studio's and the backend's: gone, none left as an orphan
        assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text(), pid


def assert_demo_predicted(link: Connection, said: dict, project: int) -> None:
    """Retrieve Predictions on the demo project; each task's prediction is within 3 degrees of
    the azimuth its photo was made at, and its editor link is where browsers reach the editor."""
    r = requests.post(f"{said['label_studio']}/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
                      json={"selectedItems": {"all": True, "excluded": []}}, headers=link.headers(), timeout=300)
    assert r.status_code == 200, r.text
    tasks = [t.model_dump() for t in link.sdk().tasks.list(project=project, fields="all")]
    assert len(tasks) == 3 and all(t["data"]["editor"].startswith(said["editor"]) for t in tasks)
    for task in tasks:
        found = prediction_pose(task, "pascal3d", 480, 320)
        assert found is not None, task
        wanted = DEMO_AZIMUTHS[task["data"]["photo_file"]]
        assert abs((found.azimuth - wanted + 180) % 360 - 180) < 3.0, (task["data"]["photo_file"], found.azimuth)


@pytest.mark.skipif(label_studio_available() is not None, reason=str(label_studio_available()))
def test_up_serves_a_demo_with_predictions_and_stops_cleanly(tmp_path):
    data = tmp_path / "up"
    process, said = start_up(data)
    try:
        assert said["demo"] is True and said["login"] and said["password"]
        project = int(said["project"].rstrip("/").split("/")[-2])
        token = json.loads((data / "up.json").read_text())["token"]
        assert oct((data / "up.json").stat().st_mode)[-3:] == "600"
        link = Connection(said["label_studio"], token)
        assert_demo_predicted(link, said, project)
    finally:
        if process.poll() is None:
            ctrl_c(process, said)
    again, said_again = start_up(data, sigint_ignored=True)
    try:
        same_project = said_again["project"].split("/projects/")[1] == said["project"].split("/projects/")[1]
        assert same_project and (said_again["login"], said_again["password"]) == (said["login"], said["password"])
        assert len(list(Connection(said_again["label_studio"], json.loads((data / "up.json").read_text())["token"])
                        .sdk().tasks.list(project=project))) == 3
    finally:
        ctrl_c(again, said_again, twice=True)
    assert os.path.isdir(data / "label-studio")


def test_up_attached_to_a_running_label_studio_as_docker_compose_runs_it(label_studio):
    """docker/docker-compose.yml's ``finepose up --label-studio-url``, on loopback: Label Studio
    is already running (its user from LABEL_STUDIO_USERNAME/PASSWORD), its local-files root is
    up's ``files/``; up logs in, makes a token, serves the backend and the demo, which gets
    predictions; SIGTERM (``docker stop``) stops the backend and leaves Label Studio running;
    the password is neither printed nor saved."""
    data = label_studio.local_files_root.parent  # data/files is Label Studio's local-files root
    user = label_studio.create_user("compose@finepose.test", with_token=False)  # as Label Studio's env makes it
    env = {"LABEL_STUDIO_USERNAME": user.email, "LABEL_STUDIO_PASSWORD": user.password}
    editor = f"http://localhost:{free_port()}"  # where browsers would reach it: only written into links
    process, said = start_up(data, args=("--label-studio-url", label_studio.url, "--editor-url", editor), env=env)
    try:
        assert said["label_studio"] == label_studio.url and said["login"] == user.email
        assert user.password not in json.dumps(said) + (data / "up.json").read_text()
        token = json.loads((data / "up.json").read_text())["token"]
        project = int(said["project"].rstrip("/").split("/")[-2])
        link = Connection(label_studio.url, token)
        assert link.sdk().users.whoami().email == user.email
        assert_demo_predicted(link, said, project)
        assert said["editor"] == editor
    finally:
        if process.poll() is None:
            ctrl_c(process, said, signal.SIGTERM)
    assert requests.get(label_studio.url + "/health", timeout=10).status_code == 200
    (data / "up.json").unlink()  # its token lost: Label Studio keeps one per user, so up says what to do
    again = subprocess.run([sys.executable, "-m", "ls_backend.cli", "up", "--data", str(data), "--label-studio-url",
                            label_studio.url, "--backend-port", str(free_port())], cwd=REPO, env={**os.environ, **env},
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already has a Personal Access Token" in again.stderr, again.stderr[-2000:]
    assert "LABEL_STUDIO_API_KEY" in again.stderr
