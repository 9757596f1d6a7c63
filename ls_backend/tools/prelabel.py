"""``finepose prelabel``: refine every task of a Label Studio project and store predictions.

Tasks that already hold a prediction of the backend's ``model_version`` are skipped, and so
are tasks listed as done in the state file (a JSON-lines log ``{"task", "status", ...}``,
:mod:`.jsonlines`), so an interrupted run picks up where it stopped. Tasks are refined in
parallel processes (:class:`~.executors.ProcessExecutor`; each loads meshes once); predictions are stored from the main process through label-studio-sdk.
Configuration is the backend's (environment, see :mod:`ls_backend.settings`).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from ls_backend.backend.label_config import PoseConfig, parse_label_config
from ls_backend.labelstudio import as_dict, project_tasks
from ls_backend.backend.resources import Resources
from ls_backend.tools.executors import ProcessExecutor
from ls_backend.tools.jsonlines import LogWriter, resume


def _refine_one(task: dict, config: PoseConfig) -> dict:
    """Worker: one task -> {"task", "predictions"} (a far-apart rival first, the best last) or {"task", "error"}."""
    from ls_backend.backend.pipeline import predict_task

    try:
        outcome = predict_task(task, config, Resources.shared(), alternatives=True)
        return {"task": task["id"], "predictions": outcome.stored_order(),
                "seconds": outcome.seconds}
    except (ValueError, RuntimeError, OSError) as exc:
        return {"task": task["id"], "error": f"{type(exc).__name__}: {exc}"}


def tasks_to_refine(client, project_id: int, version: str, done: set[int]) -> list[dict]:
    """The project's tasks with no prediction of ``version`` and not done in the state file."""
    todo = []
    for task in project_tasks(client, project_id):
        versions = {as_dict(p).get("model_version") for p in task.get("predictions") or []}
        if version not in versions and task["id"] not in done:
            todo.append({"id": task["id"], "data": task["data"], "annotations": task.get("annotations") or []})
    return todo


def prelabel(project_id: int, workers: int = 0, state: Path | None = None, resources: Resources | None = None) -> dict:
    resources = resources or Resources.shared()
    client = resources.client()
    config = parse_label_config(client.projects.get(id=project_id).label_config)  # refused before any work
    state = state or resources.settings.model_dir / f"prelabel-project-{project_id}.jsonl"
    done = {int(record["task"]) for record in resume(state, "task") if record.get("status") == "done"}
    todo = tasks_to_refine(client, project_id, resources.model_version, done)
    counts = {"done": 0, "failed": 0}
    start = time.perf_counter()
    with ProcessExecutor(workers or None, len(todo)) as pool, LogWriter(state) as log:
        outcomes = pool.imap(partial(_refine_one, config=config), todo)
        for outcome in tqdm(outcomes, total=len(todo), desc=f"project {project_id}", unit="task"):
            record = {"task": outcome["task"], "model_version": resources.model_version}
            if "error" in outcome:
                record.update(status="failed", error=outcome["error"])
                counts["failed"] += 1
            else:
                stored = [client.predictions.create(task=outcome["task"], result=pred["result"], score=pred["score"],
                                                    model_version=pred["model_version"])
                          for pred in outcome["predictions"]]  # see Outcome.stored_order: the best last
                record.update(status="done", prediction=stored[-1].id, score=outcome["predictions"][-1]["score"])
                if len(stored) > 1:
                    record["alternative"] = stored[0].id
                counts["done"] += 1
            log.write(record)
    seconds = time.perf_counter() - start
    return {
        "project": project_id,
        "model_version": resources.model_version,
        "tasks": len(todo),
        **counts,
        "seconds": seconds,
        "tasks_per_second": len(todo) / seconds if seconds > 0 else 0.0,
        "workers": pool.workers,
        "state": str(state),
    }
