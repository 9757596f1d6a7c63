"""A registry mesh as the editor page draws it: a small binary the browser reads at once.

Layout (little-endian): ``b"FPM1"``, uint32 vertex count, uint32 triangle count, the
vertices as float32 (x, y, z) in mesh-file coordinates (the page applies the pose's mesh
frame, as :mod:`geometry.camera` does), the triangles as uint32 vertex indices. Meshes over
:data:`DISPLAY_MAX_TRIANGLES` are decimated for display (Open3D's quadric decimation); the
editor's exactness test holds the decimated silhouette to IoU >= 0.99 against the full mesh.
While the pose moves the page draws a coarser one, :data:`MOVING_MAX_TRIANGLES` (a software
rasteriser's vertex work is a third of a frame at 30k triangles); the live IoU and every
still frame use the display mesh.
"""

from __future__ import annotations

import struct

import numpy as np

from geometry.mesh import Mesh

MAGIC = b"FPM1"
DISPLAY_MAX_TRIANGLES = 120_000
MOVING_MAX_TRIANGLES = 8_000
#: The meshes the page can ask for (``mesh.bin?level=``): the most triangles of each.
LEVELS = {"display": DISPLAY_MAX_TRIANGLES, "moving": MOVING_MAX_TRIANGLES}


def display_mesh(mesh: Mesh, max_triangles: int = DISPLAY_MAX_TRIANGLES) -> Mesh:
    """``mesh``, or a quadric decimation of it down to ``max_triangles`` triangles."""
    if len(mesh.triangles) <= max_triangles:
        return mesh
    import open3d as o3d

    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.triangles))
    legacy = legacy.simplify_quadric_decimation(target_number_of_triangles=int(max_triangles))
    legacy.remove_unreferenced_vertices()
    return Mesh(np.asarray(legacy.vertices, dtype=np.float64), np.asarray(legacy.triangles, dtype=np.int32), mesh.name)


def encode(mesh: Mesh) -> bytes:
    """The binary payload of ``mesh`` (see the module docstring)."""
    vertices = np.ascontiguousarray(mesh.vertices, dtype="<f4")
    triangles = np.ascontiguousarray(mesh.triangles, dtype="<u4")
    return MAGIC + struct.pack("<II", len(vertices), len(triangles)) + vertices.tobytes() + triangles.tobytes()


def decode(payload: bytes) -> Mesh:
    """Inverse of :func:`encode` (for tests and tools)."""
    if payload[:4] != MAGIC:
        raise ValueError("not a finepose editor mesh payload")
    n_vertices, n_triangles = struct.unpack("<II", payload[4:12])
    vertices = np.frombuffer(payload, "<f4", n_vertices * 3, 12).reshape(-1, 3).astype(np.float64)
    triangles = np.frombuffer(payload, "<u4", n_triangles * 3, 12 + 12 * n_vertices).reshape(-1, 3).astype(np.int32)
    return Mesh(vertices, triangles)
