"""``finepose prelabel``: refine every task of a Label Studio project into predictions, on this
machine or on a Ray cluster.

The tasks (:mod:`.plan`) flow through four stages (:mod:`.stages`): fetch media, segmentation
(only for tasks without a reference), refinement, store (:mod:`.store`, bulk writes). The
stages run on local processes (:mod:`.local`) or, with ``ray_address``, on Ray
(:mod:`.on_ray`). A task that fails gets its reason in its ``finepose_error`` data field and
a task that succeeds has it cleared, exactly as Retrieve Predictions does
(:mod:`ls_backend.studio.taskdata`); the summary groups failures by reason. Every task's
outcome is a line of the state file (:mod:`.state`), so a killed run resumes where it stopped.
Configuration is the backend's (environment, see :mod:`ls_backend.settings`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from ls_backend.resources import Resources
from ls_backend.studio import taskdata
from ls_backend.studio.client import project_tasks
from ls_backend.studio.label_config import parse_label_config
from ls_backend.tools.prelabel.local import LocalPipeline
from ls_backend.tools.prelabel.plan import plan, reason_group, work_item
from ls_backend.tools.prelabel.progress import StageProgress
from ls_backend.tools.prelabel.state import History, StateLog
from ls_backend.tools.prelabel.store import PredictionStore


def prelabel(project_id: int, workers: int = 0, state: Path | None = None, resources: Resources | None = None,
             redo_models: set[str] = frozenset(), retry_failed: bool = False, ray_address: str | None = None,
             batch_size: int = 4, segment_workers: int | None = None, gpus_per_actor: float | None = None,
             chunk: int = 100, progress: bool | None = None) -> dict:
    """Predict the project's tasks (see the module docstring); returns a summary with
    ``failures``: reason -> task ids, and ``stages``: per stage figures (:mod:`.progress`).

    ``workers``: refinement processes (0: all local cores; on Ray, the CPUs left);
    ``segment_workers``: segmentation processes or actors (default: 1 locally; on Ray one per
    GPU, else one per node); ``batch_size``: photos per segmentation call; ``chunk``: tasks per
    bulk write; ``retry_failed``: also try the tasks whose last run failed for a reason of
    their own; ``progress``: the bars (None: when stderr is a terminal).
    """
    resources = resources or Resources.shared()
    settings = resources.settings
    client = resources.client()
    config = parse_label_config(client.projects.get(id=project_id).label_config)  # refused before any work
    registry = resources.require_registry()
    state = state or settings.model_dir / f"prelabel-project-{project_id}.jsonl"
    history = History.read(state)
    planned = plan(project_tasks(client, project_id), config, resources.model_version, registry, history.done,
                   set(redo_models), set() if retry_failed else set(history.failed))
    todo = [work_item(item, config, registry, project_id, settings.max_image_pixels) for item in planned.todo]
    segmenting = sum(1 for item in todo if item["needs_segmentation"])
    bars = StageProgress(len(todo), segmenting, progress)
    if ray_address:
        from ls_backend.tools.prelabel.on_ray import RayPipeline

        pipeline = RayPipeline(config, settings, ray_address, workers or None, segment_workers, gpus_per_actor,
                               batch_size)
    else:
        pipeline = LocalPipeline(config, settings, workers or None, segment_workers or 1, batch_size,
                                 on_stage=bars.left)
    counts = {"done": 0, "failed": 0}
    failures: dict[str, list[int]] = defaultdict(list)

    def stored(item: dict, seconds: float | None) -> None:
        bars.stored(item, seconds)
        if "error" in item or seconds is None:
            counts["failed"] += 1
            failures[reason_group(item.get("error", ""))].append(item["id"])
        else:
            counts["done"] += 1

    start = time.perf_counter()
    seen: set[int] = set()
    with pipeline, StateLog(state, resources.model_version) as log:
        store = PredictionStore(resources.client, settings, project_id, log, resources.model_version, chunk,
                                on_stored=stored)
        try:
            for item in pipeline.run(todo):
                if item["id"] in seen:  # a retried worker's second copy: stored once only
                    continue
                seen.add(item["id"])
                if ray_address:
                    for stage in ("fetch", "segment", "refine"):
                        bars.left(stage, item)
                bars.finished(item)
                store.add(item)
        finally:
            store.flush()
            bars.close()
    taskdata.flush()
    seconds = time.perf_counter() - start
    return {
        "project": project_id,
        "model_version": resources.model_version,
        "tasks": len(todo),
        **counts,
        "skipped_failed": len(planned.waiting),
        "failures": {reason: ids for reason, ids in sorted(failures.items(), key=lambda kv: -len(kv[1]))},
        "seconds": seconds,
        "tasks_per_second": len(todo) / seconds if seconds > 0 else 0.0,
        "executor": "ray" if ray_address else "local",
        "workers": pipeline.workers,
        "nodes": getattr(pipeline, "nodes", 1),
        "segmenting": segmenting,
        "stages": bars.summary(),
        "store_calls": store.calls,
        "state": str(state),
    }
