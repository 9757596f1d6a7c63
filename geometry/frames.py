"""Named mesh frames: 3x3 matrices from mesh-file coordinates to finepose's canonical frame.

The canonical model frame is Pascal3D+'s: z up, front at -y, model origin at the centre.
"""

from __future__ import annotations

import numpy as np

from .conventions.seed import MESH_FRAME as SEED_MESH_FRAME

FRAMES = {
    # Pascal3D+ / ObjectNet3D CAD models are already canonical.
    "pascal3d": np.eye(3),
    "canonical": np.eye(3),
    # ShapeNetCore OBJ files: y up, front at +z (the release's azimuth origin) -> z up, front at -y.
    "shapenet": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    # The fine-grained release's poses image ShapeNetCore models mirrored in x.
    "shapenet_seed": SEED_MESH_FRAME,
}


def frame_matrix(name_or_matrix) -> np.ndarray:
    """A frame by name (see :data:`FRAMES`) or as a 3x3 matrix."""
    if isinstance(name_or_matrix, str):
        try:
            return FRAMES[name_or_matrix].copy()
        except KeyError:
            raise ValueError(f"unknown mesh frame {name_or_matrix!r}; known: {', '.join(FRAMES)}") from None
    matrix = np.asarray(name_or_matrix, dtype=float)
    if matrix.shape != (3, 3):
        raise ValueError(f"a mesh frame must be a name or a 3x3 matrix, got shape {matrix.shape}")
    return matrix


def frame_name(matrix: np.ndarray) -> str | None:
    """The name of a known frame equal to ``matrix``, or None."""
    for name, known in FRAMES.items():
        if np.allclose(known, matrix):
            return name
    return None
