"""Pascal3D+ / ObjectNet3D ``viewpoint`` records.

Fields: azimuth, elevation, theta (degrees), distance (model units), focal (in units of the
viewport), px, py (1-based MATLAB pixel coordinates of the model origin), viewport (pixels,
3000 in the released annotations). The focal length in pixels is ``viewport * focal``.
"""

from __future__ import annotations

import math

import numpy as np

from ..pose import Pose, PoseError

DEFAULT_VIEWPORT = 3000.0
FIELDS = ("azimuth", "elevation", "theta", "distance", "focal", "px", "py")


def project_3d(viewpoint: dict, points: np.ndarray) -> np.ndarray:
    """Pascal3D+'s own ``project_3d``, transcribed formula for formula (the reference).

    Returns 1-based pixel coordinates (N, 2).
    """
    a = math.radians(viewpoint["azimuth"])
    e = math.radians(viewpoint["elevation"])
    d = viewpoint["distance"]
    theta = math.radians(viewpoint["theta"])
    viewport = viewpoint.get("viewport", DEFAULT_VIEWPORT)
    focal = viewpoint["focal"]
    centre = d * np.array([math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e)])
    a, e = -a, -(math.pi / 2 - e)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    rot = rx @ rz
    proj = np.diag([viewport * focal, viewport * focal, -1.0]) @ np.hstack(
        [rot, -(rot @ centre)[:, None]]
    )
    x = (proj @ np.hstack([points, np.ones((len(points), 1))]).T).T
    x = x[:, :2] / x[:, 2:3]
    r2d = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    x = (r2d @ x.T).T
    x[:, 1] = -x[:, 1]
    return x + np.array([viewpoint["px"], viewpoint["py"]])


def to_pose(viewpoint: dict, width: int, height: int, mesh_frame=None) -> Pose:
    """A finepose :class:`Pose` imaging points exactly as :func:`project_3d` (0-based pixels)."""
    missing = [k for k in FIELDS if k not in viewpoint]
    if missing:
        raise PoseError(f"pascal3d viewpoint is missing {', '.join(missing)}")
    try:
        values = {k: float(viewpoint[k]) for k in FIELDS}
        viewport = float(viewpoint.get("viewport", DEFAULT_VIEWPORT))
    except (TypeError, ValueError) as exc:
        raise PoseError(f"pascal3d viewpoint has a non-numeric field: {exc}") from None
    return Pose(
        azimuth=values["azimuth"],
        elevation=values["elevation"],
        theta=values["theta"],
        distance=values["distance"],
        focal=viewport * values["focal"],
        u=values["px"] - 1.0,
        v=values["py"] - 1.0,
        width=width,
        height=height,
        mesh_frame=np.eye(3) if mesh_frame is None else mesh_frame,
    )


def from_pose(pose: Pose, viewport: float = DEFAULT_VIEWPORT) -> dict:
    """The Pascal3D+ viewpoint of ``pose`` (inverse of :func:`to_pose`)."""
    return {
        "convention": "pascal3d",
        "azimuth": pose.azimuth,
        "elevation": pose.elevation,
        "theta": pose.theta,
        "distance": pose.distance,
        "focal": pose.focal / viewport,
        "px": pose.u + 1.0,
        "py": pose.v + 1.0,
        "viewport": viewport,
        "image_width": pose.width,
        "image_height": pose.height,
    }
