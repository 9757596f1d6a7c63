"""Frame detection: which mesh axis is up and which way the model faces, under every
axis-aligned rotation a file may come in (the full measurement over all meshes at hand is
bench/frame_bench.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geometry.frame_detection import axis_rotations, detect_frame, frame_axes, frame_from_axes
from geometry.frames import FRAMES, FrameError
from geometry.mesh import Mesh, load_mesh
from tests.support.data import data_path


def test_there_are_24_axis_rotations():
    rotations = axis_rotations()
    assert len(rotations) == 24 and len({r.tobytes() for r in rotations}) == 24


def test_the_procedural_car_is_found_in_every_axis_aligned_orientation(car):
    for r in axis_rotations():  # the file's coordinates: v' = R v, the truth: canonical = R^-1 v'
        found = detect_frame(Mesh(car.vertices @ r.T, car.triangles), "car")
        np.testing.assert_allclose(found.matrix, r.T, atol=1e-12)
        assert found.front_sure and found.front_by == "shape"
    assert detect_frame(car, "car").name in ("pascal3d", "canonical")


def test_a_model_the_same_front_and_back_is_declared_unsure():
    """A box on wheels, the same at both ends: up and length are found, the front is not guessed."""
    body = _box((2.0, 0.9, 0.5), centre=(0, 0, 0.45))
    wheels = [_box((0.3, 1.0, 0.3), centre=(x, 0, 0.15)) for x in (-0.7, 0.7)]
    vertices = np.concatenate([m.vertices for m in (body, *wheels)])
    offsets = np.cumsum([0, len(body.vertices), len(wheels[0].vertices)])
    triangles = np.concatenate([m.triangles + o for m, o in zip((body, *wheels), offsets)])
    found = detect_frame(Mesh(vertices, triangles), "car")
    assert found.up == "+z" and found.front[1] == "x" and not found.front_sure


def _box(size, centre) -> Mesh:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    return Mesh(corners * np.asarray(size) + np.asarray(centre), np.array(faces, np.int32))


def test_axes_overrides_and_their_errors():
    assert frame_axes(FRAMES["pascal3d"]) == ("+z", "-y")
    assert frame_axes(FRAMES["shapenet"]) == ("+y", "+z")
    for up, front in (("+y", "+z"), ("-x", "+y"), ("+z", "-y")):
        matrix = frame_from_axes(up, front)
        assert frame_axes(matrix) == (up, front) and np.isclose(np.linalg.det(matrix), 1.0)
    np.testing.assert_array_equal(frame_from_axes("+y", "+z"), FRAMES["shapenet"])
    for up, front in (("+y", "+y"), ("y", "+x"), ("+w", "+x")):
        with pytest.raises(FrameError):
            frame_from_axes(up, front)


def test_every_shared_mesh_is_found_turned_three_ways():
    """Pascal3D+ meshes (canonical) and the RenderForCNN ShapeNet airplane (y up, front at +x):
    up and length always right; the front right or declared unsure from the shape alone, and
    always right with the Pascal3D+ keypoints."""
    root = data_path("meshes")
    cases = [(p, np.eye(3), p.stem.rstrip("0123456789")) for p in sorted((root / "pascal3d_off").glob("*.off"))]
    cases.append((root / "shapenet_airplane" / "model.obj", FRAMES["shapenet_core"], "aeroplane"))
    turns = [axis_rotations()[k] for k in (0, 7, 18)]
    unsure = 0
    for path, truth, category in cases:
        mesh = load_mesh(path)
        keypoints_file = path.with_name(path.stem + "_keypoints.json")
        keypoints = json.loads(keypoints_file.read_text()) if keypoints_file.is_file() else None
        for r in turns:
            turned = Mesh(mesh.vertices @ r.T, mesh.triangles, path.name)
            true = truth @ r.T
            found = detect_frame(turned, category)
            assert np.allclose(found.matrix[2], true[2]) and np.allclose(abs(found.matrix[1]), abs(true[1])), path.name
            assert np.allclose(found.matrix, true) or not found.front_sure, path.name
            unsure += not found.front_sure
            if keypoints:
                points = {k: r @ np.asarray(v, float) for k, v in keypoints.items()}
                assert np.allclose(detect_frame(turned, category, points).matrix, true), path.name
    assert unsure <= 0.1 * len(cases) * len(turns)


def test_a_thin_antenna_or_stand_does_not_turn_the_car(car):
    """Heights and lengths are read where the surface really ends (0.5th-99.5th percentiles),
    so a thin part sticking out (half the car's height) leaves the frame as it was."""
    low, high = car.vertices.min(axis=0), car.vertices.max(axis=0)
    height = high[2] - low[2]
    for part in (_box((0.01, 0.01, 0.5 * height), (0, 0.3 * low[1], high[2] + 0.25 * height)),  # antenna
                 _box((0.02, 0.02, 0.4 * height), (0, 0, low[2] - 0.2 * height))):  # stand
        mesh = Mesh(np.concatenate([car.vertices, part.vertices]),
                    np.concatenate([car.triangles, part.triangles + len(car.vertices)]))
        found = detect_frame(mesh, "car")
        np.testing.assert_allclose(found.matrix, np.eye(3), atol=1e-12)
        assert found.front_sure
