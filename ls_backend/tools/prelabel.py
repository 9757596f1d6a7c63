"""``finepose prelabel``: refine every task of a Label Studio project and store predictions.

Tasks that already hold a prediction of the backend's ``model_version`` are skipped, and so
are tasks listed as done in the state file (JSON lines ``{"task", "status", ...}``), so an
interrupted run picks up where it stopped. Tasks are refined in parallel processes (each
loads meshes once); predictions are stored from the main process through label-studio-sdk.
Configuration is the backend's (environment, see :mod:`ls_backend.settings`).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ls_backend.backend.label_config import PoseConfig, parse_label_config
from ls_backend.labelstudio import as_dict, project_tasks
from ls_backend.backend.resources import Resources


def _done_ids(state: Path) -> set[int]:
    done = set()
    if state.is_file():
        for line in state.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interruption: that task is redone
            if record.get("status") == "done":
                done.add(int(record["task"]))
    return done


def _refine_one(task: dict, config: PoseConfig) -> dict:
    """Worker: one task -> {"task", "prediction"} or {"task", "error"}."""
    from ls_backend.backend.pipeline import predict_task

    try:
        outcome = predict_task(task, config, Resources.shared())
        return {"task": task["id"], "prediction": outcome.prediction, "seconds": outcome.seconds}
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
    state.parent.mkdir(parents=True, exist_ok=True)
    todo = tasks_to_refine(client, project_id, resources.model_version, _done_ids(state))
    workers = workers or multiprocessing.cpu_count()
    counts = {"done": 0, "failed": 0}
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # open3d and torch are not fork-safe
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool, state.open("a") as log:
        futures = [pool.submit(_refine_one, task, config) for task in todo]
        for future in tqdm(futures, desc=f"project {project_id}", unit="task"):
            outcome = future.result()
            record = {"task": outcome["task"], "model_version": resources.model_version}
            if "error" in outcome:
                record.update(status="failed", error=outcome["error"])
                counts["failed"] += 1
            else:
                pred = outcome["prediction"]
                stored = client.predictions.create(
                    task=outcome["task"], result=pred["result"], score=pred["score"], model_version=pred["model_version"]
                )
                record.update(status="done", prediction=stored.id, score=pred["score"])
                counts["done"] += 1
            log.write(json.dumps(record) + "\n")
            log.flush()
    seconds = time.perf_counter() - start
    return {
        "project": project_id,
        "model_version": resources.model_version,
        "tasks": len(todo),
        **counts,
        "seconds": seconds,
        "tasks_per_second": len(todo) / seconds if seconds > 0 else 0.0,
        "workers": workers,
        "state": str(state),
    }
