"""Smart regions of Label Studio's interactive calls (``context={"result": [...]}``).

- ``keypointlabels`` regions: clicked CAD keypoints, label = keypoint name, ``value.x/.y`` in
  percent of the image. finepose fits the 7 pose numbers to them (4 or more).
  Label Studio sends the region just drawn; the clicks of one task are remembered in
  ``MODEL_DIR/smart-keypoints/<task>.json`` (shared by all worker processes), the newest
  click of a name replacing older ones. A task's clicks are forgotten (and the file removed)
  once no click came for ``max_age_s`` seconds (``FINEPOSE_SMART_MEMORY_S``, 1 h): a later
  session on the task, by anyone, starts afresh.
- ``rectanglelabels`` regions: a box around one object; the reference is restricted to the
  object(s) inside it and the initial pose moved onto it (:mod:`.pipeline`).

The focal: a few clicks cannot fix both the focal and the distance (4 points leave one
equation to spare, and wheels lie in one plane), so with fewer than :data:`FREE_FOCAL_POINTS`
clicks, or when a free fit lands outside :data:`FOCAL_RANGE` times the release's median focal
(``FOCAL_PER_WIDTH`` x width), the focal is held at that default and the message says so.

Percent coordinates map to finepose pixels (pixel centres at integers) as
``x_px = x% / 100 * width - 0.5``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geometry.init_pose import FOCAL_PER_WIDTH
from geometry.keypoints import MIN_POINTS, KeypointFit, fit_pose_to_keypoints

from ls_backend.studio import validation
from ls_backend.studio.label_config import PoseConfig
from ls_backend.errors import StorageError, TaskError


@dataclass
class SmartRegions:
    keypoints: dict = field(default_factory=dict)  # name -> (x%, y%)
    rectangle: tuple | None = None  # (x%, y%, width%, height%)

    @classmethod
    def from_context(cls, context, config: PoseConfig) -> "SmartRegions":
        """The finepose regions of ``context`` (checked by
        :func:`ls_backend.studio.validation.context_regions`; others are ignored)."""
        found = cls()
        for index, item in enumerate(validation.context_regions(context) or []):
            where = f"params.context.result[{index}]"
            value = item["value"]
            if item.get("type") == "keypointlabels" and item.get("from_name") == config.keypoints:
                names = validation.labels(value.get("keypointlabels") or [], f"{where}.value.keypointlabels")
                for label in names:
                    found.keypoints[label] = (validation.percent(value, "x", where), validation.percent(value, "y", where))
            elif item.get("type") == "rectanglelabels" and item.get("from_name") == config.rectangle:
                box = tuple(validation.percent(value, key, where) for key in ("x", "y", "width", "height"))
                if box[2] <= 0 or box[3] <= 0:
                    raise TaskError(f"{where}.value.width and .height must be positive (percent), got "
                                    f"{box[2]:g} x {box[3]:g}")
                found.rectangle = box
        return found

    def remember(self, folder: Path, task_id, max_age_s: float = 3600.0) -> None:
        """Merge this call's clicks with the task's earlier ones (kept in ``folder``), those
        of every task idle for over ``max_age_s`` seconds forgotten first."""
        if not self.keypoints or task_id is None:
            return
        task_id = validation.task_id(task_id)  # a whole number: the file name is safe
        path = folder / f"{task_id}.json"
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            forget_idle(folder, max_age_s)
            self.keypoints = {**_remembered(path), **self.keypoints}
            with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as tmp:
                json.dump(self.keypoints, tmp)
            os.replace(tmp.name, path)  # atomic: concurrent workers never see half a file
        except OSError as exc:
            raise StorageError(f"the smart-keypoint memory cannot be written ({exc.strerror or type(exc).__name__}): "
                               "free space in MODEL_DIR") from None
        finally:
            if tmp is not None and os.path.exists(tmp.name):
                os.unlink(tmp.name)

    @property
    def enough_keypoints(self) -> bool:
        return len(self.keypoints) >= MIN_POINTS


def _remembered(path: Path) -> dict:
    """A task's earlier clicks (``{}`` when there are none or the file is not what we wrote)."""
    try:
        earlier = json.loads(path.read_text()) if path.is_file() else {}
        return {str(k): (float(v[0]), float(v[1])) for k, v in earlier.items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}


def forget_idle(folder: Path, max_age_s: float) -> None:
    """Remove the remembered clicks of tasks with no click for over ``max_age_s`` seconds (and
    temporary files a killed process left behind)."""
    cutoff = time.time() - max_age_s
    for path in [*folder.glob("*.json"), *folder.glob("*.tmp")]:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:  # another worker removed it first
            pass


