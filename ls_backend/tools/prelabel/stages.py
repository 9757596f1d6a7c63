"""The stages of ``finepose prelabel``, as plain functions and callables over work items,
whatever runs them (:mod:`.local` processes or :mod:`.on_ray`).

A work item is a dict made by :func:`.plan.work_item`: the task (``id``, ``data``,
``annotations``), its ``project``, ``model``, ``category`` and whether it needs segmentation
(``needs_segmentation``). Each stage returns it with more keys:

- :func:`fetch_media` (I/O; many in flight): ``files``, the bytes of the photo and of
  ``data.reference``, fetched by the backend's media rules (its timeouts and size limits);
- :class:`Segmentation` (a model holder; batches; a GPU when ``FINEPOSE_DEVICE`` or torch
  finds one): ``detections`` (:class:`~ls_backend.segmentation.combine.Detections`) for the
  items that need segmentation; the others pass through;
- :class:`Refinement` (CPU, meshes cached per worker, no torch): ``predictions`` (a far-apart
  rival first, the best last), ``notes`` and ``score``; ``files`` and ``detections`` dropped.

A stage never raises for one item: it sets ``error`` (the reason, as the backend words it),
``failed_stage`` and ``transient`` (a media server or Label Studio that did not answer: any
re-run tries the task again), and later stages pass the item through. ``seconds`` (stage ->
seconds spent on the item), ``rss_mb`` (stage -> the worker's peak resident memory, MB) and
``pids`` (stage -> the worker's process id) say where the time and memory go.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Callable

from ls_backend.errors import FineposeError, MediaUnavailable, StudioUnreachable, TaskError, UpstreamTimeout
from ls_backend.process import made_once
from ls_backend.resources import Resources
from ls_backend.settings import Settings
from ls_backend.studio import media
from ls_backend.studio.download import Deadline
from ls_backend.studio.label_config import PoseConfig
from ls_backend.studio.tasks import read_task

STAGES = ("fetch", "segment", "refine", "store")
#: Failures that a later try may not repeat: the server did not answer.
TRANSIENT = (MediaUnavailable, UpstreamTimeout, StudioUnreachable)


@made_once
def worker_resources(settings: Settings) -> Resources:
    """This worker process's :class:`~ls_backend.resources.Resources` for the driver's settings
    (media cache and segmentation models loaded once per process)."""
    return Resources(settings)


class _RefinementResources(Resources):
    """A refinement worker's resources: meshes, media cache, no segmentation models (the
    segmentation stage gives each photo's detections; loading torch here would cost every
    refinement worker ~2 GB)."""

    def segmenter(self):
        raise TaskError("this task needs segmentation, which the prelabel plan did not foresee (an empty "
                        "Reference brush?): run finepose prelabel again")


@made_once
def refinement_resources(settings: Settings) -> Resources:
    return _RefinementResources(settings)


def task_of(item: dict) -> dict:
    """The Label Studio task inside a work item."""
    return {"id": item["id"], "data": item["data"], "annotations": item["annotations"]}


def describe(exc: Exception) -> str:
    """A failure's reason: a finepose error's own message, others prefixed by their type."""
    return str(exc) if isinstance(exc, FineposeError) else f"{type(exc).__name__}: {exc}"


def failed(item: dict, stage: str, exc: Exception | str) -> dict:
    """``item`` failed at ``stage`` because of ``exc`` (or the reason itself)."""
    reason = exc if isinstance(exc, str) else describe(exc)
    return {**item, "error": reason, "failed_stage": stage, "transient": isinstance(exc, TRANSIENT)}


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): Linux's ``VmHWM``, which, unlike
    ``ru_maxrss``, does not carry over the peak of the process that started this one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB on Linux, bytes on macOS


def _timed(stage: str, item: dict, seconds: float) -> dict:
    """``item`` with the stage's seconds, this worker's peak RSS and its pid recorded."""
    return {**item, "seconds": {**item.get("seconds", {}), stage: seconds},
            "rss_mb": {**item.get("rss_mb", {}), stage: round(peak_rss_mb(), 1)},
            "pids": {**item.get("pids", {}), stage: os.getpid()}}


def _guarded(stage: str, item: dict, work: Callable[[dict], dict]) -> dict:
    """``work(item)`` timed, or ``item`` failed when it raises (a finepose error or a bug: the
    task says so, the run goes on); an item that already failed passes through."""
    if "error" in item:
        return item
    started = time.perf_counter()
    try:
        item = work(item)
    except Exception as exc:  # noqa: BLE001 (one task's failure, whatever it is, is that task's outcome)
        item = failed(item, stage, exc)
    return _timed(stage, item, time.perf_counter() - started)


def media_urls(item: dict, config: PoseConfig) -> list[tuple[str, str]]:
    """(URL, field name) of the media the task's refinement reads: its photo, and its
    ``data.reference`` unless a brush in its annotation is the reference."""
    inputs = read_task(task_of(item), config)
    urls = [(inputs.image_url, f"{inputs.where}: data.{config.image_key}")]
    if inputs.reference_url is not None and inputs.human_reference is None:
        urls.append((inputs.reference_url, f"{inputs.where}: data.reference"))
    return urls


def fetch_media(item: dict, config: PoseConfig, settings: Settings) -> dict:
    """The fetch stage: ``files`` = {URL: bytes} of the item's media."""

    def fetch(item: dict) -> dict:
        resources = worker_resources(settings)
        deadline = Deadline.after(settings.fetch_total_s)  # for all media of this task
        files = {}
        for url, field in media_urls(item, config):
            path = media.fetch(url, settings, item["id"], deadline, resources.media_cache, field)
            files[url] = path.read_bytes()
        return {**item, "files": files}

    return _guarded("fetch", item, fetch)


