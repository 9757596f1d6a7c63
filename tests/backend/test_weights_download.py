"""``finepose weights check`` and ``download``: against a loopback mirror (no weights can be
downloaded here): a file whose sha256 does not match its name is refused and nothing is left;
with the check off it is fetched and then reported present; a mirror that never answers ends
in an error within the timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ls_backend.errors import WeightsError
from ls_backend.segmentation.weights import WEIGHTS, WeightsConfig, download, weights_file_name

REPO = Path(__file__).parents[2]


@pytest.fixture
def mirror(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    for model in WEIGHTS:
        (served / weights_file_name(model)).write_bytes(os.urandom(4096))
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", served
    server.shutdown()


def finepose(*args, torch_home: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ls_backend.cli", "weights", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TORCH_HOME": str(torch_home), **env})


def test_a_file_that_fails_its_hash_is_refused_and_nothing_is_left(mirror, tmp_path):
    url, _ = mirror
    done = finepose("download", "--mirror", url, torch_home=tmp_path / "torch")
    assert done.returncode == 2 and "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in done.stderr, done.stderr
    assert "hash" in done.stderr.lower() and url in done.stderr
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert not any(checkpoints.iterdir())  # no partial or wrong file in the cache


def test_with_the_check_off_both_are_fetched_and_then_present(mirror, tmp_path):
    url, served = mirror
    env = {"FINEPOSE_VERIFY_WEIGHTS": "0"}
    before = json.loads(finepose("check", torch_home=tmp_path / "torch", **env).stdout)
    assert [before[m]["present"] for m in WEIGHTS] == [False, False]
    done = finepose("download", "--mirror", url, torch_home=tmp_path / "torch", **env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["downloaded"] == list(WEIGHTS) and all(report[m]["present"] for m in WEIGHTS)
    for model in WEIGHTS:
        assert Path(report[model]["file"]).read_bytes() == (served / weights_file_name(model)).read_bytes()
    again = json.loads(finepose("download", "--mirror", url, torch_home=tmp_path / "torch", **env).stdout)
    assert again["downloaded"] == []  # nothing fetched twice


def test_a_mirror_that_never_answers_ends_within_the_timeout(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        config = WeightsConfig(maskrcnn=tmp_path / "m.pth", verify=False)
        started = time.monotonic()
        with pytest.raises(WeightsError, match="could not be downloaded"):
            download("maskrcnn", config, f"http://127.0.0.1:{silent.getsockname()[1]}", progress=False, timeout_s=1.0)
        assert time.monotonic() - started < 10 and not (tmp_path / "m.pth").exists()
        assert socket.getdefaulttimeout() is None  # the process's default is restored
    finally:
        silent.close()