FREE_FOCAL_POINTS = 6  # fewer clicks: the focal is held at the default
FOCAL_RANGE = (0.4, 4.0)  # a free fit's focal outside this many default focals is not believed
HELD_FOCAL_WEIGHT = 1000.0  # px per unit of ln focal: the prior all but fixes the focal


@dataclass
class KeypointPose:
    fit: KeypointFit
    focal_held: bool  # the focal was held at the default focal
    message: str


def require_keypoints(model_points: dict) -> None:
    """A :class:`TaskError` for a model without CAD keypoints (said on the first click)."""
    if not model_points:
        raise TaskError("this model has no CAD keypoints (no <mesh>_keypoints.json beside its mesh): "
                        "smart keypoints are unavailable for it; use the numbers or a box")


def fit_keypoints(model_points: dict, clicks_percent: dict, width: int, height: int, frame) -> KeypointPose:
    """The pose fitted to clicked keypoints (see :func:`geometry.keypoints.fit_pose_to_keypoints`),
    the focal held at the default unless enough clicks fix it to a believable value."""
    require_keypoints(model_points)
    clicks = {name: _to_pixels(xy, width, height) for name, xy in clicks_percent.items()}
    default = FOCAL_PER_WIDTH * width
    fit, held = None, True
    if len([n for n in clicks if n in model_points]) >= FREE_FOCAL_POINTS:
        fit = fit_pose_to_keypoints(model_points, clicks, width, height, mesh_frame=frame)
        held = not (FOCAL_RANGE[0] <= fit.pose.focal / default <= FOCAL_RANGE[1])
    if held:
        fit = fit_pose_to_keypoints(model_points, clicks, width, height, mesh_frame=frame,
                                    focal_prior=default, focal_weight=HELD_FOCAL_WEIGHT)
    validation.check_pose(fit.pose, "the pose fitted to the clicked keypoints")
    message = f"pose fitted to {fit.num_points} keypoints (rms {fit.rms:.1f} px)"
    if held:
        message += (f"; focal held at the default {default:.0f} px: {fit.num_points} points cannot fix it"
                    f" (click {FREE_FOCAL_POINTS}+ spread keypoints to fit it)")
    if fit.poor:
        message += "; the clicks do not fit this model well: check the names (the object's own left/right)"
    elif fit.ambiguous:
        message += "; a far-apart pose fits as well: add a keypoint on the other end"
    if fit.ignored:
        message += f"; ignored (not on this model): {', '.join(fit.ignored)}"
    return KeypointPose(fit, held, message)


def guidance(clicked: int) -> str:
    """What the annotator reads before the pose can be fitted."""
    more = MIN_POINTS - clicked
    return (f"{clicked} of {MIN_POINTS} keypoints placed: click {more} more "
            f"(left/right are the object's own) for a pose; {FREE_FOCAL_POINTS}+ also fit the focal")


def message_result(config: PoseConfig, text: str) -> list[dict]:
    """``text`` in the config's ``finepose_message`` TextArea (nothing when it has none)."""
    if config.message is None:
        return []
    return [{"id": "finepose-message", "from_name": config.message, "to_name": config.image,
             "type": "textarea", "value": {"text": [text]}, "readonly": True}]


def keypoint_results(config: PoseConfig, clicks_percent: dict, width: int, height: int) -> list[dict]:
    """The remembered clicks, echoed as keypoint regions so they stay on screen."""
    return [
        {
            "id": f"finepose-kp-{name}",
            "from_name": config.keypoints,
            "to_name": config.image,
            "type": "keypointlabels",
            "original_width": width,
            "original_height": height,
            "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [name]},
        }
        for name, (x, y) in clicks_percent.items()
    ]


def rectangle_mask(rectangle: tuple, width: int, height: int) -> np.ndarray:
    """Pixels whose centres lie in the rectangle (percent x, y, width, height)."""
    x, y, w, h = rectangle
    xs = (np.arange(width) + 0.5) / width * 100.0
    ys = (np.arange(height) + 0.5) / height * 100.0
    return ((ys >= y) & (ys <= y + h))[:, None] & ((xs >= x) & (xs <= x + w))[None, :]


def _to_pixels(xy, width: int, height: int) -> np.ndarray:
    return np.array([xy[0] / 100.0 * width - 0.5, xy[1] / 100.0 * height - 0.5])


