"""``finepose prelabel``: refine every task of a Label Studio project and store predictions.

Which tasks: those without a prediction of the backend's ``model_version``, and those whose
CAD model changed since this project's last prelabel (a new mesh file or frame: the model's
:meth:`~ls_backend.registry.Registry.fingerprint` differs from the one the state file
recorded) or named by ``redo_models``; their earlier predictions of this version are
deleted once the new ones are stored, so a task holds one best prediction (plus at most one
front/back rival).
Adding or removing a registry model changes no other model's tasks.

Tasks are refined in parallel processes (:class:`~.executors.ProcessExecutor`; each loads
meshes once); predictions are stored from the main process through label-studio-sdk. The
state file (JSON lines ``{"task", "status", "model", "fingerprint", ...}``, :mod:`.jsonlines`)
keeps what each run did. A task that fails gets its reason in its ``finepose_error`` data
field and a task that succeeds has it cleared, exactly as Retrieve Predictions does
(:mod:`ls_backend.studio.taskdata`); the summary groups failures by reason. Configuration
is the backend's (environment, see :mod:`ls_backend.settings`).
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

from tqdm import tqdm

from geometry.errors import GeometryError

from ls_backend.errors import FineposeError
from ls_backend.resources import Resources
from ls_backend.studio import taskdata
from ls_backend.studio.client import as_dict, delete_predictions, project_tasks
from ls_backend.studio.label_config import PoseConfig, parse_label_config
from ls_backend.studio.tasks import read_task
from ls_backend.tools.executors import ProcessExecutor
from ls_backend.tools.jsonlines import LogWriter, resume

logger = logging.getLogger(__name__)


def _refine_one(task: dict, config: PoseConfig) -> dict:
    """Worker: one task -> {"task", "predictions", "notes"} (a far-apart rival first, the best
    last) or {"task", "error"}."""
    from ls_backend.pipeline.predict import PredictRequest, predict_task

    try:
        outcome = predict_task(PredictRequest(task, config, front_back_check=True), Resources.shared())
        return {"task": task["id"], "predictions": outcome.stored_order(), "notes": outcome.notes,
                "seconds": outcome.seconds}
    except (FineposeError, GeometryError, ValueError, RuntimeError, OSError) as exc:
        return {"task": task["id"], "error": str(exc) if isinstance(exc, FineposeError) else f"{type(exc).__name__}: {exc}"}


def plan(tasks, config: PoseConfig, version: str, registry, recorded: dict[int, str],
         redo_models: set[str] = frozenset()) -> list[dict]:
    """The tasks to predict, each ``{"id", "data", "annotations", "model", "fingerprint",
    "stale": [prediction ids to delete first]}``; ``recorded``: task id -> the fingerprint
    its prediction was made with (the state file)."""
    todo = []
    for task in tasks:
        ours = [as_dict(p) for p in task.get("predictions") or []]
        ours = [p["id"] for p in ours if p.get("model_version") == version and p.get("id") is not None]
        model, fingerprint = _model_of(task, config, registry)
        changed = model in redo_models or (task["id"] in recorded and fingerprint is not None
                                           and recorded[task["id"]] != fingerprint)
        if ours and not changed:
            continue
        todo.append({"id": task["id"], "data": task["data"], "annotations": task.get("annotations") or [],
                     "model": model, "fingerprint": fingerprint, "stale": ours})
    return todo


def _model_of(task: dict, config: PoseConfig, registry) -> tuple[str | None, str | None]:
    """(model id, its fingerprint) of a task, (None, None) when it cannot be told (the
    worker then reports why)."""
    try:
        model = read_task(task, config).model_id
        return model, registry.fingerprint(model)
    except (FineposeError, ValueError):
        return None, None


def reason_group(error: str) -> str:
    """An error with task numbers taken out, so that one cause is one group."""
    return re.sub(r"\btask \d+\b", "task", error)


def prelabel(project_id: int, workers: int = 0, state: Path | None = None, resources: Resources | None = None,
             redo_models: set[str] = frozenset()) -> dict:
    """Predict the project's tasks (see the module docstring); returns a summary with
    ``failures``: reason -> task ids."""
    resources = resources or Resources.shared()
    settings = resources.settings
    client = resources.client()
    config = parse_label_config(client.projects.get(id=project_id).label_config)  # refused before any work
    registry = resources.require_registry()
    state = state or settings.model_dir / f"prelabel-project-{project_id}.jsonl"
    recorded = {int(r["task"]): r.get("fingerprint") for r in resume(state, "task") if r.get("status") == "done"}
    tasks = list(project_tasks(client, project_id))
    todo = plan(tasks, config, resources.model_version, registry, recorded, set(redo_models))
    by_id = {task["id"]: {**task, "project": project_id} for task in tasks}  # its status is written by project
    counts = {"done": 0, "failed": 0, "replaced": 0}
    failures: dict[str, list[int]] = defaultdict(list)
    start = time.perf_counter()
    with ProcessExecutor(workers or None, len(todo)) as pool, LogWriter(state) as log:
        planned = {item["id"]: item for item in todo}
        work = [{key: item[key] for key in ("id", "data", "annotations")} for item in todo]
        outcomes = pool.imap(partial(_refine_one, config=config), work)
        for outcome in tqdm(outcomes, total=len(todo), desc=f"project {project_id}", unit="task"):
            item = planned[outcome["task"]]
            record = {"task": item["id"], "model": item["model"], "fingerprint": item["fingerprint"],
                      "model_version": resources.model_version}
            if "error" in outcome:
                record.update(status="failed", error=outcome["error"])
                counts["failed"] += 1
                failures[reason_group(outcome["error"])].append(item["id"])
                taskdata.report(settings, by_id[item["id"]], outcome["error"])
            else:
                stored = [client.predictions.create(task=item["id"], result=pred["result"], score=pred["score"],
                                                    model_version=pred["model_version"])
                          for pred in outcome["predictions"]]  # see Outcome.stored_order: the best last
                # a changed model: its earlier predictions go, once their replacements are stored
                counts["replaced"] += bool(delete_predictions(client, item["stale"]))
                record.update(status="done", prediction=stored[-1].id, score=outcome["predictions"][-1]["score"])
                if len(stored) > 1:
                    record["rival"] = stored[0].id
                counts["done"] += 1
                taskdata.report(settings, by_id[item["id"]], outcome["notes"] or None)
            log.write(record)
    taskdata.flush()
    seconds = time.perf_counter() - start
    return {
        "project": project_id,
        "model_version": resources.model_version,
        "tasks": len(todo),
        **counts,
        "failures": {reason: ids for reason, ids in sorted(failures.items(), key=lambda kv: -len(kv[1]))},
        "seconds": seconds,
        "tasks_per_second": len(todo) / seconds if seconds > 0 else 0.0,
        "workers": pool.workers,
        "state": str(state),
    }