def _seed(item: dict, resources: Resources) -> None:
    """Put the item's fetched media into this worker's media cache."""
    for url, data in item.get("files", {}).items():
        media.seed(url, data, resources.settings, resources.media_cache)


class Segmentation:
    """The segmentation stage: one holder of Mask R-CNN and DeepLabV3 (loaded on its first
    photo), called with a batch of items; Mask R-CNN sees the batch's photos at once."""

    def __init__(self, config: PoseConfig, settings: Settings):
        self.config = config
        self.settings = settings

    def __call__(self, items: list[dict]) -> list[dict]:
        started = time.perf_counter()
        out = list(items)
        photos = {}
        for index, item in enumerate(items):
            if item.get("needs_segmentation") and "error" not in item:
                try:
                    photos[index] = self._photo(item)
                except Exception as exc:  # noqa: BLE001 (that task's outcome)
                    out[index] = failed(item, "segment", exc)
        if photos:
            found = self._detect(list(photos.values()), [items[i]["category"] for i in photos])
            for index, detections in zip(photos, found):
                out[index] = (failed(out[index], "segment", detections) if isinstance(detections, Exception)
                              else {**out[index], "detections": detections})
        share = (time.perf_counter() - started) / max(1, len(photos))
        return [_timed("segment", item, share) if index in photos else item for index, item in enumerate(out)]

    def _photo(self, item: dict):
        resources = worker_resources(self.settings)
        _seed(item, resources)
        inputs = read_task(task_of(item), self.config)
        return media.load_image(inputs.image_url, self.settings, f"{inputs.where}: data.{self.config.image_key}",
                                item["id"], Deadline.after(self.settings.fetch_total_s), resources.media_cache)

    def _detect(self, photos: list, categories: list[str]) -> list:
        """Detections per photo, in one batch; when the batch fails, photo by photo, so that
        each gets its own outcome (detections or the exception); never raises."""
        try:
            segmenter = worker_resources(self.settings).segmenter()
        except Exception as exc:  # noqa: BLE001 (every photo's outcome)
            return [exc] * len(photos)
        try:
            return segmenter.detect_batch(photos, categories)
        except Exception as exc:  # noqa: BLE001 (each photo's own try follows)
            if len(photos) == 1:
                return [exc]
        found = []
        for photo, name in zip(photos, categories):
            try:
                found.append(segmenter.detect(photo, name))
            except Exception as exc:  # noqa: BLE001 (that photo's outcome)
                found.append(exc)
        return found


class Refinement:
    """The refinement stage: the backend's own prediction of one task
    (:func:`~ls_backend.pipeline.predict.predict_task`, with the front/back check) from the
    fetched media and the detections; meshes are loaded once per worker, torch never."""

    def __init__(self, config: PoseConfig, settings: Settings):
        self.config = config
        self.settings = settings

    def __call__(self, item: dict) -> dict:
        item = _guarded("refine", item, self._refine)
        return {key: value for key, value in item.items() if key not in ("files", "detections")}

    def _refine(self, item: dict) -> dict:
        from ls_backend.pipeline.predict import PredictRequest, predict_task

        resources = refinement_resources(self.settings)
        _seed(item, resources)
        request = PredictRequest(task_of(item), self.config, front_back_check=True, detections=item.get("detections"))
        outcome = predict_task(request, resources)
        return {**item, "predictions": outcome.stored_order(), "notes": outcome.notes,
                "score": outcome.prediction["score"]}
