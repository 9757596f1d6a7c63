"""Where the items of ``finepose refine-batch`` are refined: in this process, in local
processes, or on a Ray cluster.

Every executor is a context manager with a ``workers`` count and ``map(items, method)``,
which yields one record per item (see :func:`refine_item`) as soon as it is ready, in no
particular order. Each worker process keeps the :class:`SilhouetteRenderer` of the meshes
it saw last (:func:`renderer_for`), so a mesh is loaded once per process, not once per
item, when items arrive grouped by mesh.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator

from geometry.masks import read_mask
from geometry.pose import Pose
from geometry.pose_io import load_pose, read_pose
from geometry.refine import refine
from geometry.render import SilhouetteRenderer

from ls_backend.errors import DataError
from ls_backend.registry.renderers import RendererCache

EXECUTORS = ("serial", "process", "ray")
#: Renderers kept per worker process (least recently used dropped first).
RENDERER_CACHE_SIZE = 4
RAY_REQUIREMENT = "ray[data]==2.60.0"


@dataclass(frozen=True)
class Item:
    """One manifest entry; paths are absolute (resolved against the manifest's folder).

    ``pose`` is the path of a pose JSON file or the pose JSON itself (any convention of
    :func:`geometry.pose_io.read_pose`); ``frame`` names the mesh's frame, which the pose is
    expressed in by the frame rule (as ``--frame`` everywhere); ``image`` is carried to the
    output untouched.
    """

    id: str
    mesh: str
    mask: str
    pose: str | dict
    frame: str | None = None
    image: str | None = None


_renderers = RendererCache(max_size=RENDERER_CACHE_SIZE)


def renderer_for(mesh_path: str) -> SilhouetteRenderer:
    """This process's renderer of the mesh file at ``mesh_path``, loading it on first use."""
    return _renderers.get(mesh_path)


def item_pose(item: Item) -> Pose:
    """The item's starting pose in its mesh's ``frame`` (:func:`geometry.pose_io.read_pose`)."""
    if isinstance(item.pose, str):
        return load_pose(item.pose, model_frame=item.frame)
    return read_pose(item.pose, model_frame=item.frame)


def refine_item(item: Item, method: str) -> dict:
    """Refine one item; never raises for a bad item.

    Returns ``{"id", "mesh", "mask", ["image"], **RefineResult.to_dict()}``, or
    ``{"id", "mesh", "mask", ["image"], "error": message}`` when the item cannot be refined
    (missing or unreadable mesh or mask, invalid pose, ...).
    """
    record = _record(item)
    try:
        pose = item_pose(item)
        mask = read_mask(item.mask)
        result = refine(renderer_for(item.mesh), mask, pose, method=method)
    except Exception as exc:  # a batch records any per-item failure and goes on
        return {**record, "error": _describe(exc)}
    return {**record, **result.to_dict()}


def _record(item: Item) -> dict:
    """The fields every result line of ``item`` starts with."""
    record = {"id": item.id, "mesh": item.mesh, "mask": item.mask}
    if item.image is not None:
        record["image"] = item.image
    return record


def _describe(exc: Exception) -> str:
    """The message of a finepose input error; other exceptions are prefixed by their type."""
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


def local_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """Refines items one after the other in this process."""

    workers = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, items: Iterable[Item], method: str) -> Iterator[dict]:
        for item in items:
            yield refine_item(item, method)


