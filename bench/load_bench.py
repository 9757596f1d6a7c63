"""Benchmark: ``/predict`` under load, served by ``finepose serve`` (gunicorn, 1 worker x 8
threads by default) over a self-contained world (tests/support/world.py).

Each request is one task with a start pose (``data.pose``) and a reference mask
(``data.reference``, a local file): no segmentation model. For 1, 8 and 32 concurrent clients
(each sending its next request as soon as the last is answered) for ``--duration`` seconds
each (default 120), it prints throughput, p50/p95/p99 latency, errors (any answer but 200, or
none), and the worker's resident memory sampled every second (it should stay flat after the
warm-up).

    python bench/load_bench.py [--duration 120] [--clients 1 8 32] [--threads 8] [--size 480x320]

Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.served import memory_kb, served, worker_pids  # noqa: E402
from tests.support.world import make_world  # noqa: E402


class Sampler(threading.Thread):
    """The workers' summed VmRSS (MB) once a second, with the time it was read."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master, self.samples, self.stop = master, [], threading.Event()

    def run(self):
        start = time.monotonic()
        while not self.stop.is_set():
            rss = sum(memory_kb(pid) for pid in worker_pids(self.master)) / 1024
            self.samples.append((time.monotonic() - start, rss))
            self.stop.wait(1.0)


def body(world, task_id: int) -> dict:
    pose = replace(world.start_pose, azimuth=world.start_pose.azimuth + (task_id % 7) - 3)
    task = world.task(task_id=task_id, pose=pose.to_dict(), reference=world.url("reference.png"))
    return {"tasks": [task], "label_config": world.label_config, "project": "1.1", "params": {"context": {}}}


def level(world, base: str, clients: int, duration: float, sampler: Sampler) -> None:
    deadline = time.monotonic() + duration
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(10**9))

    def client(_):
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                task_id = next(counter)
            start = time.perf_counter()
            try:
                response = session.post(f"{base}/predict", json=body(world, task_id), timeout=120)
                ok = response.status_code == 200
                what = response.status_code
            except requests.RequestException as exc:
                ok, what = False, type(exc).__name__
            seconds = time.perf_counter() - start
            with lock:
                (latencies if ok else errors).append(seconds if ok else what)

    rss_before = sampler.samples[-1][1] if sampler.samples else 0.0
    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.monotonic() - start
    rss = [r for t, r in sampler.samples if t >= sampler.samples[-1][0] - elapsed]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0] if latencies else 0] * 99
    print(f"{clients:>7}{len(latencies) / elapsed:>9.1f}{statistics.median(latencies) * 1e3 if latencies else 0:>8.0f}"
          f"{cuts[94] * 1e3:>8.0f}{cuts[98] * 1e3:>8.0f}{len(latencies):>9}{len(errors):>7}"
          f"{rss_before:>10.0f}{max(rss, default=0):>9.0f}{(rss[-1] if rss else 0):>9.0f}"
          + (f"   errors: {sorted(set(map(str, errors)))[:5]}" if errors else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=8, help="refinement slots of the one worker")
    parser.add_argument("--size", default="480x320", help="photo WxH (aspect 3:2)")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as root:
        world = make_world(Path(root), photo_size=(width, height))
        with served(world, threads=args.threads) as (base, master):
            sampler = Sampler(master)
            sampler.start()
            for task_id in range(5):  # warm-up: mesh, scene, imports
                requests.post(f"{base}/predict", json=body(world, task_id), timeout=120).raise_for_status()
            print(f"finepose serve: 1 worker x {args.threads} threads; photo {width}x{height}; "
                  f"{args.duration:g} s per level; worker RSS after warm-up {sampler.samples[-1][1]:.0f} MB")
            print(f"{'clients':>7}{'req/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'answers':>9}{'errors':>7}"
                  f"{'RSS0 MB':>10}{'max MB':>9}{'end MB':>9}")
            for clients in args.clients:
                level(world, base, clients, args.duration, sampler)
            sampler.stop.set()
            sampler.join()
            timeline = sampler.samples[:: max(1, len(sampler.samples) // 12)]
            print("worker RSS over time (s: MB): " + ", ".join(f"{t:.0f}: {r:.0f}" for t, r in timeline))


if __name__ == "__main__":
    main()
