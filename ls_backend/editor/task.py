"""What the pose editor needs of one Label Studio task, read once and kept a few minutes.

- the photo (fetched by the backend's media rules: the browser never sees the API key),
- the registry model and its frame (every pose shown or stored is in the registry model's
  frame, as the backend reads annotated numbers),
- the reference mask, first found of: the newest annotation's ``Reference`` brush,
  ``data.reference``, the newest prediction's ``Reference`` brush (the backend's earlier
  segmentation), the segmentation models; None (and why) when there is none,
- the start pose, first found of: the newest annotation's numbers, the newest prediction's,
  ``data.pose``, the automatic pose from the reference, a default view; and the prediction's
  pose, which "reset" returns to,
- the project's labeling config, whose ``Number`` tags saved numbers are fitted to.

Poses are finepose's 7 numbers at the photo's own size (px), see :mod:`geometry.pose`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geometry.errors import GeometryError
from geometry.init_pose import initial_pose
from geometry.masks import resize_mask
from geometry.pose import PARAMETER_NAMES, Pose

from ls_backend.backend import media
from ls_backend.backend.label_config import REFERENCE, PoseConfig, parse_label_config
from ls_backend.backend.tasks import annotated_numbers, brush_mask, find_brush, pose_from_numbers, pose_from_task_data, read_task
from ls_backend.errors import FineposeError, TaskError

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


def load_task(resources, source, task_id: int) -> EditorTask:
    """Read task ``task_id`` from ``source`` (:class:`~.source.LabelStudioSource`) and prepare
    it for the editor."""
    settings = resources.settings
    task = source.task(task_id)
    project_id = int(task.get("project") or 0)
    label_config = source.label_config(project_id)
    config = parse_label_config(label_config)
    inputs = read_task(task, config)
    registry = resources.require_registry()
    entry = registry.entry(inputs.model_id)
    renderer = registry.renderer(inputs.model_id)
    path, image = media.load_image_file(inputs.image_url, settings, f"{inputs.where}: data.{config.image_key}",
                                        inputs.task_id, cache=resources.media_cache)
    height, width = image.shape[:2]
    work_width = min(settings.work_width, width)
    work_height = max(1, round(height * work_width / width))
    frame = entry.frame_matrix
    prediction = _prediction_pose(task, width, height, frame)
    reference, reference_source = _reference(inputs, task, config, resources, image, entry, renderer, prediction)
    start, start_source = None, ""
    if inputs.human_numbers is not None:
        start, start_source = pose_from_numbers(inputs.human_numbers, width, height, frame), "annotation"
    elif prediction is not None:
        start, start_source = prediction, "prediction"
    elif inputs.data_pose is not None:
        try:
            start, start_source = pose_from_task_data(inputs.data_pose, width, height, entry), "data.pose"
        except (FineposeError, GeometryError) as exc:
            logger.warning("task %s: data.pose not usable in the editor: %s", task_id, exc)
    if start is None and reference is not None:
        found = initial_pose(renderer, resize_mask(reference, work_width, work_height), mesh_frame=frame)
        start, start_source = found.hypotheses[0].pose.rescaled(width, height), "automatic"
    if start is None:
        start, start_source = default_pose(renderer.mesh.radius, width, height, frame), "default view"
    return EditorTask(
        task_id=int(task_id), project_id=project_id, model_id=inputs.model_id, entry=entry, config=config,
        image_path=Path(path), width=width, height=height, reference=reference, reference_source=reference_source,
        start=start, start_source=start_source, prediction=prediction, work_width=work_width, work_height=work_height,
    )


def default_pose(radius: float, width: int, height: int, frame) -> Pose:
    """A three-quarter view with the model filling about 70% of the shorter image side."""
    focal = float(max(width, height))
    distance = radius * focal / (0.35 * min(width, height))
    return Pose(azimuth=30.0, elevation=15.0, theta=0.0, distance=distance, focal=focal,
                u=(width - 1) / 2, v=(height - 1) / 2, width=width, height=height, mesh_frame=frame)


def _prediction_pose(task: dict, width: int, height: int, frame) -> Pose | None:
    """The newest prediction holding all 7 numbers, as a pose."""
    for prediction in sorted(task.get("predictions") or [], key=lambda p: p.get("id") or 0, reverse=True):
        numbers = annotated_numbers(prediction.get("result"))
        if numbers is not None:
            try:
                return pose_from_numbers(numbers, width, height, frame)
            except ValueError:
                continue
    return None


def _reference(inputs, task, config, resources, image, entry, renderer, prediction):
    """(mask at photo size or None, where it came from or why there is none)."""
    from ls_backend.backend.pipeline import reference_mask

    height, width = image.shape[:2]
    if inputs.human_reference is None and inputs.reference_url is None:
        for item in sorted(task.get("predictions") or [], key=lambda p: p.get("id") or 0, reverse=True):
            brush = find_brush(item.get("result"), config.brush, REFERENCE)
            if brush is not None:
                mask = brush_mask(brush)
                if mask.any():
                    return resize_mask(mask, width, height), "prediction"
    try:
        return reference_mask(inputs, resources, image, entry.category, renderer, prediction)
    except FineposeError as exc:
        return None, f"none: {exc}"


class TaskCache:
    """Loaded :class:`EditorTask` objects by task id, each kept ``ttl`` seconds (a few tasks)."""

    def __init__(self, size: int = 8, ttl: float = 600.0):
        self.size, self.ttl = size, ttl
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def get(self, task_id: int, load) -> EditorTask:
        with self._lock:
            item = self._items.get(task_id)
            if item and time.monotonic() - item[0] < self.ttl:
                return item[1]
            lock = self._loading.setdefault(task_id, threading.Lock())
        with lock:  # one load per task at a time; the others wait for it
            with self._lock:
                item = self._items.get(task_id)
                if item and time.monotonic() - item[0] < self.ttl:
                    return item[1]
            value = load()
            with self._lock:
                self._loading.pop(task_id, None)  # waiters hold it; later callers find the item
                self._items[task_id] = (time.monotonic(), value)
                self._items.move_to_end(task_id)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return value

    def forget(self, task_id: int) -> None:
        with self._lock:
            self._items.pop(task_id, None)
