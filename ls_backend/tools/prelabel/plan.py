"""Which tasks ``finepose prelabel`` predicts, and what each needs.

A task is predicted when it has no prediction of the backend's ``model_version``, or when its
CAD model changed since this project's last prelabel (a new mesh file or frame: the model's
:meth:`~ls_backend.registry.Registry.fingerprint` differs from the one the state file
recorded), or when ``redo_models`` names its model; its earlier predictions of this version
(``stale``) are deleted once the new ones are stored. Adding or removing a registry model
changes no other model's tasks. A task whose last run failed for a reason of its own (bad
media, unknown model...) waits for ``--retry-failed``; one cut short by a lost Ray worker or a
server that did not answer is tried again by any re-run (:mod:`.state`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ls_backend.errors import FineposeError
from ls_backend.studio.client import as_dict
from ls_backend.studio.label_config import PoseConfig
from ls_backend.studio.resolve import needs_segmentation
from ls_backend.studio.tasks import read_task


@dataclass
class Plan:
    """``todo``: the tasks to predict, each ``{"id", "data", "annotations", "model",
    "fingerprint", "stale": [prediction ids to delete once replaced]}``; ``waiting``: the ids
    of tasks left out because they failed before (``skip``)."""

    todo: list[dict] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)


def plan(tasks, config: PoseConfig, version: str, registry, recorded: dict[int, str],
         redo_models: set[str] = frozenset(), skip: set[int] = frozenset()) -> Plan:
    """The :class:`Plan` of a project's ``tasks``; ``recorded``: task id -> the fingerprint its
    prediction was made with (the state file); ``skip``: tasks not to try (failed before)."""
    made = Plan()
    for task in tasks:
        ours = [as_dict(p) for p in task.get("predictions") or []]
        ours = [p["id"] for p in ours if p.get("model_version") == version and p.get("id") is not None]
        model, fingerprint = _model_of(task, config, registry)
        changed = model in redo_models or (task["id"] in recorded and fingerprint is not None
                                           and recorded[task["id"]] != fingerprint)
        if ours and not changed:
            continue
        if task["id"] in skip and not changed:
            made.waiting.append(task["id"])
            continue
        made.todo.append({"id": task["id"], "data": task["data"], "annotations": task.get("annotations") or [],
                          "model": model, "fingerprint": fingerprint, "stale": ours})
    return made


def work_item(task: dict, config: PoseConfig, registry, project: int, max_pixels: int) -> dict:
    """A planned task as a work item of :mod:`.stages`: its ``project``, whether it needs
    segmentation (``needs_segmentation``: no brush, no ``data.reference``) and then its
    model's ``category``. A task that cannot be read says so in the refinement stage."""
    category, needs = None, False
    try:
        inputs = read_task(task, config)
        needs = needs_segmentation(task, inputs, config, max_pixels)
        category = registry.entry(task["model"]).category if needs else None
    except (FineposeError, ValueError):
        needs = False  # the refinement stage reports why
    return {**task, "project": project, "category": category, "needs_segmentation": needs}


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
