"""Reading Label Studio tasks and annotations into what the refiner needs.

Task data (``task["data"]``): the image under the config's image key (a Label Studio URL),
``model`` (a registry id), optional ``pose`` (a pose JSON object in any supported convention,
see :mod:`geometry.pose_io`) and optional ``reference`` (a mask image URL). Human poses are
the seven ``Number`` results of an annotation, in px of the original photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geometry.pose import PARAMETER_NAMES, Pose, PoseError
from geometry.frames import pose_in_model_frame
from geometry.pose_io import read_pose

from ls_backend.errors import TaskError
from ls_backend.backend.label_config import REFERENCE, PoseConfig



@dataclass(frozen=True)
class TaskInputs:
    task_id: int | None
    image_url: str
    model_id: str
    human_numbers: dict | None  # the newest human annotation's 7 numbers
    human_reference: dict | None  # its Reference brush result, still RLE-encoded
    data_pose: dict | None
    reference_url: str | None


def read_task(task, config: PoseConfig) -> TaskInputs:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise TaskError("each task must be an object with a 'data' object")
    data = task["data"]
    image_url = data.get(config.image_key)
    if not isinstance(image_url, str) or not image_url:
        raise TaskError(f"task {task.get('id')}: data.{config.image_key} must be the image URL")
    model_id = data.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise TaskError(f"task {task.get('id')}: data.model must name a registered CAD model")
    pose = data.get("pose")
    if pose is not None and not isinstance(pose, dict):
        raise TaskError(f"task {task.get('id')}: data.pose must be a pose object, got {type(pose).__name__}")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise TaskError(f"task {task.get('id')}: data.reference must be a mask URL")
    annotation = newest_annotation(task.get("annotations") or [])
    results = annotation.get("result", []) if annotation else []
    return TaskInputs(
        task_id=task.get("id"),
        image_url=image_url,
        model_id=model_id,
        human_numbers=annotated_numbers(results),
        human_reference=find_brush(results, config.brush, REFERENCE),
        data_pose=pose,
        reference_url=reference,
    )


def newest_annotation(annotations) -> dict | None:
    """The most recently updated annotation that was not cancelled (skipped), or None."""
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        return None
    return max(usable, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))


def annotated_numbers(results) -> dict | None:
    """The seven pose numbers of an annotation's results, when all seven are there."""
    numbers = {}
    for item in results or []:
        if isinstance(item, dict) and item.get("type") == "number" and item.get("from_name") in PARAMETER_NAMES:
            numbers[item["from_name"]] = (item.get("value") or {}).get("number")
    if set(numbers) != set(PARAMETER_NAMES):
        return None
    return numbers


def pose_from_numbers(numbers: dict, width: int, height: int, model_frame) -> Pose:
    """A pose from the seven numbers (px of a ``width`` x ``height`` photo), which are always
    in the model's frame (``model_frame``: its registry entry's frame, a name or a matrix):
    the frame rule, :func:`geometry.frames.pose_in_model_frame`."""
    values = {}
    for name in PARAMETER_NAMES:
        value = numbers.get(name)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise PoseError(f"annotated pose {name} is not a number: {value!r}") from None
        if not math.isfinite(value):
            raise PoseError(f"annotated pose {name} must be finite, got {value}")
        values[name] = value
    return pose_in_model_frame(Pose(**values, width=width, height=height), model_frame, names_frame=False)


def pose_from_task_data(data: dict, width: int, height: int, entry) -> Pose:
    """``data.pose`` rescaled to the photo, in the frame of the model (``entry``, its registry
    entry): a pose naming another frame is converted, or refused across a reflection
    (:func:`geometry.pose_io.read_pose`)."""
    pose = read_pose(data, model_frame=entry.frame)
    return pose.rescaled(width, height) if (pose.width, pose.height) != (width, height) else pose


def find_brush(results, from_name: str, label: str) -> dict | None:
    """The last brush result of ``from_name`` labelled ``label``."""
    found = None
    for item in results or []:
        if (
            isinstance(item, dict)
            and item.get("type") == "brushlabels"
            and item.get("from_name") == from_name
            and label in ((item.get("value") or {}).get("brushlabels") or [])
        ):
            found = item
    return found


def brush_mask(item: dict) -> np.ndarray:
    """Decode a brush result's RLE (label-studio-sdk) to a boolean (H, W) mask."""
    from label_studio_sdk.converter.brush import decode_rle

    try:
        width, height = int(item["original_width"]), int(item["original_height"])
        flat = decode_rle(item["value"]["rle"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise TaskError(f"brush region {item.get('id')!r} cannot be decoded: {exc}") from None
    if flat.size != width * height * 4:
        raise TaskError(f"brush region {item.get('id')!r} has {flat.size} values, expected {width}x{height}x4")
    return flat.reshape(height, width, 4)[:, :, 3] > 0
