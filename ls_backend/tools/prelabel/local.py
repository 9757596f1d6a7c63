"""The stages of :mod:`.stages` on this machine: media fetched by threads of this process,
segmentation in its own process(es) (batches of ``batch_size`` photos), refinement in
``workers`` spawned processes that import no torch. At most ``window`` tasks are in flight,
so memory stays bounded whatever the project's size.

A worker process that dies (killed, out of memory, a crash in a native library) breaks its
pool: the pool is replaced, and the tasks it held, which may be innocent, are run again one at
a time in a worker of their own. A task whose own worker dies there
:data:`~ls_backend.tools.ray_data.TRIES` times ends failed (it, not the others, kills workers).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from ls_backend.settings import Settings
from ls_backend.studio.label_config import PoseConfig
from ls_backend.tools.executors import local_cores
from ls_backend.tools.prelabel.stages import Refinement, Segmentation, failed, fetch_media
from ls_backend.tools.ray_data import LOST, TRIES


class _Pool:
    """A process pool that is replaced when one of its processes dies. Each future it gives
    is tagged with the pool's ``generation`` (:attr:`Future.generation`), so that the other
    futures of a broken pool replace it once, not the new pool again."""

    def __init__(self, workers: int):
        self.workers = workers
        self.generation = 0
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, function, *args) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            future = self._pool.submit(function, *args)
        except BrokenProcessPool:
            self.replace(self.generation)
            return self.submit(function, *args)
        future.generation = self.generation
        return future

    def replace(self, generation: int) -> None:
        """Drop the pool of ``generation`` if it is still the current one; the next submit
        starts a new one."""
        if generation != self.generation:
            return
        self.generation += 1
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class LocalPipeline:
    """``run(items)`` yields each work item once it is refined or failed, in no particular
    order; ``on_stage(stage, item)`` is told when an item is through a stage (progress)."""

    def __init__(self, config: PoseConfig, settings: Settings, workers: int | None = None, segment_workers: int = 1,
                 batch_size: int = 4, fetch_threads: int = 8, window: int | None = None,
                 on_stage=lambda stage, item: None):
        self.workers = max(1, workers or local_cores())
        self.segment_workers = max(1, segment_workers)
        self.batch_size = max(1, batch_size)
        self.fetch_threads = max(1, fetch_threads)
        self.window = max(window or 4 * (self.workers + self.segment_workers * self.batch_size), self.batch_size)
        self.fetch = _Fetch(config, settings)
        self.stages = {"segment": Segmentation(config, settings), "refine": Refinement(config, settings)}
        self.on_stage = on_stage

    def __enter__(self) -> "LocalPipeline":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def run(self, items: Iterable[dict]) -> Iterator[dict]:
        source = iter(items)
        fetchers = ThreadPoolExecutor(self.fetch_threads, thread_name_prefix="fetch")
        pools = {"segment": _Pool(self.segment_workers), "refine": _Pool(self.workers), "alone": _Pool(1)}
        running: dict[Future, tuple[str, list[dict], bool]] = {}  # future -> (stage, items, run alone)
        to_segment: list[dict] = []
        suspects: deque[tuple[str, dict]] = deque()  # (stage, item) of a broken pool, to run alone
        exhausted = False

        def submit(stage: str, item_or_batch, alone: bool = False) -> None:
            batch = item_or_batch if stage == "segment" else [item_or_batch]
            running[pools["alone" if alone else stage].submit(self.stages[stage], item_or_batch)] = (stage, batch, alone)

        try:
            while True:
                while not exhausted and self._in_flight(running, to_segment, suspects) < self.window:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    running[fetchers.submit(self.fetch, item)] = ("fetch", [item], False)
                fetching = any(stage == "fetch" for stage, _, _ in running.values())
                while to_segment and (len(to_segment) >= self.batch_size or (exhausted and not fetching)):
                    batch, to_segment = to_segment[: self.batch_size], to_segment[self.batch_size:]
                    submit("segment", batch)
                if suspects and not any(alone for _, _, alone in running.values()):
                    stage, item = suspects.popleft()
                    submit(stage, [item] if stage == "segment" else item, alone=True)
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    stage, batch, alone = running.pop(future)
                    try:
                        results = future.result()
                    except (BrokenProcessPool, CancelledError):  # a worker died
                        pools["alone" if alone else stage].replace(future.generation)
                        for item in batch:
                            if not alone:
                                suspects.append((stage, item))
                                continue
                            item = {**item, "lost_workers": item.get("lost_workers", 0) + 1}
                            if item["lost_workers"] < TRIES:
                                suspects.appendleft((stage, item))
                            else:
                                item = failed(item, stage, LOST)
                                self.on_stage(stage, item)
                                yield item
                        continue
                    for item in results if stage == "segment" else [results]:
                        self.on_stage(stage, item)
                        if stage == "refine" or "error" in item:
                            yield item
                        elif stage == "fetch" and item.get("needs_segmentation"):
                            to_segment.append(item)
                        else:  # fetched without need of segmentation, or segmented
                            submit("refine", item)
        finally:
            fetchers.shutdown(wait=False, cancel_futures=True)
            for pool in pools.values():
                pool.close()

    @staticmethod
    def _in_flight(running, to_segment, suspects) -> int:
        return sum(len(batch) for _, batch, _ in running.values()) + len(to_segment) + len(suspects)


class _Fetch:
    """The fetch stage as a callable of one item (for the thread pool)."""

    def __init__(self, config: PoseConfig, settings: Settings):
        self.config, self.settings = config, settings

    def __call__(self, item: dict) -> dict:
        return fetch_media(item, self.config, self.settings)
