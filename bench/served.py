"""Shared by the serving benchmarks: ``finepose serve`` (gunicorn) on a free loopback port in a
subprocess, over a self-contained world (tests/support/world.py), and the memory of its
worker processes read from /proc (Linux)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(world, workers: int = 1, threads: int = 8, **env):
    """``(base URL, master pid)`` of ``finepose serve`` over ``world``; ``env`` adds settings."""
    port = free_port()
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "FINEPOSE_REGISTRY": str(world.settings.registry),
               "FINEPOSE_LOCAL_FILES_ROOTS": ",".join(map(str, world.settings.local_files_roots)),
               "MODEL_DIR": str(world.root / "served-model-dir"), "LOG_LEVEL": "WARNING",
               **{k: str(v) for k, v in env.items()}}
    log = open(world.root / f"serve-{port}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "ls_backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", str(workers), "--threads", str(threads)], env=environ, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"finepose serve did not start: {(world.root / f'serve-{port}.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers (children) of ``master``."""
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of ``pid`` in kB, 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
