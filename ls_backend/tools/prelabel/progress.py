"""Progress of ``finepose prelabel`` per stage: tqdm bars on the terminal (tasks/s, ETA,
failures so far) and the figures of the JSON summary.

Each stage's bar counts the tasks that left it (:meth:`StageProgress.left`); the local
pipeline reports every stage, while on Ray the driver sees tasks only once refined (Ray
Data's own bars show its operators) and the fetch/segment/refine bars move together.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

from tqdm import tqdm

from ls_backend.tools.prelabel.stages import STAGES


class StageProgress:
    def __init__(self, total: int, segmenting: int, enabled: bool | None = None):
        self.total = total
        self.started = time.perf_counter()
        self.failed = Counter()  # stage -> tasks that failed there
        self.seconds = defaultdict(list)  # stage -> seconds of each task
        self.peak_rss_mb = Counter()  # stage -> the largest worker peak seen
        disable = None if enabled is None else not enabled  # None: tqdm's "only on a terminal"
        sizes = {"fetch": total, "segment": segmenting, "refine": total, "store": total}
        self.bars = {stage: tqdm(total=sizes[stage], desc=f"{stage:>7}", unit="task", position=index,
                                 disable=True if not sizes[stage] else disable, leave=True)
                     for index, stage in enumerate(STAGES)}

    def left(self, stage: str, item: dict) -> None:
        """``item`` is through ``stage`` (done or failed there)."""
        if stage == "segment" and not item.get("needs_segmentation"):
            return
        bar = self.bars[stage]
        bar.update()
        if "error" in item and item.get("failed_stage", stage) == stage:
            self.failed[stage] += 1
            bar.set_postfix(failed=self.failed[stage], refresh=False)

    def finished(self, item: dict) -> None:
        """``item`` came out of the pipeline: its stages' times and memory are counted."""
        for stage, seconds in item.get("seconds", {}).items():
            self.seconds[stage].append(seconds)
        for stage, mb in item.get("rss_mb", {}).items():
            self.peak_rss_mb[stage] = max(self.peak_rss_mb[stage], mb)

    def stored(self, item: dict, seconds: float | None = None) -> None:
        self.left("store", item)
        if seconds is not None:
            self.seconds["store"].append(seconds)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

    def summary(self) -> dict:
        """Per stage: tasks through it, worker seconds per task (mean and total), failures
        there, and the peak resident memory of its workers (MB, :func:`.stages.peak_rss_mb`;
        locally the fetch stage's is this process's own)."""
        out = {}
        for stage in STAGES:
            times = self.seconds.get(stage, [])
            out[stage] = {"tasks": len(times), "seconds_per_task": sum(times) / len(times) if times else 0.0,
                          "worker_seconds": sum(times), "failed": self.failed[stage]}
            if stage in self.peak_rss_mb:
                out[stage]["peak_rss_mb"] = self.peak_rss_mb[stage]
        return out
