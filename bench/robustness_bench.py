"""Benchmark: the served backend (``finepose serve``, 1 worker x 8 threads by default) under
hostile input, measured as the closing figures of issue 11 ask.

- malformed request classes (tests/support/malformed.py): how many get a 4xx naming the field, how
  many a 5xx;
- N fuzzed requests with a fixed seed: the 5xx count (goal 0);
- 60 concurrent cold fetches of one URL from a loopback server answering after 1 s: non-200
  answers (goal 0) and upstream hits (1 = shared download);
- 16 requests against a media server that stalls after a few bytes or trickles a byte a
  second: the slowest answer
  (goal <= 30 s with the default timeouts) and ``/health``'s latency meanwhile;
- a brush RLE whose header claims 2^32-1 values (1.1 MB request): the worker's peak RSS
  (VmHWM, goal < 0.5 GB).

    python bench/robustness_bench.py [--fuzz 1000] [--seed 11] [--threads 8]

Numbers, not assertions. Webhooks store into a loopback Label Studio stub (answering 503 for
the class that asks for an unreachable one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.served import memory_kb, served, worker_pids  # noqa: E402
from tests.support.world import make_world  # noqa: E402
from tests.support.hostile_media import HostileMediaServer, StubLabelStudio, rle_claiming  # noqa: E402
from tests.support.malformed import HttpTarget, fuzzed_requests, malformed_cases, plant_files, predict_body, send, valid_task  # noqa: E402


def catalogue(world, target, stub) -> None:
    cases = malformed_cases(world)
    clear = fives = other = 0
    problems = []
    for case in cases:
        stub.down = case.name == "webhook Label Studio unreachable"
        answer = send(target, case)
        named = all(word.lower() in answer.text.lower() for word in case.words)
        if answer.status >= 500 and not case.status[0] >= 500:
            fives += 1
            problems.append(f"5xx {case.name}: {answer.status} {answer.error[:120]}")
        elif case.status[0] <= answer.status <= case.status[1] and named:
            clear += 1
        else:
            other += 1
            problems.append(f"unclear {case.name}: {answer.status} {answer.error[:120]}")
    stub.down = False
    print(f"malformed classes: {len(cases)}; answered as specified with a message naming the field: {clear}; "
          f"unexpected 5xx: {fives}; other: {other}")
    for line in problems:
        print("   ", line)


def fuzz(world, target, count: int, seed: int) -> None:
    statuses = {}
    fives = []
    start = time.perf_counter()
    for fuzzed in fuzzed_requests(world, count, seed):
        answer = target.send("POST", fuzzed.path, json.dumps(fuzzed.body, allow_nan=True).encode())
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status >= 500:
            fives.append(f"{fuzzed.path} {fuzzed.mutations}: {answer.status} {answer.error[:120]}")
    print(f"fuzzed requests: {count} (seed {seed}) in {time.perf_counter() - start:.0f} s; 5xx: {len(fives)}; "
          f"statuses: {dict(sorted(statuses.items()))}")
    for line in fives[:20]:
        print("   ", line)


def cold_fetches(world, base, media, clients: int = 60) -> None:
    url_path = f"late/photo.png?seconds=1&cold={time.time()}"
    task = valid_task(world)
    task["data"]["image"] = media.url(url_path)

    def one(i):
        body = predict_body(world, {**task, "id": i})
        try:
            return requests.post(f"{base}/predict", json=body, timeout=120).status_code
        except requests.RequestException as exc:
            return type(exc).__name__

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(one, range(clients)))
    bad = [s for s in statuses if s != 200]
    print(f"{clients} concurrent cold fetches of one URL: non-200: {len(bad)} {bad[:5]}; upstream hits: "
          f"{media.hits['/late/photo.png']}; all answered in {time.perf_counter() - start:.1f} s")


def stalled(world, base, media, clients: int = 16) -> None:
    def one(i):
        task = valid_task(world)
        task["id"] = i
        # half stall after a few bytes (the read timeout ends them), half trickle a byte a second
        # (every read succeeds: only the total timeout ends them)
        behaviour = f"stall/photo.png?after={20 + i}" if i % 2 == 0 else f"trickle/photo.png?interval=1&i={i}"
        task["data"]["image"] = media.url(behaviour)
        start = time.perf_counter()
        try:
            status = requests.post(f"{base}/predict", json=predict_body(world, task), timeout=600).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        return status, time.perf_counter() - start

    health, done = [], threading.Event()

    def probe():
        while not done.is_set():
            start = time.perf_counter()
            try:
                requests.get(f"{base}/health", timeout=30)
                health.append(time.perf_counter() - start)
            except requests.RequestException:
                health.append(float("inf"))
            done.wait(0.5)

    prober = threading.Thread(target=probe)
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, i) for i in range(clients)]
        time.sleep(0.3)
        prober.start()
        answers = [f.result() for f in futures]
    done.set()
    prober.join()
    statuses = sorted({str(s) for s, _ in answers})
    print(f"{clients} requests, media server stalling or trickling: slowest answer {max(t for _, t in answers):.1f} s, "
          f"statuses {statuses}; /health meanwhile: max {max(health) * 1e3:.0f} ms, "
          f"median {statistics.median(health) * 1e3:.0f} ms over {len(health)} probes")


def rle_bomb(world, base, master: int, requests_: int = 5) -> None:
    [worker] = worker_pids(master)[:1] or [master]
    for _ in range(3):  # warm-up: mesh, scene and imports loaded, as a working backend holds them
        requests.post(f"{base}/predict", json=predict_body(world, valid_task(world)), timeout=120)
    before = memory_kb(worker, "VmHWM")
    task = valid_task(world)
    brush = {"from_name": "masks", "to_name": "image", "type": "brushlabels", "original_width": 480, "original_height": 320,
             "value": {"format": "rle", "rle": rle_claiming(0xFFFFFFFF, body_bytes=270_000), "brushlabels": ["Reference"]}}
    task["annotations"] = [{"id": 1, "result": [brush]}]
    body = json.dumps(predict_body(world, task)).encode()
    statuses = []
    for _ in range(requests_):
        statuses.append(requests.post(f"{base}/predict", data=body, headers={"Content-Type": "application/json"},
                                      timeout=120).status_code)
    peak = memory_kb(worker, "VmHWM")
    print(f"RLE claiming 2^32-1 values ({len(body) / 1e6:.1f} MB request) x {requests_}: statuses {sorted(set(statuses))}; "
          f"worker peak RSS {peak / 1024:.0f} MB (after 3 ordinary requests, before the bombs: {before / 1024:.0f} MB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fuzz", type=int, default=1000, help="fuzzed requests")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        world = make_world(Path(root))
        plant_files(world.root)
        photo = (world.root / "photo.png").read_bytes()
        with HostileMediaServer({"photo.png": photo}) as media, StubLabelStudio() as stub, \
                served(world, threads=args.threads, FINEPOSE_ALLOWED_HOSTS=media.host, LABEL_STUDIO_URL=stub.base,
                       LABEL_STUDIO_API_KEY="stub-token") as (base, master):
            target = HttpTarget(base)
            print(f"finepose serve: 1 worker x {args.threads} threads, default timeouts (connect 5 s, read 10 s, total 20 s)")
            rle_bomb(world, base, master)
            catalogue(world, target, stub)
            fuzz(world, target, args.fuzz, args.seed)
            cold_fetches(world, base, media)
            stalled(world, base, media)
            print(f"worker RSS at the end: {memory_kb(worker_pids(master)[0]) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
