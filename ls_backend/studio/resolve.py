"""What a task gives: the one rule for its start pose and its reference, used by the backend's
predictions, the webhook, the pose editor, ``prelabel`` and ``dataset export``.

**Start pose**, first usable of (:data:`START_ORDER`):

1. ``annotation``: the newest human annotation's seven numbers (a person's pose);
2. ``prediction``: the newest prediction's seven numbers, only where the caller asks for it
   (the pose editor opens on the refined pose; the backend never starts from a prediction, or
   it would refine its own output);
3. ``data.pose``: the pose the task was imported with (any convention of
   :mod:`geometry.pose_io`), rescaled to the photo;

and none of them: the automatic pose from the reference (the caller's job). A start that
holds an out-of-range or unreadable number never blocks the task: it is passed over, and
:attr:`Resolved.notes` says which and why, for the message box and ``finepose_error``.

**Reference**, first found of (:data:`REFERENCE_ORDER`): the newest annotation's
``Reference`` brush (painted, or an outline copied from a prediction: filled either way),
``data.reference`` (a mask URL), the newest prediction's ``Reference`` brush (only where
predictions are asked for), else segmentation. Brushes are decoded within
``FINEPOSE_MAX_IMAGE_PIXELS`` (:func:`brush_reference`).

Poses are finepose's seven numbers at the photo's own size (px), in the registry model's
frame (the frame rule, :func:`geometry.frames.pose_in_model_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import GeometryError
from geometry.masks import resize_mask
from geometry.pose import Pose

from ls_backend.errors import FineposeError
from ls_backend.studio.label_config import REFERENCE, PoseConfig
from ls_backend.studio.predictions import filled
from ls_backend.studio.tasks import (
    TaskInputs, annotated_numbers, brush_mask, find_brush, pose_from_numbers, pose_from_task_data,
)

START_ORDER = ("annotation", "prediction", "data.pose")
REFERENCE_ORDER = ("annotation", "data.reference", "prediction", "segmentation")


@dataclass(frozen=True)
class Start:
    """A start pose and where it came from (one of :data:`START_ORDER`)."""

    pose: Pose
    source: str

    @property
    def by_a_person(self) -> bool:
        """A person set this pose: it is refined, never second-guessed by the front/back check."""
        return self.source == "annotation"


@dataclass(frozen=True)
class ReferenceChoice:
    """Where the reference comes from (one of :data:`REFERENCE_ORDER`): a brush result still
    RLE-encoded (``brush``, named ``where`` in messages), a mask URL (``url``), or neither
    (segmentation)."""

    source: str
    brush: dict | None = None
    url: str | None = None
    where: str = ""


@dataclass(frozen=True)
class Resolved:
    start: Start | None  # None: the automatic pose from the reference
    reference: ReferenceChoice
    notes: tuple[str, ...] = ()  # starts passed over, and why

    def note(self) -> str:
        """The notes as one sentence for the message box and ``finepose_error`` ("" if none)."""
        return "; ".join(self.notes)


def resolve_task(task: dict, inputs: TaskInputs, config: PoseConfig, entry, width: int, height: int,
                 predictions: bool = False) -> Resolved:
    """The start pose and reference choice of ``task`` (read by
    :func:`ls_backend.studio.tasks.read_task` into ``inputs``) on a ``width`` x ``height``
    photo, for the model of registry ``entry``; ``predictions``: whether the task's
    predictions count as starts and references (the pose editor)."""
    notes: list[str] = []
    start = None
    for source in START_ORDER:
        if source == "prediction" and not predictions:
            continue
        try:
            pose = start_pose(source, task, inputs, entry, width, height)
        except (FineposeError, GeometryError, ValueError, OverflowError) as exc:
            notes.append(f"{_NAMES[source]} not used ({_reason(exc, inputs.where, source)})")
            continue
        if pose is not None:
            start = Start(pose, source)
            break
    if notes:
        then = f"started from {_NAMES[start.source]}" if start is not None else "started from the automatic pose"
        notes[-1] += f": {then}"
    return Resolved(start, _reference_choice(task, inputs, config, predictions), tuple(notes))


_NAMES = {"annotation": "the annotation's numbers", "prediction": "the prediction's numbers",
          "data.pose": "data.pose"}


def _reason(exc: Exception, where: str, source: str) -> str:
    """The error's message without the task's and the source's names (the note names both)."""
    text = str(exc)
    for prefix in (f"{where}: ", f"{source}: ", "the annotation's numbers: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


def start_pose(source: str, task: dict, inputs: TaskInputs, entry, width: int, height: int) -> Pose | None:
    """The pose ``source`` (one of :data:`START_ORDER`) gives for ``task``, or None when the
    task holds none; an unusable one raises (the caller decides whether to pass it over)."""
    frame = entry.frame_matrix
    if source == "annotation":
        if inputs.human_numbers is None:
            return None
        return pose_from_numbers(inputs.human_numbers, width, height, frame, inputs.where)
    if source == "prediction":
        return prediction_pose(task, frame, width, height, inputs.where)
    if inputs.data_pose is None:
        return None
    return pose_from_task_data(inputs.data_pose, width, height, entry, inputs.where)


def prediction_pose(task: dict, frame, width: int, height: int, where: str = "task") -> Pose | None:
    """The pose of the task's newest prediction whose numbers make one (in the model's
    ``frame``, at the photo's size); None without such numbers; the newest one's error when
    none of them is usable."""
    first_error = None
    for numbers in prediction_numbers(task):
        try:
            return pose_from_numbers(numbers, width, height, frame, where)
        except (FineposeError, GeometryError, ValueError) as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return None


def prediction_numbers(task: dict) -> list[dict]:
    """The seven numbers of each of the task's predictions that holds them all, newest first."""
    found = (annotated_numbers(prediction.get("result")) for prediction in _newest_first(task.get("predictions")))
    return [numbers for numbers in found if numbers is not None]


def _newest_first(predictions) -> list[dict]:
    usable = [p for p in predictions or [] if isinstance(p, dict)]
    return sorted(usable, key=lambda p: p.get("id") if isinstance(p.get("id"), int) else 0, reverse=True)


def _reference_choice(task: dict, inputs: TaskInputs, config: PoseConfig, predictions: bool) -> ReferenceChoice:
    if inputs.human_reference is not None:
        return ReferenceChoice("annotation", brush=inputs.human_reference, where=inputs.reference_where)
    if inputs.reference_url is not None:
        return ReferenceChoice("data.reference", url=inputs.reference_url, where=f"{inputs.where}: data.reference")
    if predictions:
        for index, prediction in enumerate(_newest_first(task.get("predictions"))):
            brush = find_brush(prediction.get("result"), config.brush, REFERENCE)
            if brush is not None:
                return ReferenceChoice("prediction", brush=brush,
                                       where=f"{inputs.where}: prediction {prediction.get('id', index)}'s Reference")
    return ReferenceChoice("segmentation")


def needs_segmentation(task: dict, inputs: TaskInputs, config: PoseConfig, max_pixels: int) -> bool:
    """Whether the task's reference comes from segmentation (no usable brush, no
    ``data.reference``; the order of :func:`resolve_task`, without predictions): what
    ``finepose prelabel`` sends to its segmentation stage. An empty brush falls through to
    segmentation, as in :mod:`ls_backend.pipeline.reference`."""
    choice = _reference_choice(task, inputs, config, predictions=False)
    if choice.brush is not None:
        return not brush_mask(choice.brush, max_pixels, choice.where).any()
    return choice.url is None


def brush_reference(choice: ReferenceChoice, width: int, height: int, max_pixels: int) -> np.ndarray | None:
    """A brush reference as a filled mask at the photo's size (an outline, as predictions
    draw it, is filled: :func:`ls_backend.studio.predictions.filled`); None when it is empty."""
    mask = filled(brush_mask(choice.brush, max_pixels, choice.where))
    if not mask.any():
        return None
    return resize_mask(mask, width, height)
