"""Smart regions of Label Studio's interactive calls (``context={"result": [...]}``).

- ``keypointlabels`` regions: clicked CAD keypoints, label = keypoint name, ``value.x/.y`` in
  percent of the image. finepose fits the 7 pose numbers to them (4 or more).
  Label Studio sends the region just drawn; the clicks of one task are remembered in
  ``MODEL_DIR/smart-keypoints/<task>.json`` (shared by all worker processes), the newest
  click of a name replacing older ones. A task's clicks are forgotten (and the file removed)
  once no click came for ``max_age_s`` seconds (``FINEPOSE_SMART_MEMORY_S``, 1 h): a later
  session on the task, by anyone, starts afresh.
- ``rectanglelabels`` regions: a box around the object; the automatic initial pose is
  searched inside it.

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

from geometry.keypoints import MIN_POINTS, fit_pose_to_keypoints
from geometry.pose import Pose

from ls_backend.backend.label_config import PoseConfig
from ls_backend.backend.tasks import TaskError


@dataclass
class SmartRegions:
    keypoints: dict = field(default_factory=dict)  # name -> (x%, y%)
    rectangle: tuple | None = None  # (x%, y%, width%, height%)

    @classmethod
    def from_context(cls, context, config: PoseConfig) -> "SmartRegions":
        found = cls()
        if not context:
            return found
        items = context.get("result") if isinstance(context, dict) else None
        if not isinstance(items, list):
            raise TaskError("interactive context must be {'result': [regions]}")
        for item in items:
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, dict):
                raise TaskError(f"interactive region without a value: {item!r}")
            if item.get("type") == "keypointlabels" and item.get("from_name") == config.keypoints:
                for label in value.get("keypointlabels") or []:
                    found.keypoints[label] = (_percent(value, "x"), _percent(value, "y"))
            elif item.get("type") == "rectanglelabels" and item.get("from_name") == config.rectangle:
                found.rectangle = tuple(_percent(value, key) for key in ("x", "y", "width", "height"))
        return found

    def remember(self, folder: Path, task_id, max_age_s: float = 3600.0) -> None:
        """Merge this call's clicks with the task's earlier ones (kept in ``folder``), those
        of every task idle for over ``max_age_s`` seconds forgotten first."""
        if not self.keypoints or task_id is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        forget_idle(folder, max_age_s)
        path = folder / f"{int(task_id)}.json"
        try:
            earlier = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            earlier = {}
        self.keypoints = {**{k: tuple(v) for k, v in earlier.items()}, **self.keypoints}
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as tmp:
            json.dump(self.keypoints, tmp)
        os.replace(tmp.name, path)  # atomic: concurrent workers never see half a file

    @property
    def enough_keypoints(self) -> bool:
        return len(self.keypoints) >= MIN_POINTS


def forget_idle(folder: Path, max_age_s: float) -> None:
    """Remove the remembered clicks of tasks with no click for over ``max_age_s`` seconds."""
    cutoff = time.time() - max_age_s
    for path in folder.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:  # another worker removed it first
            pass


def fit_keypoints(model_points: dict, clicks_percent: dict, width: int, height: int, frame) -> Pose:
    """The pose fitted to clicked keypoints (see :func:`geometry.keypoints.fit_pose_to_keypoints`)."""
    if not model_points:
        raise TaskError("this model has no CAD keypoints (registry 'keypoints' file): smart keypoints unavailable")
    clicks = {name: _to_pixels(xy, width, height) for name, xy in clicks_percent.items()}
    return fit_pose_to_keypoints(model_points, clicks, width, height, mesh_frame=frame).pose


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


def _percent(value: dict, key: str) -> float:
    number = value.get(key)
    if not isinstance(number, (int, float)) or not np.isfinite(number):
        raise TaskError(f"interactive region value.{key} must be a number (percent), got {number!r}")
    return float(number)
