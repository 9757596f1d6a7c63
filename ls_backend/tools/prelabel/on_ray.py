"""The stages of :mod:`.stages` on a Ray cluster, as one Ray Data stream: media fetched by
Ray tasks, segmentation by a pool of actors (``map_batches``; ``gpus_per_actor`` GPUs each),
refinement by a pool of one-CPU actors; the driver stores the results as they stream out.
Ray Data bounds the rows in flight, so memory stays bounded whatever the project's size.

Fault tolerance is Ray's (:mod:`ls_backend.tools.ray_data`): a dead actor is restarted and
its block of tasks run again; a block that still fails is reported as failed, retryable
(:mod:`.state`), so that every task ends predicted or failed with a reason.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ls_backend.errors import DataError
from ls_backend.settings import Settings
from ls_backend.studio.label_config import PoseConfig
from ls_backend.tools.executors import import_ray
from ls_backend.tools.prelabel.stages import Refinement, Segmentation, fetch_media
from ls_backend.tools.ray_data import (
    ACTOR_RETRIES, LOST, TRIES, check_address, outcomes, pack, rows, stdout_to_stderr, unpack,
)


def _task_id(item: dict) -> int:
    return item["id"]


def _fetch_row(row: dict, config: PoseConfig, settings: Settings) -> dict:
    return pack(row["id"], fetch_media(unpack(row), config, settings))


class _SegmentBatch:
    """A segmentation actor: the models are loaded once, on its first photo."""

    def __init__(self, config: PoseConfig, settings: Settings):
        self.segment = Segmentation(config, settings)

    def __call__(self, batch: dict) -> dict:
        items = self.segment([unpack({"item": blob}) for blob in batch["item"]])
        packed = [pack(item["id"], item) for item in items]
        return {"id": [row["id"] for row in packed], "item": [row["item"] for row in packed]}


class _RefineRow:
    """A refinement actor: meshes are loaded once per actor."""

    def __init__(self, config: PoseConfig, settings: Settings):
        self.refine = Refinement(config, settings)

    def __call__(self, row: dict) -> dict:
        return pack(row["id"], self.refine(unpack(row)))


class RayPipeline:
    """Connects to the cluster at ``address`` (``auto``: the one this machine belongs to;
    ``host:6379``: its head; not ``ray://``, :func:`~ls_backend.tools.ray_data.check_address`)
    for the duration of a ``with`` block; ``run(items)`` yields each item once refined or failed.

    ``segment_actors``: segmentation actors (default: one per GPU when the cluster has GPUs,
    else one per node), each with ``gpus_per_actor`` GPUs (default 1 on a GPU cluster, else 0)
    and one CPU, fed ``batch_size`` photos at a time. ``workers``: refinement actors, one CPU
    each (default: the CPUs the segmentation actors leave, at least one). ``fetch_tasks``:
    media fetches at once (I/O: they reserve no CPU). Pools are sized from the resources present
    when the run starts; pools the cluster cannot hold are refused (Ray would wait forever).
    Only the tasks that need segmentation go through the segmentation actors.
    """

    def __init__(self, config: PoseConfig, settings: Settings, address: str, workers: int | None = None,
                 segment_actors: int | None = None, gpus_per_actor: float | None = None, batch_size: int = 4,
                 fetch_tasks: int = 8):
        check_address(address)
        self.ray = import_ray()
        self.config, self.settings, self.address = config, settings, address
        self.requested_workers = workers
        self.segment_actors = segment_actors
        self.gpus_per_actor = gpus_per_actor
        self.batch_size = max(1, batch_size)
        self.fetch_tasks = max(1, fetch_tasks)
        self.workers = 0
        self.nodes = 0

    def __enter__(self) -> "RayPipeline":
        self._quiet = stdout_to_stderr()
        self._quiet.__enter__()
        try:
            self.ray.init(address=self.address)  # workers' messages on stderr (stdout_to_stderr)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            self._quiet.__exit__(None, None, None)
            raise DataError(f"cannot connect to the Ray cluster at {self.address!r}: {exc}") from None
        resources = self.ray.cluster_resources()
        self.nodes = sum(1 for node in self.ray.nodes() if node.get("Alive"))
        gpus = self.gpus = resources.get("GPU", 0)
        if self.gpus_per_actor is None:
            self.gpus_per_actor = 1.0 if gpus else 0.0
        self.cpus = int(resources.get("CPU", 1))
        if self.segment_actors is None:  # one per GPU, else one per node, leaving a CPU to refine
            per_gpu = int(gpus // self.gpus_per_actor) if self.gpus_per_actor else 0
            self.segment_actors = per_gpu or min(self.nodes, self.cpus - 1)
        self.segment_actors = max(1, self.segment_actors)
        return self

    def __exit__(self, *exc) -> bool:
        self.ray.shutdown()
        self._quiet.__exit__(*exc)
        return False

    def run(self, items: Iterable[dict]) -> Iterator[dict]:
        items = list(items)
        if not items:
            return
        segmenting = [item for item in items if item.get("needs_segmentation")]
        others = [item for item in items if not item.get("needs_segmentation")]
        self._check_resources(bool(segmenting))
        streams = []
        if segmenting:  # only these go through the segmentation actors
            streams.append(self._fetched(segmenting).map_batches(
                _SegmentBatch, fn_constructor_args=(self.config, self.settings), batch_size=self.batch_size,
                concurrency=self.segment_actors, num_cpus=1, num_gpus=self.gpus_per_actor, batch_format="numpy",
                **ACTOR_RETRIES))
        if others:
            streams.append(self._fetched(others))
        stream = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
        stream = stream.map(_RefineRow, fn_constructor_args=(self.config, self.settings), concurrency=self.workers,
                            num_cpus=1, **ACTOR_RETRIES)
        yield from outcomes(stream, items, _task_id,
                            lambda item: {**item, "error": LOST, "transient": True, "failed_stage": "refine"})

    def _fetched(self, items: list[dict]):
        return rows(items, _task_id, self.batch_size).map(
            _fetch_row, fn_kwargs={"config": self.config, "settings": self.settings}, concurrency=self.fetch_tasks,
            num_cpus=0, max_retries=TRIES - 1)

    def _check_resources(self, segmenting: bool) -> None:
        """Refuse pools the cluster cannot hold (Ray would wait for them forever)."""
        segment_cpus = self.segment_actors if segmenting else 0
        self.workers = max(1, self.requested_workers or self.cpus - segment_cpus)
        if segment_cpus + self.workers > self.cpus:
            raise DataError(f"the Ray cluster has {self.cpus} CPUs: {segment_cpus} segmentation actors and "
                            f"{self.workers} refinement actors need {segment_cpus + self.workers}; give fewer "
                            "(--segment-workers, --workers) or nodes with more CPUs")
        gpus_needed = self.segment_actors * self.gpus_per_actor if segmenting else 0
        if gpus_needed > self.gpus:
            raise DataError(f"the Ray cluster has {self.gpus:g} GPUs: {self.segment_actors} segmentation actors "
                            f"of {self.gpus_per_actor:g} GPUs need {gpus_needed:g}; give fewer (--segment-workers, "
                            "--gpus-per-actor), or start the GPU nodes first (an autoscaler's min_workers)")
