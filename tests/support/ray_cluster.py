"""A real Ray cluster on this machine's loopback for the tests (``scripts/ray_local_cluster.sh``,
the script users run too): ``ray_cluster(tmp, nodes)`` starts it and yields the environment a
driver needs (``RAY_ADDRESS``, ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``); it is stopped after."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ray_local_cluster.sh"


def ray_available() -> str | None:
    """Why no Ray cluster can be started here, or None."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        return f"Ray Data is not installed ({exc}): pip install -e '.[ray]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


@contextmanager
def ray_cluster(folder: Path, nodes: int = 2, cpus_per_node: int = 1):
    reason = ray_available()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "NODES": str(nodes), "CPUS_PER_NODE": str(cpus_per_node), "RAY_PORT": str(_free_port()),
           "RAY_CLUSTER_DIR": str(folder), "RAY": str(Path(sys.executable).with_name("ray"))}
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
        if started.returncode:
            logs = "\n".join(p.read_text()[-2000:] for p in folder.glob("*.log"))
            raise RuntimeError(f"the Ray cluster did not start: {started.stderr}\n{logs}")
        exports = shlex.split(started.stdout.strip().splitlines()[-1])[1:]  # export A=1 B=2 ...
        yield dict(pair.split("=", 1) for pair in exports)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
