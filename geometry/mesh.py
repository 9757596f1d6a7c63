"""Triangle meshes read through Open3D, with errors that name what is wrong.

Mesh coordinates stay as in the file; ``frames`` maps them to finepose's canonical frame.
"""

from __future__ import annotations

from .errors import GeometryError

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class MeshError(GeometryError):
    """A mesh file that is missing, unreadable, empty or too large."""


@dataclass(frozen=True)
class Mesh:
    """Vertices (N, 3) float64 in file units and triangles (M, 3) int32."""

    vertices: np.ndarray
    triangles: np.ndarray
    name: str = "mesh"

    def __post_init__(self):
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or len(self.vertices) == 0:
            raise MeshError(f"{self.name}: mesh has no vertices")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or len(self.triangles) == 0:
            raise MeshError(f"{self.name}: mesh has no triangles")
        if not np.all(np.isfinite(self.vertices)):
            raise MeshError(f"{self.name}: mesh has non-finite vertex coordinates")
        if self.triangles.min() < 0 or self.triangles.max() >= len(self.vertices):
            raise MeshError(f"{self.name}: triangle indices out of range")
        corners = self.vertices[self.triangles]
        area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
        extent = float(np.ptp(self.vertices, axis=0).max())
        if not extent > 0 or not area > 1e-9 * extent**2:
            raise MeshError(f"{self.name}: mesh is degenerate (its triangles enclose no area): no silhouette to fit")

    @property
    def radius(self) -> float:
        """Largest distance of a vertex from the origin (model units)."""
        return float(np.linalg.norm(self.vertices, axis=1).max())


def load_mesh(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> Mesh:
    """Read an OBJ, OFF, PLY, STL or GLB/glTF file with Open3D."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"mesh file not found: {path}")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r} (use {', '.join(SUPPORTED_SUFFIXES)})")
    size = path.stat().st_size
    if size > max_bytes:
        raise MeshError(f"{path}: mesh file is {size} bytes, over the limit of {max_bytes}")
    if size == 0:
        raise MeshError(f"{path}: mesh file is empty")
    with _quiet_open3d(o3d):
        legacy = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False, print_progress=False)
    vertices = np.asarray(legacy.vertices, dtype=np.float64)
    triangles = np.asarray(legacy.triangles, dtype=np.int32)
    if len(vertices) == 0 or len(triangles) == 0:
        raise MeshError(f"{path}: could not read any triangles (unreadable or empty {path.suffix} file)")
    return Mesh(vertices=vertices, triangles=triangles, name=path.name)


class _quiet_open3d:
    """Silence Open3D's console warnings while reading (we raise clear errors instead)."""

    def __init__(self, o3d):
        self.o3d = o3d

    def __enter__(self):
        self.o3d.utility.set_verbosity_level(self.o3d.utility.VerbosityLevel.Error)

    def __exit__(self, *exc):
        self.o3d.utility.set_verbosity_level(self.o3d.utility.VerbosityLevel.Warning)


def save_mesh(path: str | os.PathLike, mesh: Mesh) -> Path:
    """Write ``mesh`` in the format its suffix names (OBJ, OFF, PLY, STL, GLB) with Open3D."""
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r} (use {', '.join(SUPPORTED_SUFFIXES)})")
    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.triangles))
    with _quiet_open3d(o3d):
        written = o3d.io.write_triangle_mesh(str(path), legacy)
    if not written:
        raise MeshError(f"{path}: Open3D could not write the mesh")
    return path
