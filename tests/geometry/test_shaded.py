"""Shaded overlays (geometry/shaded.py), each check in a child process with a time limit.

The in-process rendering checks live in ``tests/geometry/shaded_cases.py``: Filament on a software
Vulkan driver now and then deadlocks in ``FilamentRenderer::BeginFrame`` (a third-party
flake, seen once in about six full runs), which would hang the whole suite; here a hang is a
clear failure after one fresh retry, and the rest of the suite goes on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES_TIMEOUT_S = 240  # the cases take ~15 s on 2 cores


def test_shaded_rendering_cases_in_a_child_process():
    """``tests/geometry/shaded_cases.py``: coverage = the exact silhouette for three frames, RGB, the
    overlay's size and outline. One retry in a fresh process when an attempt hangs."""
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/geometry/shaded_cases.py"]
    hangs = []
    for _ in range(2):
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=CASES_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            hangs.append(f"no answer in {CASES_TIMEOUT_S} s")
            continue
        break
    else:
        pytest.fail(f"shaded rendering hung twice (Filament BeginFrame deadlock?): {hangs}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    if skipped and " passed" not in done.stdout:
        pytest.skip(skipped[0])  # no OffscreenRenderer here: the child says why
    assert "5 passed" in done.stdout, done.stdout[-3000:]


def test_rendering_keeps_stdout_clean():
    """Filament logs to stdout from C++; a command's JSON on stdout must stay alone there."""
    from geometry import shaded

    if not shaded.shaded_available():  # probed in a child process, with a time limit
        pytest.skip(f"no shaded rendering here: {shaded.shaded_unavailable_reason()}")
    code = (
        "import json\n"
        "from geometry.procedural import car_mesh\n"
        "from geometry.pose import Pose\n"
        "from geometry.shaded import ShadedRenderer\n"
        "ShadedRenderer(car_mesh()).render(Pose(30, 15, 5, 3.0, 200, 80, 60, 160, 120))\n"
        "print(json.dumps({'ok': True}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == '{"ok": true}'


def test_env_switch_turns_shaded_rendering_off():
    code = ("from geometry.shaded import shaded_available as a, shaded_unavailable_reason as r; "
            "from ls_backend.settings import Settings; s = Settings.from_env(); "
            "print(a(enabled=s.shaded, probe_timeout_s=s.shaded_probe_timeout_s), "
            "r(enabled=s.shaded, probe_timeout_s=s.shaded_probe_timeout_s))")
    env = {**os.environ, "FINEPOSE_SHADED": "0"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False FINEPOSE_SHADED is off"
