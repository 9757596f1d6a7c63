"""What a study compares: per photo, a *baseline* and a *candidate* pose of one CAD model.

Two sources:

- :func:`items_from_pose_sets`: two pose sets (release pickles, export JSON, pose folders)
  and a folder of photos; baseline = the first set (the release: human), candidate = the
  second (refined);
- :func:`items_from_project`: a Label Studio project's tasks; each side is one of the start
  sources of :func:`ls_backend.studio.resolve.start_pose` (``annotation``: the newest human
  annotation's seven numbers; ``prediction``: the newest prediction's, finepose's refined
  pose; ``data.pose``: the imported pose). Default: human annotation vs refined prediction.

An item loads lazily (:attr:`StudyItem.load`): only the sampled photos are read. Poses come
in the model's frame at the photo's own size (px), ready for the registry's renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geometry.errors import GeometryError
from geometry.images import read_rgb
from geometry.pose import Pose

from ls_backend.datasets.posesets import by_image_key, load_pose_set
from ls_backend.errors import FineposeError
from ls_backend.studio.client import get_project, project_tasks
from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.resolve import START_ORDER, prediction_numbers, start_pose
from ls_backend.studio.tasks import read_task
from ls_backend.tools.study.ratings import StudyError

#: What each project source is called in the study's table.
SOURCE_NAMES = {"annotation": "human (annotation)", "prediction": "refined (prediction)", "data.pose": "imported (data.pose)"}


@dataclass(frozen=True)
class StudyItem:
    """One photo of the study: ``image`` names it (a file name, or the task's photo URL),
    ``load()`` gives (photo RGB, baseline pose, candidate pose)."""

    image: str
    model: str
    load: Callable[[], tuple[np.ndarray, Pose, Pose]]
    task: int | None = None


def items_from_pose_sets(baseline: Path, candidate: Path, images: Path, registry) -> list[StudyItem]:
    """The photos of ``images`` that both pose sets hold, in image-name order."""
    base, cand = by_image_key(load_pose_set(baseline)), by_image_key(load_pose_set(candidate))
    items = []
    for key in sorted(base.keys() & cand.keys()):
        path = images / base[key].image
        if path.is_file():
            items.append(StudyItem(base[key].image, base[key].model, _pose_set_loader(path, base[key], cand[key], registry)))
    return items


def _pose_set_loader(path: Path, base, cand, registry):
    def load():
        photo = read_rgb(path)
        height, width = photo.shape[:2]
        return photo, base.pose_in(registry.entry(base.model), width, height), \
            cand.pose_in(registry.entry(cand.model), width, height)
    return load


def items_from_project(client, project_id: int, registry, load_photo: Callable[[str, int], np.ndarray],
                       baseline: str = "annotation", candidate: str = "prediction") -> list[StudyItem]:
    """The project's tasks that hold both sources, in task order; ``load_photo(url, task_id)``
    reads a task's photo (through Label Studio, with its limits and timeouts)."""
    for source in (baseline, candidate):
        if source not in START_ORDER:
            raise StudyError(f"unknown pose source {source!r}; choose from {', '.join(START_ORDER)}")
    if baseline == candidate:
        raise StudyError(f"the two sides must differ (both are {baseline!r})")
    config = parse_label_config(get_project(client, project_id).label_config)
    items = []
    for task in project_tasks(client, project_id):
        try:
            inputs = read_task(task, config)
            entry = registry.entry(inputs.model_id)
        except (FineposeError, GeometryError, ValueError):
            continue  # a task finepose cannot read has no poses to compare
        if all(_holds(source, task, inputs) for source in (baseline, candidate)):
            items.append(StudyItem(inputs.image_url, inputs.model_id,
                                   _task_loader(task, inputs, entry, load_photo, baseline, candidate), task["id"]))
    return items


def _holds(source: str, task: dict, inputs) -> bool:
    if source == "annotation":
        return inputs.human_numbers is not None
    if source == "prediction":
        return bool(prediction_numbers(task))
    return inputs.data_pose is not None


def _task_loader(task, inputs, entry, load_photo, baseline: str, candidate: str):
    def load():
        photo = load_photo(inputs.image_url, task["id"])
        height, width = photo.shape[:2]
        return photo, start_pose(baseline, task, inputs, entry, width, height), \
            start_pose(candidate, task, inputs, entry, width, height)
    return load
