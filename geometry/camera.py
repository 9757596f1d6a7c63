"""finepose's canonical camera as OpenCV matrices: ``x ~ K (R X + t)``.

``X`` are canonical model coordinates (z up, front at -y); mesh-file coordinates are first
taken through ``pose.mesh_frame``. The camera frame is OpenCV's: x right, y down, z forward.
"""

from __future__ import annotations

import math

import numpy as np

from .pose import Pose


def rot_x(angle: float) -> np.ndarray:
    """Right-handed rotation about x by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    """Right-handed rotation about z by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Pascal3D+'s camera looks down its -z with y up; OpenCV's looks down +z with y down.
_PASCAL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def rotation(azimuth: float, elevation: float, theta: float) -> np.ndarray:
    """World-to-camera rotation (OpenCV axes) for angles in degrees.

    Pascal3D+'s ``R = Rx(e - 90deg) Rz(-a)``, turned to OpenCV axes, then the in-plane
    rotation: Pascal3D+ rotates the y-up image by ``theta``, which is ``-theta`` in y-down pixels.
    """
    a, e, t = (math.radians(x) for x in (azimuth, elevation, theta))
    return rot_z(-t) @ _PASCAL_TO_OPENCV @ rot_x(e - math.pi / 2) @ rot_z(-a)


def angles_from_rotation(matrix: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation`: (azimuth, elevation, theta) in degrees.

    Exact for any proper rotation away from elevation +-90 degrees.
    """
    matrix = np.asarray(matrix, dtype=float)
    # Direction from the origin to the camera centre: minus the optical axis.
    cx, cy, cz = -matrix[2]
    elevation = math.asin(max(-1.0, min(1.0, cz)))
    azimuth = math.atan2(cx, -cy)
    in_plane = matrix @ rotation(math.degrees(azimuth), math.degrees(elevation), 0.0).T
    theta = math.atan2(in_plane[0, 1], in_plane[0, 0])
    return math.degrees(azimuth), math.degrees(elevation), math.degrees(theta)


def intrinsics(pose: Pose) -> np.ndarray:
    """K = [[f, 0, u], [0, f, v], [0, 0, 1]] in pixels."""
    return np.array([[pose.focal, 0.0, pose.u], [0.0, pose.focal, pose.v], [0.0, 0.0, 1.0]])


def extrinsics(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) taking canonical model points to camera coordinates; t = (0, 0, d)."""
    return rotation(pose.azimuth, pose.elevation, pose.theta), np.array([0.0, 0.0, pose.distance])


def mesh_extrinsics(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(M, t) taking mesh-file points to camera coordinates: ``M = R @ mesh_frame``."""
    rot, t = extrinsics(pose)
    return rot @ pose.mesh_frame, t


def camera_center(pose: Pose) -> np.ndarray:
    """Camera centre in canonical model coordinates."""
    rot, t = extrinsics(pose)
    return -rot.T @ t


def project(pose: Pose, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, 2) of mesh-file points (N, 3)."""
    cam = camera_points(pose, points)
    return project_camera_points(pose, cam)


def camera_points(pose: Pose, points: np.ndarray) -> np.ndarray:
    """Mesh-file points (N, 3) in camera coordinates (N, 3)."""
    mat, t = mesh_extrinsics(pose)
    return np.asarray(points, dtype=float) @ mat.T + t


def project_camera_points(pose: Pose, cam: np.ndarray) -> np.ndarray:
    """Pixel coordinates of camera-frame points (perspective divide, then K)."""
    xy = cam[:, :2] / cam[:, 2:3]
    return xy * pose.focal + np.array([pose.u, pose.v])
