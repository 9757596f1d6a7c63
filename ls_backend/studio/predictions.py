"""Refined poses as Label Studio prediction results.

A prediction holds the seven refined numbers (``number`` results: degrees, model units, px of
the original photo; azimuth in [0, 360), elevation and theta in (-180, 180]), each on its
``Number`` tag's step grid (:meth:`PoseConfig.fit`, so an unchanged prediction submits),
``iou_before`` / ``iou_after`` when the config has them (read-only; reviewers can sort by them
in the data manager), the outlines of the refined projection and of the reference as
read-only ``brushlabels`` regions (RLE by label-studio-sdk), ``score`` = the refined IoU and
the backend's ``model_version``.

Outlines, not filled masks: the photo stays visible under them, and Label Studio places a
keypoint clicked inside an outline (a filled brush region would take the click). An outline
is the mask's border pixels, :func:`outline` px wide; :func:`filled` gives the mask back.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from geometry.masks import border_pixels, outline_thickness
from geometry.pose import PARAMETER_NAMES, Pose, display_angles

from ls_backend.errors import TaskError
from ls_backend.studio.label_config import PROJECTION, REFERENCE, PoseConfig
from ls_backend.studio.tasks import annotated_numbers, brush_mask, find_brush


READ_ONLY = ("iou_before", "iou_after")


def number_result(config: PoseConfig, name: str, value: float) -> dict:
    result = {
        "id": f"finepose-{name}",
        "from_name": name,
        "to_name": config.image,
        "type": "number",
        "value": {"number": config.fit(name, value)},  # on the tag's step grid: submits unchanged
    }
    if name in READ_ONLY:
        result["readonly"] = True  # Label Studio shows the field disabled
    return result


def outline(mask: np.ndarray) -> np.ndarray:
    """The border of ``mask`` as a prediction draws it: :func:`geometry.masks.border_pixels`
    :func:`geometry.masks.outline_thickness` px wide, at least 2 (the image edge counts as
    outside)."""
    return border_pixels(mask, outline_thickness(mask.shape[1], mask.shape[0], minimum=2))


def filled(mask: np.ndarray) -> np.ndarray:
    """An outline (or a painted mask) with its inside filled."""
    return ndimage.binary_fill_holes(mask)


def brush_result(config: PoseConfig, label: str, mask: np.ndarray, readonly: bool = False) -> dict:
    from label_studio_sdk.converter.brush import mask2rle

    height, width = mask.shape
    result = {
        "id": f"finepose-{label.lower()}",
        "from_name": config.brush,
        "to_name": config.image,
        "type": "brushlabels",
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]},
    }
    if readonly:
        result["readonly"] = True
    return result


def snapped(config: PoseConfig, pose: Pose) -> Pose:
    """``pose`` with its seven numbers as the prediction writes them (see :meth:`PoseConfig.fit`)."""
    numbers = {name: config.fit(name, value) for name, value in pose_numbers(pose).items()}
    return replace(pose, **numbers)


def pose_numbers(pose: Pose) -> dict[str, float]:
    """The seven numbers as shown to annotators (angles wrapped to the template's ranges)."""
    numbers = dict(zip(PARAMETER_NAMES, pose.vector().tolist()))
    angles = display_angles(pose.azimuth, pose.elevation, pose.theta)
    numbers.update(zip(("azimuth", "elevation", "theta"), map(float, angles)))
    return numbers


def prediction(
    config: PoseConfig,
    pose: Pose,
    projection: np.ndarray,
    reference: np.ndarray,
    iou_before: float,
    iou_after: float,
    model_version: str,
    model_id: str | None = None,
) -> dict:
    """One prediction (``{"result", "score", "model_version"}``) for a refined pose; with
    ``model_id`` it also picks that model in the config's ``model`` list (when listed there),
    so the annotator sees which model was posed and can change it."""
    result = [number_result(config, name, value) for name, value in pose_numbers(pose).items()]
    for name, value in zip(("iou_before", "iou_after"), (iou_before, iou_after)):
        if name in config.numbers:
            result.append(number_result(config, name, value))
    result.append(brush_result(config, PROJECTION, outline(projection), readonly=True))
    result.append(brush_result(config, REFERENCE, outline(reference), readonly=True))
    choice = model_choice_result(config, model_id)
    if choice is not None:
        result.append(choice)
    return {"result": result, "score": float(iou_after), "model_version": model_version}


def model_choice_result(config: PoseConfig, model_id: str | None) -> dict | None:
    """``model_id`` picked in the config's ``model`` list, or None where the config lists no
    models or not this one: predictions and the editor's annotations say which model they pose."""
    if model_id is None or config.model_choice is None or model_id not in config.model_ids:
        return None
    return {"id": "finepose-model", "from_name": config.model_choice, "to_name": config.image,
            "type": "choices", "value": {"choices": [model_id]}}



def consistent_annotation(config: PoseConfig, result: list, projection: np.ndarray, iou_of_numbers: float,
                          max_pixels: int = 40_000_000) -> list | None:
    """An annotation's ``result`` with its Projection and IoU made those of its own seven
    numbers, or None when they already are (docs/label-studio.md, "What a prediction holds").

    ``projection``: the silhouette of the annotation's numbers at the photo's size;
    ``iou_of_numbers``: its IoU with the task's reference. A Projection region that is not
    the outline of ``projection`` (the annotator typed other numbers after it was drawn) is
    redrawn, and then ``iou_before`` (the IoU of a refinement's start, which no longer
    applies) goes; ``iou_after`` becomes ``iou_of_numbers``. Regions the annotation does not
    hold are not added."""
    drawn = find_brush(result, config.brush, PROJECTION)
    expected = outline(projection)
    stale = drawn is not None and not _shows(drawn, expected, max_pixels)
    fixed, changed = [], False
    for item in result:
        name = item.get("from_name") if isinstance(item, dict) else None
        if item is drawn and stale:
            fixed.append({**brush_result(config, PROJECTION, expected, readonly=True), "id": item.get("id", "finepose-projection")})
            changed = True
        elif name == "iou_before" and item.get("type") == "number" and stale:
            changed = True  # dropped
        elif name == "iou_after" and item.get("type") == "number" and "iou_after" in config.numbers:
            value = config.fit("iou_after", iou_of_numbers)
            if (item.get("value") or {}).get("number") != value:
                item = {**item, "value": {**(item.get("value") or {}), "number": value}}
                changed = True
            fixed.append(item)
        else:
            fixed.append(item)
    return fixed if changed else None


def _shows(brush: dict, mask: np.ndarray, max_pixels: int) -> bool:
    """Whether a brush region draws exactly ``mask`` (an undecodable one does not)."""
    try:
        return np.array_equal(brush_mask(brush, max_pixels), mask)
    except TaskError:
        return False


def same_prediction(first: dict, second: dict) -> bool:
    """Whether two predictions hold the same seven numbers and say the same in the message box."""
    numbers = annotated_numbers(first.get("result"))
    return (numbers is not None and numbers == annotated_numbers(second.get("result"))
            and _messages(first) == _messages(second))


def _messages(prediction: dict) -> list:
    return [(item.get("value") or {}).get("text") for item in prediction.get("result") or []
            if isinstance(item, dict) and item.get("type") == "textarea"]
