"""Reading Label Studio tasks and annotations into what the refiner needs.

Task data (``task["data"]``): the image under the config's image key (a Label Studio URL),
``model`` (a registry id; see :func:`task_model` for tasks without it), optional ``pose`` (a pose JSON object in any supported convention,
see :mod:`geometry.pose_io`) and optional ``reference`` (a mask image URL). Human poses are
the seven ``Number`` results of an annotation, in px of the original photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.pose import PARAMETER_NAMES, Pose, PoseError
from geometry.frames import pose_in_model_frame
from geometry.pose_io import read_pose

from ls_backend.studio import validation
from ls_backend.studio.label_config import REFERENCE, PoseConfig
from ls_backend.errors import TaskError



@dataclass(frozen=True)
class TaskInputs:
    task_id: int | None
    image_url: str
    model_id: str
    model_source: str  # "annotation" (the model list), "data.model" or "project default"
    human_numbers: dict | None  # the newest human annotation's 7 numbers, as given (unchecked)
    human_reference: dict | None  # its Reference brush result, still RLE-encoded
    data_pose: dict | None
    reference_url: str | None
    where: str = "task"  # how messages name the task ("task 5")
    reference_where: str = ""  # how messages name the human Reference brush region


def read_task(task, config: PoseConfig) -> TaskInputs:
    """The refiner's inputs of ``task``, checked by :func:`ls_backend.studio.validation.task`."""
    checked = validation.task(task, config.image_key)
    where = checked["where"]
    annotation, index = newest_annotation_at(checked["annotations"])
    results = annotation.get("result") or [] if annotation else []
    numbers = annotated_numbers(results)  # checked where they are used: a bad one never blocks the task
    brush, brush_index = find_brush(results, config.brush, REFERENCE, with_index=True)
    model_id, model_source = task_model(checked["model"], results, config, where)
    return TaskInputs(
        task_id=checked["id"],
        image_url=checked["image"],
        model_id=model_id,
        model_source=model_source,
        human_numbers=numbers,
        human_reference=brush,
        data_pose=checked["pose"],
        reference_url=checked["reference"],
        where=where,
        reference_where=f"{where}: annotations[{index}].result[{brush_index}]" if brush is not None else "",
    )


def task_model(data_model: str | None, results, config: PoseConfig, where: str = "task") -> tuple[str, str]:
    """The task's CAD model id and where it came from, first found of: the model the newest
    annotation picked in the config's ``model`` list (``results``: its results), ``data.model``
    (``data_model``, checked), the list's preselected choice (the project's default). None of
    them: a :class:`TaskError` saying what to do."""
    if config.model_choice is not None:
        for i, item in enumerate(results or []):
            if isinstance(item, dict) and item.get("type") == "choices" and item.get("from_name") == config.model_choice:
                chosen = (item.get("value") or {}).get("choices") or []
                if chosen:
                    return validation.model_id(chosen[0], f"{where}: the annotation's {config.model_choice} choice"), \
                        "annotation"
    if data_model is not None:
        return data_model, "data.model"
    if config.default_model is not None:
        return config.default_model, "project default"
    if config.model_choice is not None:
        raise TaskError(f"{where} names no CAD model: pick one in the labeling screen's model list "
                        f"and submit, or make one the project's default (<Choice selected=\"true\"> in the "
                        f"<Choices name=\"{config.model_choice}\"> of the labeling config), or set data.model")
    raise TaskError(f"{where} names no CAD model (no data.model; photos uploaded through Label Studio "
                    f"have none): add the project's model list to the labeling config "
                    f"(finepose registry label-config --registry REGISTRY --default MODEL_ID writes it), "
                    f"or set data.model")


def newest_annotation(annotations) -> dict | None:
    """The most recently updated annotation that was not cancelled (skipped), or None."""
    return newest_annotation_at(annotations)[0]


