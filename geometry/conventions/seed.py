"""The fine-grained pose release (StanfordCars3D, CompCars3D, FGVC-Aircraft3D).

A record is ``{model_id, azimuth, elevation, theta (radians), distance, f, u, v}``. The
release's projection, for an image resized to 300 px wide (height ``int(H * 300 / W)``)::

    R = Rz(theta) Rx(e) Ry(a);  P = [[f, 0, u'], [0, f, v'], [0, 0, 1]] [R | -(0, 0, d)]
    u' = u + 150,  v' = v + height / 2

with ``Ry(a) = [[cos a, 0, -sin a], [0, 1, 0], [sin a, 0, cos a]]``. Points in front of this
camera have negative depth, so it images the model point-mirrored; finepose reproduces it
exactly with a proper rotation and the improper mesh frame :data:`MESH_FRAME`, which maps
the release's ShapeNetCore OBJ coordinates (y up; +z, the release's azimuth-0 side, taken
as the front) to the canonical frame (z up, front at -y) with x mirrored. Pixel coordinates
are taken as finepose's (0-based).
"""

from __future__ import annotations

import math

import numpy as np

from ..camera import angles_from_rotation, rot_x, rot_z, rotation
from ..pose import Pose, PoseError

RESIZED_WIDTH = 300
FIELDS = ("azimuth", "elevation", "theta", "distance", "f", "u", "v")

#: ShapeNetCore (release) OBJ coordinates -> canonical model frame, mirrored in x: (x, y, z) -> (-x, -z, y).
MESH_FRAME = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def resized_size(width: int, height: int) -> tuple[int, int]:
    """The image size the release's numbers refer to: 300 px wide, ``int(H * 300 / W)`` high."""
    return RESIZED_WIDTH, int(height * RESIZED_WIDTH / width)


def _ry(a: float) -> np.ndarray:
    """The release's Ry: a rotation about y by -a in the right-handed sense."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def seed_rotation(azimuth: float, elevation: float, theta: float) -> np.ndarray:
    """The release's ``Rz(theta) Rx(e) Ry(a)`` for angles in radians."""
    return rot_z(theta) @ rot_x(elevation) @ _ry(azimuth)


def seed_angles(matrix: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`seed_rotation`: (azimuth, elevation, theta) in radians."""
    row = matrix[2]  # third row of Rx(e) Ry(a) = (cos e sin a, sin e, cos e cos a)
    elevation = math.asin(max(-1.0, min(1.0, row[1])))
    azimuth = math.atan2(row[0], row[2])
    in_plane = matrix @ (rot_x(elevation) @ _ry(azimuth)).T
    return azimuth, elevation, math.atan2(in_plane[1, 0], in_plane[0, 0])


def project(record: dict, points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The release's formula, transcribed: pixels (N, 2) in the 300-px-wide resized image.

    ``width``, ``height``: the original image size.
    """
    _, resized_h = resized_size(width, height)
    rot = seed_rotation(record["azimuth"], record["elevation"], record["theta"])
    k = np.array(
        [[record["f"], 0.0, record["u"] + 150.0], [0.0, record["f"], record["v"] + resized_h / 2.0], [0, 0, 1]]
    )
    proj = k @ np.hstack([rot, -np.array([[0.0], [0.0], [record["distance"]]])])
    x = (proj @ np.hstack([points, np.ones((len(points), 1))]).T).T
    return x[:, :2] / x[:, 2:3]


def to_pose(record: dict, width: int, height: int) -> Pose:
    """A finepose pose (for the 300-px-wide resized image) imaging exactly as :func:`project`.

    ``width``, ``height``: the original image size.
    """
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise PoseError(f"seed record is missing {', '.join(missing)}")
    try:
        values = {k: float(record[k]) for k in FIELDS}
    except (TypeError, ValueError) as exc:
        raise PoseError(f"seed record has a non-numeric field: {exc}") from None
    if not all(math.isfinite(x) for x in values.values()):
        raise PoseError(f"seed record has a non-finite number: {values}")
    resized_w, resized_h = resized_size(width, height)
    # Negating the camera frame keeps every image point: -R_seed = R_canonical @ MESH_FRAME.
    canonical = -seed_rotation(values["azimuth"], values["elevation"], values["theta"]) @ MESH_FRAME.T
    azimuth, elevation, theta = angles_from_rotation(canonical)
    return Pose(
        azimuth=azimuth,
        elevation=elevation,
        theta=theta,
        distance=values["distance"],
        focal=values["f"],
        u=values["u"] + resized_w / 2.0,
        v=values["v"] + resized_h / 2.0,
        width=resized_w,
        height=resized_h,
        mesh_frame=MESH_FRAME,
    )


def from_pose(pose: Pose, width: int, height: int, model_id: str | None = None) -> dict:
    """The release record of ``pose`` for an original image of ``width`` x ``height``."""
    if not np.allclose(pose.mesh_frame, MESH_FRAME):
        raise PoseError("only poses of the release's mesh frame can be written as seed records")
    resized_w, resized_h = resized_size(width, height)
    pose = pose.rescaled(resized_w, resized_h)
    seed_matrix = -rotation(pose.azimuth, pose.elevation, pose.theta) @ MESH_FRAME
    azimuth, elevation, theta = seed_angles(seed_matrix)
    record = {
        "azimuth": azimuth,
        "elevation": elevation,
        "theta": theta,
        "distance": pose.distance,
        "f": pose.focal,
        "u": pose.u - resized_w / 2.0,
        "v": pose.v - resized_h / 2.0,
    }
    if model_id is not None:
        record["model_id"] = model_id
    return record
