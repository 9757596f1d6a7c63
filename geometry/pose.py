"""The 7-parameter pose of finepose's canonical camera.

Conventions (all of finepose speaks these; other conventions convert at the edges):

- ``azimuth``, ``elevation``, ``theta``: degrees. Semantics are Pascal3D+'s: for a model with
  z up and its front at -y, azimuth 0 looks at the front, and the camera sits at
  ``C = d * (cos e sin a, -cos e cos a, sin e)`` looking at the origin; ``theta`` rotates the
  image about ``(u, v)``.
- ``distance``: model units, ``|C|``.
- ``focal``: pixels.
- ``u``, ``v``: pixels, the image of the model origin; the centre of the top-left pixel is
  ``(0, 0)``, x to the right, y down.
- ``width``, ``height``: the image size (pixels) the pose refers to.
- ``mesh_frame``: a 3x3 matrix taking mesh-file coordinates to the canonical model frame above
  (identity for Pascal3D+ CAD models). It may be improper (det -1) when a convention images the
  model mirrored.
"""

from __future__ import annotations

from .errors import GeometryError

import math
from dataclasses import dataclass, field, replace

import numpy as np

PARAMETER_NAMES = ("azimuth", "elevation", "theta", "distance", "focal", "u", "v")


class PoseError(GeometryError):
    """A pose that cannot be used: NaN or infinite numbers, non-positive distance or focal."""


def _identity() -> np.ndarray:
    return np.eye(3)


@dataclass(frozen=True)
class Pose:
    azimuth: float
    elevation: float
    theta: float
    distance: float
    focal: float
    u: float
    v: float
    width: int
    height: int
    mesh_frame: np.ndarray = field(default_factory=_identity, compare=False)

    def __post_init__(self):
        frame = np.asarray(self.mesh_frame, dtype=float)
        object.__setattr__(self, "mesh_frame", frame)
        validate_pose(self)

    # -- vector view, in the order of PARAMETER_NAMES ---------------------------------------
    def vector(self) -> np.ndarray:
        """The 7 parameters as a float array (degrees, model units, pixels)."""
        return np.array([getattr(self, n) for n in PARAMETER_NAMES], dtype=float)

    def with_vector(self, values) -> "Pose":
        """A copy with the 7 parameters replaced (same image size and mesh frame)."""
        values = [float(x) for x in values]
        return replace(self, **dict(zip(PARAMETER_NAMES, values)))

    def rescaled(self, width: int, height: int) -> "Pose":
        """The same camera for the image resized to ``width`` x ``height`` pixels.

        Pixel coordinates scale about the image's outer corner (continuous coordinate
        ``x + 0.5``); the focal length scales with the width.
        """
        sx = width / self.width
        sy = height / self.height
        return replace(
            self,
            focal=self.focal * sx,
            u=(self.u + 0.5) * sx - 0.5,
            v=(self.v + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )

    def to_dict(self) -> dict:
        """The canonical pose JSON (``convention: finepose``)."""
        out = {"convention": "finepose"}
        out.update({n: float(getattr(self, n)) for n in PARAMETER_NAMES})
        out["image_width"] = int(self.width)
        out["image_height"] = int(self.height)
        if not np.allclose(self.mesh_frame, np.eye(3)):
            out["mesh_frame"] = self.mesh_frame.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Pose":
        """Read canonical pose JSON (see :meth:`to_dict`)."""
        missing = [k for k in PARAMETER_NAMES + ("image_width", "image_height") if k not in data]
        if missing:
            raise PoseError(f"finepose pose is missing {', '.join(missing)}")
        frame = data.get("mesh_frame")
        return cls(
            **{n: _number(data, n) for n in PARAMETER_NAMES},
            width=int(_number(data, "image_width")),
            height=int(_number(data, "image_height")),
            mesh_frame=np.eye(3) if frame is None else _frame_matrix(frame),
        )


def _number(data: dict, key: str) -> float:
    try:
        return float(data[key])
    except (TypeError, ValueError):
        raise PoseError(f"pose field {key!r} is not a number: {data[key]!r}") from None


def _frame_matrix(frame) -> np.ndarray:
    matrix = np.asarray(frame.get("matrix") if isinstance(frame, dict) else frame, dtype=float)
    if matrix.shape != (3, 3):
        raise PoseError(f"mesh_frame must be a 3x3 matrix, got shape {matrix.shape}")
    return matrix


def pose_or_none(template: Pose, x) -> Pose | None:
    """``template`` with the 7 parameters ``x``, or None where ``x`` is no camera: a
    non-finite number, or a distance or focal under 1e-6 (search steps can go there)."""
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)) or x[3] <= 1e-6 or x[4] <= 1e-6:
        return None
    return template.with_vector(x)


def validate_pose(pose: Pose) -> None:
    """Raise :class:`PoseError` naming the first unusable field of ``pose``."""
    for name in PARAMETER_NAMES:
        value = getattr(pose, name)
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise PoseError(f"pose {name} must be a finite number, got {value!r}")
    if pose.distance <= 0:
        raise PoseError(f"pose distance must be > 0, got {pose.distance}")
    if pose.focal <= 0:
        raise PoseError(f"pose focal must be > 0 pixels, got {pose.focal}")
    if int(pose.width) <= 0 or int(pose.height) <= 0:
        raise PoseError(f"pose image size must be positive, got {pose.width}x{pose.height}")
    frame = pose.mesh_frame
    if frame.shape != (3, 3) or not np.all(np.isfinite(frame)) or abs(np.linalg.det(frame)) < 1e-9:
        raise PoseError("pose mesh_frame must be an invertible, finite 3x3 matrix")


def wrap_degrees(angle: float) -> float:
    """``angle`` wrapped to [-180, 180) degrees."""
    return (angle + 180.0) % 360.0 - 180.0


def wrap_signed_degrees(angle):
    """``angle`` (a number or an array) wrapped to (-180, 180] degrees."""
    return -wrap_degrees(-np.asarray(angle, dtype=float))


def display_angles(azimuth, elevation, theta) -> tuple:
    """The angles in the ranges finepose shows and tabulates them: azimuth in [0, 360),
    elevation and theta in (-180, 180] (numbers or arrays, degrees)."""
    return np.asarray(azimuth, dtype=float) % 360.0, wrap_signed_degrees(elevation), wrap_signed_degrees(theta)
