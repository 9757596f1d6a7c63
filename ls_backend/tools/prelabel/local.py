"""The stages of :mod:`.stages` on this machine: media fetched by threads, segmentation in
its own process(es) (batches of ``batch_size`` photos), refinement in ``workers`` spawned
processes that import no torch. At most ``window`` tasks are in flight, so memory stays
bounded whatever the project's size.

A worker process that dies (killed, out of memory, a crash in a native library) is replaced
and its tasks are tried again; a task on whose watch workers died ``max_attempts`` times ends
failed, retryable (:mod:`.state`).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from ls_backend.settings import Settings
from ls_backend.studio.label_config import PoseConfig
from ls_backend.tools.executors import local_cores
from ls_backend.tools.prelabel.stages import Refinement, Segmentation, fetch_media

LOST = "a worker process died while working on this task {n} times (out of memory, or killed)"


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
    """``run(items)`` yields each work item once it is refined or failed, in no particular order."""

    def __init__(self, config: PoseConfig, settings: Settings, workers: int | None = None, segment_workers: int = 1,
                 batch_size: int = 4, fetch_threads: int = 8, window: int | None = None, max_attempts: int = 2,
                 on_stage=lambda stage, item: None):
        self.workers = max(1, workers or local_cores())
        self.segment_workers = max(1, segment_workers)
        self.batch_size = max(1, batch_size)
        self.fetch_threads = max(1, fetch_threads)
        self.window = window or 4 * (self.workers + self.segment_workers * self.batch_size)
        self.max_attempts = max(1, max_attempts)
        self.fetch = _fetcher(config, settings)
        self.segment = Segmentation(config, settings)
        self.refine = Refinement(config, settings)
        self.on_stage = on_stage  # (stage, item): the item is through that stage (progress)

    def __enter__(self) -> "LocalPipeline":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def run(self, items: Iterable[dict]) -> Iterator[dict]:
        source = iter(items)
        fetchers = ThreadPoolExecutor(self.fetch_threads, thread_name_prefix="fetch")
        segmenters, refiners = _Pool(self.segment_workers), _Pool(self.workers)
        running: dict[Future, tuple[str, list[dict]]] = {}
        to_segment: list[dict] = []
        exhausted = False
        try:
            while True:
                while not exhausted and self._in_flight(running, to_segment) < self.window:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    running[fetchers.submit(self.fetch, item)] = ("fetch", [item])
                fetching = any(stage == "fetch" for stage, _ in running.values())
                while to_segment and (len(to_segment) >= self.batch_size or (exhausted and not fetching)):
                    batch, to_segment = to_segment[: self.batch_size], to_segment[self.batch_size:]
                    running[segmenters.submit(self.segment, batch)] = ("segment", batch)
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    stage, batch = running.pop(future)
                    try:
                        results = future.result()
                    except (BrokenProcessPool, CancelledError):  # its worker died
                        (segmenters if stage == "segment" else refiners).replace(future.generation)
                        yield from self._again(stage, batch, running, segmenters, refiners)
                        continue
                    for item in results if stage == "segment" else [results]:
                        self.on_stage(stage, item)
                        if stage == "refine":
                            yield item
                        elif stage == "fetch" and item.get("segment") and "error" not in item:
                            to_segment.append(item)
                        else:  # fetched without need of segmentation, or segmented (or failed: passed through)
                            running[refiners.submit(self.refine, item)] = ("refine", [item])
        finally:
            fetchers.shutdown(wait=False, cancel_futures=True)
            segmenters.close()
            refiners.close()

    def _again(self, stage, batch, running, segmenters, refiners) -> Iterator[dict]:
        """The items of a dead worker's job, submitted again or, past ``max_attempts``, failed."""
        for item in batch:
            attempts = item.get("attempts", 0) + 1
            if attempts >= self.max_attempts:
                yield {**item, "error": LOST.format(n=attempts), "retry": True, "failed_stage": stage}
                continue
            item = {**item, "attempts": attempts}
            if stage == "segment":
                running[segmenters.submit(self.segment, [item])] = ("segment", [item])
            else:
                running[refiners.submit(self.refine, item)] = ("refine", [item])

    @staticmethod
    def _in_flight(running, to_segment) -> int:
        return sum(len(batch) for _, batch in running.values()) + len(to_segment)


def _fetcher(config, settings):
    def fetch(item: dict) -> dict:
        return fetch_media(item, config, settings)

    return fetch
