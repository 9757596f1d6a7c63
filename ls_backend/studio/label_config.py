"""Which tags of a Label Studio labeling config finepose reads and writes.

A config fit for finepose (see ``templates/pose_annotation.xml``) has one ``Image``, the seven
``Number`` controls ``azimuth elevation theta distance focal u v`` (degrees, degrees, degrees,
model units, px, px, px of the original photo) and a ``BrushLabels`` control with the labels
``Projection`` and ``Reference``. Optional: ``Number`` ``iou_before`` / ``iou_after``, a smart
``KeyPointLabels`` (each label's ``alias``, or else its value, is a CAD keypoint name), a smart
``RectangleLabels``, a ``TextArea`` named ``finepose_message`` where interactive calls say
what they did or why they could not, and a ``Choices`` named ``model`` (:data:`MODEL_CHOICE`):
the registry's model ids (each ``Choice``'s ``alias``, or else its value) for tasks without
``data.model``, one ``selected="true"`` as the project's default model
(``finepose registry label-config`` writes it from the registry).
Parsing uses label-studio-sdk's :class:`LabelInterface`.

Each ``Number``'s ``min``, ``max`` and ``step`` are read (:class:`NumberSpec`): a value the
backend writes is fitted to them (:meth:`NumberSpec.fit`), so that Label Studio's editor,
which refuses a number off the grid ``min + k * step`` (or ``k * step`` without ``min``),
accepts an unchanged prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from geometry.pose import PARAMETER_NAMES
from ls_backend.errors import LabelConfigError

PROJECTION, REFERENCE = "Projection", "Reference"
IOU_FIELDS = ("iou_before", "iou_after")
MESSAGE = "finepose_message"
MODEL_CHOICE = "model"  # the Choices control naming the task's CAD model
MAX_DECIMALS = 6  # values with no step (or a finer one) are rounded to this many decimals


@dataclass(frozen=True)
class NumberSpec:
    """A ``Number`` tag's limits and step as Label Studio's editor checks them."""

    min: float | None = None
    max: float | None = None
    step: float | None = None
    decimals: int = MAX_DECIMALS  # enough decimals to write min + k * step exactly

    @classmethod
    def from_attributes(cls, name: str, attr: dict) -> "NumberSpec":
        values, decimals = {}, 0
        for key in ("min", "max", "step"):
            text = attr.get(key)
            if text in (None, ""):
                values[key] = None
                continue
            try:
                number = Decimal(str(text).strip())
            except InvalidOperation:
                raise LabelConfigError(f"<Number name={name!r}> {key}={text!r} is not a number") from None
            if not number.is_finite() or (key == "step" and number <= 0):
                raise LabelConfigError(f"<Number name={name!r}> {key}={text!r} must be a finite number (step > 0)")
            values[key] = float(number)
            if key != "max":
                decimals = max(decimals, -number.normalize().as_tuple().exponent)
        if values["min"] is not None and values["max"] is not None and values["min"] > values["max"]:
            raise LabelConfigError(f"<Number name={name!r}> has min {values['min']} > max {values['max']}")
        return cls(values["min"], values["max"], values["step"], min(max(decimals, 0), MAX_DECIMALS)
                   if values["step"] is not None else MAX_DECIMALS)

    def fit(self, value: float) -> float:
        """``value`` on the tag's grid (nearest ``min + k * step``) inside ``[min, max]``."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"cannot write a non-finite number ({value})")
        if self.min is not None:
            value = max(value, self.min)
        if self.max is not None:
            value = min(value, self.max)
        if self.step is None:
            return round(value, self.decimals)
        base = self.min if self.min is not None else 0.0
        k = round((value - base) / self.step)
        if self.max is not None and base + k * self.step > self.max + 1e-9:
            k -= 1  # the grid point above max is not allowed
        return round(base + k * self.step, self.decimals)


@dataclass(frozen=True)
class PoseConfig:
    image: str  # name of the Image object tag
    image_key: str  # task data key of the image ("image" for value="$image")
    brush: str  # name of the BrushLabels control
    numbers: tuple[str, ...]  # the Number controls present, of PARAMETER_NAMES + IOU_FIELDS
    keypoints: str | None = None  # name of a KeyPointLabels control
    rectangle: str | None = None  # name of a RectangleLabels control
    message: str | None = None  # name of the TextArea "finepose_message" (smart tools' messages)
    specs: dict = field(default_factory=dict, compare=False, hash=False)  # Number name -> NumberSpec
    model_choice: str | None = None  # name of the Choices control of model ids ("model")
    model_ids: tuple[str, ...] = ()  # its choices: registry model ids
    default_model: str | None = None  # its Choice selected="true": the project's default model

    def fit(self, name: str, value: float) -> float:
        """``value`` as the ``Number`` called ``name`` accepts it (see :class:`NumberSpec`)."""
        return self.specs.get(name, NumberSpec()).fit(value)


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
        message=MESSAGE if getattr(controls.get(MESSAGE), "tag", "") == "TextArea" else None,
        specs={name: NumberSpec.from_attributes(name, controls[name].attr) for name in numbers},
        **_model_choices(controls.get(MODEL_CHOICE)),
    )


def _model_choices(control) -> dict:
    """The ``model`` Choices control's ids and its preselected default (none: {})."""
    if getattr(control, "tag", "") != "Choices":
        return {}
    ids = tuple(control.labels)
    chosen = [name for name, label in (control.labels_attrs or {}).items()
              if str(label.attr.get("selected", "")).lower() in ("true", "1", "yes")]
    if len(chosen) > 1:
        raise LabelConfigError(f"<Choices name={MODEL_CHOICE!r}> preselects {len(chosen)} models "
                               f"({', '.join(chosen)}): mark one <Choice selected=\"true\"> as the project's default")
    return {"model_choice": control.name, "model_ids": ids, "default_model": chosen[0] if chosen else None}


def _first(controls: dict, tag: str) -> str | None:
    return next((name for name, control in controls.items() if control.tag == tag), None)
