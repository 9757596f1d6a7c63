"""Named mesh frames: 3x3 matrices from mesh-file coordinates to finepose's canonical frame.

The canonical model frame is Pascal3D+'s: z up, front at -y, the model's left-right mirror
plane x = 0, origin at the centre. A model drawn in its right frame shows what the labels say:
azimuth 0 looks at its front, positive elevation from above. One name, one frame:

- ``pascal3d`` (= ``canonical``): Pascal3D+ / ObjectNet3D CAD files;
- ``shapenet_core``: ShapeNetCore v1 files as the fine-grained release and RenderForCNN use
  them: y up, front at +x (measured on the release's car and RenderForCNN's airplane);
- ``shapenet``: y up, front at +z, the frame finepose used to name ShapeNet's; it is kept for
  the registries that name it (it is not ShapeNetCore's);
- ``shapenet_seed``: the release's poses, which image ShapeNetCore files mirrored (see
  :mod:`geometry.conventions.seed`): a frame for reading and writing release records, whose
  numbers do not mean front = azimuth 0. Register release meshes as ``shapenet_core``: release
  poses are converted to it (:func:`express_in_frame`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .camera import angles_from_rotation, rotation
from .conventions.seed import MESH_FRAME as SEED_MESH_FRAME
from .errors import GeometryError
from .pose import Pose


class FrameError(GeometryError):
    """A frame that is unknown, or a pose that cannot be expressed in a model's frame (the
    frames differ by a reflection)."""


FRAMES = {
    # Pascal3D+ / ObjectNet3D CAD models are already canonical.
    "pascal3d": np.eye(3),
    "canonical": np.eye(3),
    # ShapeNetCore v1 files (the release's, RenderForCNN's): y up, front at +x -> z up, front at -y.
    "shapenet_core": np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    # y up, front at +z: finepose's earlier "shapenet", kept for registries that name it.
    "shapenet": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    # The fine-grained release's poses image ShapeNetCore models mirrored (+z taken as the front).
    "shapenet_seed": SEED_MESH_FRAME,
}
#: The canonical frame's left-right mirror (x = 0 is the plane of symmetry of cars and aircraft).
LATERAL_MIRROR = np.diag([-1.0, 1.0, 1.0])
#: The left-right mirror of the release's ShapeNetCore files, in file coordinates (z is their side axis).
RELEASE_FILE_MIRROR = np.diag([1.0, 1.0, -1.0])


def frame_matrix(name_or_matrix) -> np.ndarray:
    """A frame by name (see :data:`FRAMES`) or as a 3x3 matrix."""
    if isinstance(name_or_matrix, str):
        try:
            return FRAMES[name_or_matrix].copy()
        except KeyError:
            raise FrameError(f"unknown mesh frame {name_or_matrix!r}; known: {', '.join(FRAMES)}") from None
    matrix = np.asarray(name_or_matrix, dtype=float)
    if matrix.shape != (3, 3):
        raise FrameError(f"a mesh frame must be a name or a 3x3 matrix, got shape {matrix.shape}")
    return matrix


def frame_name(matrix: np.ndarray) -> str | None:
    """The name of a known frame equal to ``matrix``, or None."""
    for name, known in FRAMES.items():
        if np.allclose(known, matrix):
            return name
    return None


def describe_frame(matrix: np.ndarray) -> str:
    """A frame's name when it is a known one, else its matrix (for messages)."""
    name = frame_name(matrix)
    return repr(name) if name is not None else f"matrix {np.round(matrix, 6).tolist()}"


def express_in_frame(pose: Pose, frame) -> Pose:
    """The same picture of the model with ``mesh_frame = frame``.

    The camera takes mesh points ``X`` to ``R(a, e, theta) F X + t``; in the frame ``G`` the
    rotation becomes ``R F G^-1``: the angles change, distance, focal, u and v do not, and
    every mesh point is imaged at the same pixel. Where ``F G^-1`` is a reflection (the
    release's mirrored ``shapenet_seed`` against a proper frame), the pose images the model
    mirrored. The release's ShapeNetCore files are mirror-symmetric about their z = 0 plane, so
    when the proper frame puts that plane at canonical x = 0 (``shapenet_core``, or what
    ``registry add`` finds for such a file), the rotation ``R F G^-1 M`` (``G`` proper; else
    ``R M F G^-1``; ``M`` = :data:`LATERAL_MIRROR`) draws the same silhouette with the model's
    left and right swapped (exact for an exactly symmetric mesh; on the release's ShapeNet
    airplane IoU >= 0.99, tests/geometry/test_frames.py). Any other reflection (the release
    against ``pascal3d`` or the old ``shapenet``, whose side axis is not the file's z) would
    draw another picture: :class:`FrameError` names both frames, as it does for matrices that
    are not orthonormal.
    """
    target = frame_matrix(frame)
    change = pose.mesh_frame @ np.linalg.inv(target)
    if np.allclose(change, np.eye(3), atol=1e-9):
        return replace(pose, mesh_frame=target)
    if not np.allclose(change @ change.T, np.eye(3), atol=1e-6):
        raise FrameError(
            f"the pose is in mesh frame {describe_frame(pose.mesh_frame)}, the model in "
            f"{describe_frame(target)}: they differ by more than a rotation or a reflection"
        )
    if np.linalg.det(change) < 0:  # mirrored: the symmetric model's mirror image is itself
        proper = target if np.linalg.det(target) > 0 else pose.mesh_frame
        if not np.allclose(LATERAL_MIRROR @ proper, proper @ RELEASE_FILE_MIRROR, atol=1e-9):
            raise FrameError(
                f"the pose is in mesh frame {describe_frame(pose.mesh_frame)}, the model in "
                f"{describe_frame(target)}: they differ by a reflection across another plane than the "
                "model's left-right one, so the pose would show the model mirrored; register the release's "
                "ShapeNetCore meshes as 'shapenet_core' (or with the frame registry add finds)"
            )
        change = change @ LATERAL_MIRROR if np.linalg.det(target) > 0 else LATERAL_MIRROR @ change
    rot = rotation(pose.azimuth, pose.elevation, pose.theta) @ change
    azimuth, elevation, theta = angles_from_rotation(rot)
    return replace(pose, azimuth=azimuth % 360.0, elevation=elevation, theta=theta, mesh_frame=target)


def pose_in_model_frame(pose: Pose, model_frame, *, names_frame: bool) -> Pose:
    """finepose's one frame rule: ``pose`` in the frame of the model it is drawn with.

    ``model_frame``: the model's frame (a registry entry's, or ``--frame`` on the command line;
    a name of :data:`FRAMES` or a 3x3 matrix), or None when nothing names it: the pose then
    keeps its own. ``names_frame``: whether the pose's source fixed its frame (a ``mesh_frame``
    in its JSON, a release record: :func:`geometry.pose_io.names_frame`). A pose that names
    its frame is converted (:func:`express_in_frame`; a release pose into ``shapenet_core``
    through the files' mirror symmetry); any other
    pose's numbers are read in the model's frame. Every entry point that reads a pose (the
    backend, the webhook, interactive calls, evaluate, study, batch, the CLI) goes through here,
    so the 7 numbers of a model mean one thing whatever their source.
    """
    if model_frame is None:
        return pose
    if names_frame:
        return express_in_frame(pose, model_frame)
    return replace(pose, mesh_frame=frame_matrix(model_frame))
