"""What the pose editor needs of one Label Studio task, read once and kept a few minutes.

- the photo (fetched by the backend's media rules: the browser never sees the API key),
- the registry model and its frame (every pose shown or stored is in the registry model's
  frame, as the backend reads annotated numbers),
- the start pose and the reference by the one rule of :func:`ls_backend.studio.resolve.resolve_task`,
  with the task's predictions counted (the editor opens on the refined pose, and its
  Reference outline is filled as the backend fills it); no start: the automatic pose from
  the reference, else a default view; no reference: None and why;
- the prediction's pose, which "reset" returns to,
- the project's labeling config, whose ``Number`` tags saved numbers are fitted to.

Poses are finepose's 7 numbers at the photo's own size (px), see :mod:`geometry.pose`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geometry.init_pose import initial_pose
from geometry.masks import resize_mask, work_size
from geometry.pose import Pose

from ls_backend.errors import FineposeError, TaskError
from ls_backend.pipeline.reference import reference_mask
from ls_backend.process import SharedRuns
from ls_backend.studio import media
from ls_backend.studio.label_config import PoseConfig, parse_label_config
from ls_backend.studio.resolve import prediction_pose, resolve_task
from ls_backend.studio.tasks import pose_from_numbers, read_task

logger = logging.getLogger(__name__)


@dataclass
class EditorTask:
    task_id: int
    project_id: int
    model_id: str
    entry: object  # registry ModelEntry
    config: PoseConfig
    image_path: Path
    width: int
    height: int
    reference: np.ndarray | None  # photo size
    reference_source: str
    start: Pose
    start_source: str
    prediction: Pose | None
    work_width: int
    work_height: int
    notes: str = ""  # starts passed over and why (an out-of-range annotation, say)

    @property
    def frame(self) -> np.ndarray:
        return self.start.mesh_frame

    def pose(self, numbers) -> Pose:
        """A pose of this task from the 7 numbers the page sends (photo px, this frame)."""
        if not isinstance(numbers, dict):
            raise TaskError("'pose' must be an object with the 7 numbers")
        return pose_from_numbers(numbers, self.width, self.height, self.frame)

    def work_reference(self) -> np.ndarray:
        if self.reference is None:
            raise TaskError(f"task {self.task_id} has no reference mask ({self.reference_source})")
        return resize_mask(self.reference, self.work_width, self.work_height)


def load_task(resources, source, task_id: int, project_id: int | None = None, model_id: str | None = None) -> EditorTask:
    """Read task ``task_id`` (of project ``project_id``, the link's) from ``source``
    (:class:`~.source.LabelStudioSource`) and prepare it for the editor. ``model_id``: the
    model the annotator picked in the editor, for a project whose labeling config lists its
    models (:func:`pickable_models`); it stands in for ``data.model``."""
    settings = resources.settings
    task = source.task(task_id, project_id)
    project_id = int(task.get("project") or 0)
    config = parse_label_config(source.label_config(project_id))
    if model_id is not None:
        if model_id not in pickable(config, resources.require_registry()):
            raise TaskError(f"model {model_id!r} is not one this project's labeling config lists to pick from"
                            + ("" if config.model_choice is not None else f"; set task {task_id}'s data.model instead"))
        task = {**task, "data": {**(task.get("data") or {}), "model": model_id}}
    inputs = read_task(task, config)
    registry = resources.require_registry()
    entry = registry.entry(inputs.model_id)
    renderer = registry.renderer(inputs.model_id)
    path, image = media.load_image_file(inputs.image_url, settings, f"{inputs.where}: data.{config.image_key}",
                                        inputs.task_id, cache=resources.media_cache)
    height, width = image.shape[:2]
    work_width, work_height = work_size(width, height, settings.work_width)
    frame = entry.frame_matrix
    resolved = resolve_task(task, inputs, config, entry, width, height, predictions=True)
    prediction = _prediction_pose(task, width, height, frame)
    try:
        reference = reference_mask(resolved.reference, inputs, resources, image, entry.category,
                                   renderer.render(prediction) if prediction is not None else None)
        reference, reference_source = reference.mask, reference.source
    except FineposeError as exc:
        reference, reference_source = None, f"none: {exc}"
    if resolved.start is not None:
        start, start_source = resolved.start.pose, resolved.start.source
    elif reference is not None:
        found = initial_pose(renderer, resize_mask(reference, work_width, work_height), mesh_frame=frame)
        start, start_source = found.hypotheses[0].pose.rescaled(width, height), "automatic"
    else:
        start, start_source = default_pose(renderer.mesh.radius, width, height, frame), "default view"
    if resolved.notes:
        logger.info("task %s: %s", task_id, resolved.note())
    return EditorTask(
        task_id=int(task_id), project_id=project_id, model_id=inputs.model_id, entry=entry, config=config,
        image_path=Path(path), width=width, height=height, reference=reference, reference_source=reference_source,
        start=start, start_source=start_source, prediction=prediction, work_width=work_width, work_height=work_height,
        notes=resolved.note(),
    )


def pickable_models(resources, source, project_id: int) -> list[str]:
    """The model ids an annotator may pick in the editor for a task of this project: those
    its labeling config lists (a ``Choices`` of CAD models, as uploaded-photo projects have)
    that the registry has, so that a save can record the pick; none where the config lists
    no models (the task's ``data.model`` decides)."""
    return pickable(parse_label_config(source.label_config(project_id)), resources.require_registry())


def pickable(config: PoseConfig, registry) -> list[str]:
    return [m for m in config.model_ids if m in registry.entries] if config.model_choice is not None else []


def default_pose(radius: float, width: int, height: int, frame) -> Pose:
    """A three-quarter view with the model filling about 70% of the shorter image side."""
    focal = float(max(width, height))
    distance = radius * focal / (0.35 * min(width, height))
    return Pose(azimuth=30.0, elevation=15.0, theta=0.0, distance=distance, focal=focal,
                u=(width - 1) / 2, v=(height - 1) / 2, width=width, height=height, mesh_frame=frame)


def _prediction_pose(task: dict, width: int, height: int, frame) -> Pose | None:
    """The newest usable prediction's pose ("reset" returns to it), or None."""
    try:
        return prediction_pose(task, frame, width, height)
    except ValueError:
        return None


class TaskCache:
    """Loaded :class:`EditorTask` objects by task id, each kept ``ttl`` seconds (a few tasks);
    concurrent first requests of a task share one load."""

    def __init__(self, size: int = 8, ttl: float = 600.0):
        self._runs = SharedRuns(ttl, size)

    def get(self, task_id: int, load) -> EditorTask:
        return self._runs.run(task_id, load)[0]

    def forget(self, task_id: int) -> None:
        self._runs.forget(task_id)
