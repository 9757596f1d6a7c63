"""Meshes made in code, in the canonical frame (z up, front at -y, model units ~ metres/4).

Used by the demo and the tests, so a fresh clone needs no data.
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh


def _merge(parts) -> Mesh:
    vertices, triangles, offset = [], [], 0
    for part in parts:
        v = np.asarray(part.vertices)
        vertices.append(v)
        triangles.append(np.asarray(part.triangles) + offset)
        offset += len(v)
    return np.vstack(vertices), np.vstack(triangles).astype(np.int32)


def _box(o3d, size, centre):
    box = o3d.geometry.TriangleMesh.create_box(*size)
    box.translate(np.asarray(centre) - np.asarray(size) / 2.0)
    return box


def car_mesh() -> Mesh:
    """A car-like mesh: body, a cabin set towards the back, a sloped hood and four wheels.

    Length 1.0 along y (front at -y), width 0.42, height 0.32; front and back differ, so
    azimuth is observable up to the left/right symmetry.
    """
    import open3d as o3d

    parts = [
        _box(o3d, (0.42, 1.0, 0.14), (0.0, 0.0, -0.02)),  # body
        _box(o3d, (0.38, 0.46, 0.12), (0.0, 0.08, 0.11)),  # cabin, set back
        _box(o3d, (0.40, 0.18, 0.05), (0.0, 0.35, 0.07)),  # trunk lid, raised
    ]
    windscreen = o3d.geometry.TriangleMesh.create_box(0.38, 0.16, 0.12)
    windscreen.translate((-0.19, -0.08, 0.0))
    windscreen.rotate(_rot_x(-0.75), center=(0.0, 0.0, 0.0))
    windscreen.translate((0.0, -0.17, 0.05))
    parts.append(windscreen)
    for x in (-0.2, 0.2):
        for y in (-0.32, 0.3):
            wheel = o3d.geometry.TriangleMesh.create_cylinder(radius=0.085, height=0.07, resolution=24)
            wheel.rotate(_rot_y(np.pi / 2), center=(0.0, 0.0, 0.0))
            wheel.translate((x, y, -0.09))
            parts.append(wheel)
    vertices, triangles = _merge(parts)
    return Mesh(vertices=vertices, triangles=triangles, name="procedural-car")


def sphere_mesh(radius: float = 0.5, resolution: int = 120) -> Mesh:
    """A finely tessellated sphere centred at the origin."""
    import open3d as o3d

    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=resolution)
    return Mesh(
        vertices=np.asarray(sphere.vertices, dtype=float),
        triangles=np.asarray(sphere.triangles, dtype=np.int32),
        name="procedural-sphere",
    )


def _rot_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=float)


def _rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=float)
