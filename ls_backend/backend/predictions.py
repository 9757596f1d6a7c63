"""Refined poses as Label Studio prediction results.

A prediction holds the seven refined numbers (``number`` results: degrees, model units, px of
the original photo; azimuth in [0, 360), elevation and theta in (-180, 180]), ``iou_before`` /
``iou_after`` when the config has them (so reviewers can sort by them in the data manager),
the refined projection and the reference as ``brushlabels`` regions (RLE by label-studio-sdk),
``score`` = the refined IoU and the backend's ``model_version``.
"""

from __future__ import annotations

import numpy as np

from geometry.pose import PARAMETER_NAMES, Pose, display_angles

from ls_backend.backend.label_config import PROJECTION, REFERENCE, PoseConfig


def number_result(config: PoseConfig, name: str, value: float) -> dict:
    return {
        "id": f"finepose-{name}",
        "from_name": name,
        "to_name": config.image,
        "type": "number",
        "value": {"number": round(float(value), 6)},
    }


def brush_result(config: PoseConfig, label: str, mask: np.ndarray) -> dict:
    from label_studio_sdk.converter.brush import mask2rle

    height, width = mask.shape
    return {
        "id": f"finepose-{label.lower()}",
        "from_name": config.brush,
        "to_name": config.image,
        "type": "brushlabels",
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]},
    }


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
) -> dict:
    """One prediction (``{"result", "score", "model_version"}``) for a refined pose."""
    result = [number_result(config, name, value) for name, value in pose_numbers(pose).items()]
    for name, value in zip(("iou_before", "iou_after"), (iou_before, iou_after)):
        if name in config.numbers:
            result.append(number_result(config, name, value))
    result.append(brush_result(config, PROJECTION, projection))
    result.append(brush_result(config, REFERENCE, reference))
    return {"result": result, "score": float(iou_after), "model_version": model_version}