class ProcessExecutor:
    """A pool of ``workers`` local processes (default: all local cores, at most one per item);
    ``refine-batch``'s and ``prelabel``'s.

    Workers are started with ``spawn``: a fresh interpreter, safe whatever threads Open3D or
    torch started in this process (``fork`` copies them mid-flight).
    """

    def __init__(self, workers: int | None = None, items: int = 1):
        self.workers = max(1, min(workers or local_cores(), items))
        self._pool = None

    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True, cancel_futures=True)
        return False

    def imap(self, function: Callable, items: Iterable) -> Iterator:
        """``function(item)`` for every item, run in the workers, yielded as each is ready.
        ``function`` must be picklable (a module-level function or a ``functools.partial`` of one)."""
        # The pool hands out items in submission order, so workers walk the meshes in order.
        futures = [self._pool.submit(function, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "a worker process died (out of memory, a crash in a native library, or a script "
                "without an `if __name__ == '__main__':` guard); the results written so far are "
                "kept: rerun to resume"
            ) from exc

    def map(self, items: Iterable[Item], method: str) -> Iterator[dict]:
        yield from self.imap(partial(refine_item, method=method), items)


class _RayRefiner:
    """A Ray actor of the refinement stage: one worker process with its own renderer cache."""

    def __init__(self, method: str):
        self.method = method

    def __call__(self, row: dict) -> dict:
        from ls_backend.tools.ray_data import pack, unpack

        return pack(row["id"], refine_item(unpack(row), self.method))


class RayExecutor:
    """A pool of one-CPU Ray actors fed by a Ray Data stream (:mod:`ls_backend.tools.ray_data`):
    a dead actor is restarted and its items refined again; items lost for good come back as
    error records marked ``retry`` (any re-run tries them again).

    Connects to ``address`` (``host:6379`` or ``auto``; not ``ray://``:
    :func:`~ls_backend.tools.ray_data.check_address`), else uses
    the Ray session already started in this process, else starts a local one with ``workers``
    CPUs. ``workers`` defaults to the cluster's CPUs (at most one per CPU and one per item). On
    a remote cluster, finepose must be installed on the nodes and the manifest's paths
    readable there.
    """

    def __init__(self, workers: int | None = None, items: int = 1, address: str | None = None):
        from ls_backend.tools.ray_data import check_address

        check_address(address)
        self.ray = import_ray()
        self.requested = workers
        self.items = items
        self.address = address
        self.workers = 0
        self._started = False

    def __enter__(self):
        from ls_backend.tools.ray_data import stdout_to_stderr

        self._quiet = stdout_to_stderr()
        self._quiet.__enter__()
        ray = self.ray
        if not ray.is_initialized():
            try:
                self._connect()
            except BaseException:
                self._quiet.__exit__(None, None, None)
                raise
            self._started = True
        # An actor that no CPU is free for would never start: at most one actor per CPU.
        cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = max(1, min(self.requested or cluster_cpus, cluster_cpus, self.items))
        return self

    def _connect(self) -> None:
        """Join the cluster at ``address``, or start a local one with ``workers`` CPUs."""
        if not self.address:
            # "local": a new cluster, even where another one on this machine is the current one
            self.ray.init(address="local", num_cpus=self.requested or local_cores(), include_dashboard=False)
            return
        try:
            self.ray.init(address=self.address, log_to_driver=False)  # stdout holds the summary alone
        except (ConnectionError, RuntimeError) as exc:
            raise DataError(f"cannot connect to the Ray cluster at {self.address!r}: {exc}") from None

    def __exit__(self, *exc):
        if self._started:
            self.ray.shutdown()
        self._quiet.__exit__(*exc)
        return False

    def map(self, items: Iterable[Item], method: str) -> Iterator[dict]:
        from ls_backend.tools.ray_data import ACTOR_RETRIES, LOST, outcomes, rows

        items = list(items)
        stream = rows(items, _item_id, per_block=1).map(_RayRefiner, fn_constructor_args=(method,),
                                                         concurrency=self.workers, num_cpus=1, **ACTOR_RETRIES)
        yield from outcomes(stream, items, _item_id, lambda item: {**_record(item), "error": LOST, "transient": True})


def _item_id(item: Item) -> str:
    return item.id


def import_ray():
    """The ``ray`` module, or a DataError (a ValueError) saying how to install it."""
    try:
        import ray
        import ray.util
    except ImportError:
        raise DataError(
            f"the ray executor needs Ray, which is not installed: pip install 'finepose[ray]' (or {RAY_REQUIREMENT})"
        ) from None
    return ray


def make_executor(name: str, workers: int | None, items: int, ray_address: str | None = None):
    """The executor called ``name`` (one of :data:`EXECUTORS`) for ``items`` items."""
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    if ray_address and name != "ray":
        raise DataError("--ray-address needs --executor ray")
    if name == "serial":
        return SerialExecutor()
    if name == "process":
        return ProcessExecutor(workers, items)
    if name == "ray":
        return RayExecutor(workers, items, ray_address)
    raise DataError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
