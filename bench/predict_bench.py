"""Benchmark: the ML backend's ``/predict`` latency, end to end but for the network.

A self-contained world (tests/support/world.py: the procedural car, a synthetic photo, its
reference mask as a local file, the finepose labeling config) served by the Flask app through
its test client. Each request is one task with a start pose (``data.pose``) and a reference
(``data.reference``), so no segmentation model is involved; it covers reading the task,
loading the photo and the mask, resizing to the working width, refinement, rendering the
projection at the photo's size and encoding both brush regions (RLE).

    python bench/predict_bench.py [--requests 20]

Prints, per photo size and method: the first request (mesh and ray-casting scene built on
first use) and the median and 90th percentile of the others, in milliseconds.
Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ls_backend.server.app import create_app  # noqa: E402
from tests.support.world import make_world  # noqa: E402

PHOTO_SIZES = ((480, 320), (1200, 800), (2400, 1600))


def measure(photo_size, method: str, requests: int) -> tuple[float, list[float]]:
    """(first request's seconds, the other requests' seconds)."""
    with tempfile.TemporaryDirectory() as root:
        world = make_world(Path(root), photo_size=photo_size, method=method)
        client = create_app(world.resources).test_client()
        seconds = []
        for task_id in range(requests + 1):
            task = world.task(task_id=task_id, pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
            body = {"tasks": [task], "label_config": world.label_config, "project": "1.1", "params": {"context": {}}}
            start = time.perf_counter()
            response = client.post("/predict", json=body)
            seconds.append(time.perf_counter() - start)
            if response.status_code != 200:
                sys.exit(f"/predict answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
        return seconds[0], seconds[1:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per photo size and method")
    args = parser.parse_args(argv)
    print(f"{'photo':>11}{'method':>8}{'first ms':>10}{'median ms':>11}{'p90 ms':>9}")
    for size in PHOTO_SIZES:
        for method in ("fast", "paper"):
            first, rest = measure(size, method, args.requests)
            p90 = statistics.quantiles(rest, n=10)[-1] if len(rest) > 1 else rest[0]
            print(f"{size[0]:>5}x{size[1]:<5}{method:>8}{first * 1e3:>10.0f}{statistics.median(rest) * 1e3:>11.0f}{p90 * 1e3:>9.0f}")


if __name__ == "__main__":
    main()
