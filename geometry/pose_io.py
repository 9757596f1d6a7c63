"""Pose JSON in any supported convention, named by its ``"convention"`` key.

- ``finepose`` (default when the key is absent): :meth:`geometry.pose.Pose.to_dict`.
- ``pascal3d``: azimuth, elevation, theta, distance, focal, px, py, viewport, plus
  ``image_width``/``image_height``; optional ``mesh_frame`` (name or 3x3 matrix).
- ``seed``: a release record (radians, ``f``, ``u``/``v`` from the centre of the 300-px-wide
  image), plus the *original* ``image_width``/``image_height``.

The JSON that ``finepose init`` and ``finepose refine`` print is a pose too: its best
hypothesis, or its refined pose (:func:`command_pose`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .conventions import pascal3d, seed
from .frames import frame_matrix, pose_in_model_frame
from .jsonio import read_json
from .errors import GeometryError
from .pose import Pose, PoseError

CONVENTIONS = ("finepose", "pascal3d", "seed")


def command_pose(data):
    """The pose inside a finepose command's output (``init``: ``best.pose``; ``refine``:
    ``refined``), or ``data`` itself when it is not such an output."""
    if isinstance(data, dict) and "convention" not in data and "azimuth" not in data:
        if isinstance(data.get("best"), dict) and isinstance(data["best"].get("pose"), dict):
            return data["best"]["pose"]
        if isinstance(data.get("refined"), dict):
            return data["refined"]
    return data


def pose_from_dict(data: dict) -> Pose:
    """A :class:`Pose` from JSON data in any supported convention (or a command's output)."""
    data = command_pose(data)
    if not isinstance(data, dict):
        raise PoseError(f"a pose must be a JSON object, got {type(data).__name__}")
    convention = data.get("convention", "finepose")
    if convention == "finepose":
        if data.get("mesh_frame") is not None:
            data = {**data, "mesh_frame": _mesh_frame(data["mesh_frame"])}
        return Pose.from_dict(data)
    if convention not in CONVENTIONS:
        raise PoseError(f"unknown pose convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    width, height = _image_size(data)
    if convention == "pascal3d":
        frame = data.get("mesh_frame")
        return pascal3d.to_pose(data, width, height, None if frame is None else _mesh_frame(frame))
    if convention == "seed":
        return seed.to_pose(data, width, height)
    raise PoseError(f"unknown pose convention {convention!r}; use one of {', '.join(CONVENTIONS)}")


def read_pose(data: dict, *, model_frame=None) -> Pose:
    """Pose JSON ``data`` (any convention) in the frame of the model it is drawn with.

    ``model_frame``: the model's frame (registry entry, ``--frame``), or None to keep the pose's
    own. The frame rule itself is :func:`geometry.frames.pose_in_model_frame`.
    """
    return pose_in_model_frame(pose_from_dict(data), model_frame, names_frame=names_frame(data))


def names_frame(data) -> bool:
    """Whether pose JSON ``data`` fixes its mesh frame: a ``mesh_frame`` of its own, or the
    release's convention (its formula fixes the frame). Such a pose keeps its frame; any
    other takes the frame of the mesh from where the mesh is described (a registry)."""
    data = command_pose(data)
    return isinstance(data, dict) and (data.get("mesh_frame") is not None or data.get("convention") == "seed")


def pose_to_dict(pose: Pose, convention: str = "finepose", **kwargs) -> dict:
    """``pose`` as JSON data in ``convention`` (seed: ``width``/``height`` of the original image)."""
    if convention == "finepose":
        return pose.to_dict()
    if convention == "pascal3d":
        return pascal3d.from_pose(pose, **kwargs)
    if convention == "seed":
        width = kwargs.pop("width", pose.width)
        height = kwargs.pop("height", pose.height)
        record = seed.from_pose(pose, width, height, **kwargs)
        return {"convention": "seed", **record, "image_width": width, "image_height": height}
    raise PoseError(f"unknown pose convention {convention!r}; use one of {', '.join(CONVENTIONS)}")


def load_pose(path: str | Path, *, model_frame=None) -> Pose:
    """Read a pose JSON file (:func:`read_pose`), with errors naming the file."""
    data = read_json(path, "pose file", PoseError)
    try:
        return read_pose(data, model_frame=model_frame)
    except GeometryError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _mesh_frame(value) -> np.ndarray:
    """A ``mesh_frame`` field: a frame name, ``{"name": ...}``, ``{"matrix": ...}`` or a 3x3 matrix."""
    if isinstance(value, dict):
        value = value["matrix"] if "matrix" in value else value.get("name")
    try:
        return frame_matrix(value)
    except (TypeError, ValueError) as exc:
        raise PoseError(f"mesh_frame: {exc}") from None


def _image_size(data: dict) -> tuple[int, int]:
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except KeyError as exc:
        raise PoseError(f"pose needs the image size it refers to: missing {exc.args[0]}") from None
    except (TypeError, ValueError):
        raise PoseError("pose image_width/image_height must be integers") from None
    if width <= 0 or height <= 0:
        raise PoseError(f"pose image size must be positive, got {width}x{height}")
    return width, height