def newest_annotation_at(annotations) -> tuple[dict | None, int]:
    """:func:`newest_annotation` and its index in ``annotations`` (``(None, -1)``: none)."""
    usable = [(i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        return None, -1
    index, newest = max(usable, key=lambda pair: (str(pair[1].get("updated_at") or pair[1].get("created_at") or ""),
                                                 _id_order(pair[1].get("id"))))
    return newest, index


def _id_order(identity) -> tuple:
    """Annotation ids compare as numbers, or as text when they are strings (never mixed)."""
    if isinstance(identity, int) and not isinstance(identity, bool):
        return (1, identity, "")
    return (0, 0, str(identity)) if identity is not None else (-1, 0, "")


def annotated_numbers(results) -> dict | None:
    """The seven pose numbers of an annotation's results, when all seven are there."""
    numbers = {}
    for item in results or []:
        if isinstance(item, dict) and item.get("type") == "number" and item.get("from_name") in PARAMETER_NAMES:
            numbers[item["from_name"]] = (item.get("value") or {}).get("number")
    if set(numbers) != set(PARAMETER_NAMES):
        return None
    return numbers


def pose_from_numbers(numbers: dict, width: int, height: int, model_frame, where: str = "task") -> Pose:
    """A pose from the seven numbers (px of a ``width`` x ``height`` photo), which are always
    in the model's frame (``model_frame``: its registry entry's frame, a name or a matrix):
    the frame rule, :func:`geometry.frames.pose_in_model_frame`; within
    :data:`~ls_backend.studio.validation.POSE_RANGES`."""
    values = {name: validation.finite(numbers.get(name), f"{where}: the annotation's {name}")
              for name in PARAMETER_NAMES}
    try:
        pose = pose_in_model_frame(Pose(**values, width=width, height=height), model_frame, names_frame=False)
    except PoseError as exc:
        raise TaskError(f"{where}: the annotation's numbers: {exc}") from None
    return validation.check_pose(pose, f"{where}: the annotation's numbers")


def pose_from_task_data(data: dict, width: int, height: int, entry, where: str = "task") -> Pose:
    """``data.pose`` rescaled to the photo, in the frame of the model (``entry``, its registry
    entry): a pose naming another frame is converted (:func:`geometry.frames.express_in_frame`)
    (:func:`geometry.pose_io.read_pose`). Checked against
    :data:`~ls_backend.studio.validation.POSE_RANGES` as given and at the photo's size."""
    try:
        pose = read_pose(data, model_frame=entry.frame)
    except PoseError as exc:
        raise TaskError(f"{where}: data.pose: {exc}") from None
    validation.check_pose(pose, f"{where}: data.pose")
    pose = pose.rescaled(width, height) if (pose.width, pose.height) != (width, height) else pose
    return validation.check_pose(pose, f"{where}: data.pose (at the photo's size)")


def find_brush(results, from_name: str, label: str, with_index: bool = False):
    """The last brush result of ``from_name`` labelled ``label`` (and its index when
    ``with_index``), or None."""
    found, index = None, -1
    for i, item in enumerate(results or []):
        if (
            isinstance(item, dict)
            and item.get("type") == "brushlabels"
            and item.get("from_name") == from_name
            and isinstance(item.get("value"), dict)
            and isinstance(item["value"].get("brushlabels"), list)
            and label in item["value"]["brushlabels"]
        ):
            found, index = item, i
    return (found, index) if with_index else found


def brush_mask(item: dict, max_pixels: int = 40_000_000, where: str = "brush region") -> np.ndarray:
    """Decode a brush result's RLE (label-studio-sdk) to a boolean (H, W) mask; the RLE's size
    is checked against ``original_width`` x ``original_height`` (at most ``max_pixels``) first."""
    from label_studio_sdk.converter.brush import decode_rle

    width, height, rle = validation.brush(item, where, max_pixels)
    try:
        flat = decode_rle(rle)
    except Exception as exc:  # noqa: BLE001 (the SDK's decoder raises ValueError, OverflowError, IndexError...)
        raise TaskError(f"{where}.value.rle cannot be decoded ({type(exc).__name__}): is it Label Studio's brush RLE?") from None
    if flat.size != width * height * 4:
        raise TaskError(f"{where}.value.rle has {flat.size} values, expected {width}x{height}x4")
    return flat.reshape(height, width, 4)[:, :, 3] > 0
