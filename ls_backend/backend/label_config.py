"""Which tags of a Label Studio labeling config finepose reads and writes.

A config fit for finepose (see ``templates/pose_annotation.xml``) has one ``Image``, the seven
``Number`` controls ``azimuth elevation theta distance focal u v`` (degrees, degrees, degrees,
model units, px, px, px of the original photo) and a ``BrushLabels`` control with the labels
``Projection`` and ``Reference``. Optional: ``Number`` ``iou_before`` / ``iou_after``, a smart
``KeyPointLabels`` (labels = CAD keypoint names) and a smart ``RectangleLabels``.
Parsing uses label-studio-sdk's :class:`LabelInterface`.
"""

from __future__ import annotations

from dataclasses import dataclass

from geometry.pose import PARAMETER_NAMES

PROJECTION, REFERENCE = "Projection", "Reference"
IOU_FIELDS = ("iou_before", "iou_after")

from ls_backend.errors import LabelConfigError



@dataclass(frozen=True)
class PoseConfig:
    image: str  # name of the Image object tag
    image_key: str  # task data key of the image ("image" for value="$image")
    brush: str  # name of the BrushLabels control
    numbers: tuple[str, ...]  # the Number controls present, of PARAMETER_NAMES + IOU_FIELDS
    keypoints: str | None = None  # name of a KeyPointLabels control
    rectangle: str | None = None  # name of a RectangleLabels control


def parse_label_config(config) -> PoseConfig:
    """The finepose-relevant tags of ``config`` (XML text); :class:`LabelConfigError` otherwise."""
    from label_studio_sdk.label_interface import LabelInterface

    if not isinstance(config, str) or not config.strip():
        raise LabelConfigError("label_config is missing: /predict needs the project's labeling config")
    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises several parser-specific types
        raise LabelConfigError(f"label_config is not a valid Label Studio config: {exc}") from None
    images = [tag for tag in interface.objects if tag.tag == "Image"]
    if len(images) != 1:
        raise LabelConfigError(f"label_config must have exactly one <Image> tag, found {len(images)}")
    image = images[0]
    if not image.value or not image.value.startswith("$"):
        raise LabelConfigError(f"<Image name={image.name!r}> must take its value from task data, like value=\"$image\"")
    controls = {control.name: control for control in interface.controls if image.name in control.to_name}
    numbers = tuple(name for name in PARAMETER_NAMES + IOU_FIELDS if getattr(controls.get(name), "tag", "") == "Number")
    missing = [name for name in PARAMETER_NAMES if name not in numbers]
    if missing:
        raise LabelConfigError(f"label_config lacks <Number> controls for {', '.join(missing)} (see templates/pose_annotation.xml)")
    brushes = [c for c in controls.values() if c.tag == "BrushLabels" and {PROJECTION, REFERENCE} <= set(c.labels)]
    if not brushes:
        raise LabelConfigError(f"label_config lacks a <BrushLabels> control with labels {PROJECTION!r} and {REFERENCE!r}")
    return PoseConfig(
        image=image.name,
        image_key=image.value[1:],
        brush=brushes[0].name,
        numbers=numbers,
        keypoints=_first(controls, "KeyPointLabels"),
        rectangle=_first(controls, "RectangleLabels"),
    )


def _first(controls: dict, tag: str) -> str | None:
    return next((name for name, control in controls.items() if control.tag == tag), None)
