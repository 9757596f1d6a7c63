"""finepose installed as a user installs it: a wheel, non-editable, in a fresh virtualenv.

The wheel is built from this checkout and installed with ``--no-deps`` into a new virtualenv
whose only other path is the dependencies' site-packages (a plain path line, so the editable
install's finder is *not* loaded): what runs is the installed package alone, from a folder
outside the checkout. Then ``finepose serve`` answers /health, ``finepose dataset
import-seed`` writes tasks and ``finepose study create`` makes its Label Studio project, both
reading templates shipped as package data.
"""

from __future__ import annotations

from dataclasses import replace

import json
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.label_studio import free_port

REPO = Path(__file__).resolve().parents[2]


def clean_env(extra: dict | None = None) -> dict:
    """This environment without PYTHONPATH (which would put a checkout before the wheel)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **(extra or {})}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the finepose wheel; returns its ``bin`` folder."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "node_modules", "__pycache__", "finepose-*"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (root / "dist").glob("finepose-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(subprocess.check_output([env_dir / "bin" / "python", "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True,
                                        env=clean_env()).strip())
    (site / "finepose-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", env_dir / "bin" / "python", "install", "--no-deps", "-q", wheel],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    located = subprocess.check_output([env_dir / "bin" / "python", "-c", "import ls_backend; print(ls_backend.__file__)"],
                                      text=True, cwd=root, env=clean_env()).strip()
    assert located.startswith(str(site)), f"finepose imported from {located}, not from the installed wheel"
    return env_dir / "bin"


def run(bin_dir: Path, *args, cwd: Path, env: dict | None = None, timeout: float = 300):
    done = subprocess.run([bin_dir / "finepose", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(env), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_installed_serve_answers_health(installed, tmp_path):
    from tests.support.world import make_world

    port = free_port()
    world = make_world(tmp_path)  # a registry: without one /health answers 503 naming FINEPOSE_REGISTRY
    env = clean_env({"MODEL_DIR": str(tmp_path / "model-dir"), "FINEPOSE_REGISTRY": str(world.root / "registry.json")})
    server = subprocess.Popen([installed / "finepose", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "finepose serve did not answer within 60 s"
                time.sleep(0.5)
        assert health.status_code == 200 and health.json()["status"] == "UP" and health.json()["models"] == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_installed_dataset_import_reads_its_template(installed, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (600, 400), (90, 90, 90)).save(images / "00001.jpg")
    record = {"model_id": "m1", "azimuth": 0.5, "elevation": 0.2, "theta": 0.01, "distance": 2.0, "f": 500.0,
              "u": 3.0, "v": -2.0}
    with open(tmp_path / "test_anno.pkl", "wb") as f:
        pickle.dump({"00001.jpg": record}, f)
    run(installed, "dataset", "import-seed", "--anno", tmp_path / "test_anno.pkl", "--images", images,
        "--out", tmp_path / "tasks.json", cwd=tmp_path)
    [task] = json.loads((tmp_path / "tasks.json").read_text())
    assert task["data"]["model"] == "m1" and task["data"]["pose"]["convention"] == "seed"


@pytest.mark.e2e
def test_installed_study_create_makes_its_project(installed, label_studio, tmp_path):
    from geometry.pose import Pose
    from ls_backend.datasets.posesets import PoseRecord, write_pose_set
    from tests.support.world import make_world

    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(world.root / "photo.png", images / "img0.png")
    pose: Pose = world.true_pose
    write_pose_set(tmp_path / "human.json", [PoseRecord("img0.png", "toy-car", None, pose=pose)], None)
    moved = replace(pose, azimuth=pose.azimuth + 6.0)  # two different outlines to compare
    write_pose_set(tmp_path / "refined.json", [PoseRecord("img0.png", "toy-car", None, pose=moved)], None)
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.api_key}
    created = run(installed, "study", "create", "--human", tmp_path / "human.json", "--refined", tmp_path / "refined.json",
                  "--images", images, "--registry", world.root / "registry.json", "--studies", tmp_path / "studies",
                  "--sample", "1", "--raters", "1", cwd=tmp_path, env=env)
    project = label_studio.client().projects.get(id=created["projects"][0]["project"])
    assert "Worse" in project.label_config and "Better" in project.label_config
