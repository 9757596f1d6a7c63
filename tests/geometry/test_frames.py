"""One meaning for the seven numbers: a release pose (``shapenet_seed``, which images its
ShapeNetCore mesh mirrored) expressed in the mesh's true frame (``shapenet_core``: y up, front
at +x) draws the same silhouette, and a view of the model's front reads azimuth 0 there."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geometry.conventions import seed
from geometry.frame_detection import frame_from_axes
from geometry.frames import FRAMES, express_in_frame
from geometry.iou import iou
from geometry.mesh import Mesh, load_mesh
from geometry.pose import Pose
from geometry.procedural import car_mesh
from geometry.render import SilhouetteRenderer
from tests.support.data import data_path

SIZE = (600, 400)


def release_records(rng, n: int) -> list[dict]:
    """Release records of views around the model (radians, offsets from the resized image's centre)."""
    return [{"azimuth": rng.uniform(-np.pi, np.pi), "elevation": rng.uniform(-0.1, 0.6), "theta": rng.uniform(-0.2, 0.2),
             "distance": rng.uniform(2.5, 4.0), "f": rng.uniform(300, 800), "u": rng.uniform(-20, 20),
             "v": rng.uniform(-15, 15)} for _ in range(n)]


def test_shapenet_core_is_y_up_front_x_and_proper():
    np.testing.assert_array_equal(FRAMES["shapenet_core"], frame_from_axes("+y", "+x"))
    assert np.linalg.det(FRAMES["shapenet_core"]) == pytest.approx(1.0)
    assert np.linalg.det(FRAMES["shapenet_seed"]) == pytest.approx(-1.0)  # the release images mirrored


def test_a_release_pose_in_the_true_frame_draws_the_same_silhouette_of_a_symmetric_model():
    canonical = car_mesh()  # mirror-symmetric about x = 0
    in_file = Mesh(canonical.vertices @ FRAMES["shapenet_core"], canonical.triangles)  # file = F^T canonical
    renderer = SilhouetteRenderer(in_file)
    for record in release_records(np.random.default_rng(5), 12):
        released = seed.to_pose(record, *SIZE)
        converted = express_in_frame(released, "shapenet_core")
        assert (converted.distance, converted.focal, converted.u, converted.v) == \
            (released.distance, released.focal, released.u, released.v)
        assert iou(renderer.render(converted), renderer.render(released)) > 0.999
        back = express_in_frame(converted, "shapenet_seed")  # export: the release's numbers again
        assert seed.from_pose(back, *SIZE)["azimuth"] == pytest.approx(record["azimuth"], abs=1e-9)


def test_the_release_airplane_keeps_its_silhouette_in_the_true_frame():
    """RenderForCNN's ShapeNetCore airplane, not exactly symmetric: the mirrored release pose
    and its conversion to shapenet_core overlap at IoU >= 0.99 (the minimum is printed)."""
    renderer = SilhouetteRenderer(load_mesh(data_path("meshes", "shapenet_airplane", "model.obj")))
    overlaps = []
    for record in release_records(np.random.default_rng(9), 30):
        released = seed.to_pose(record, *SIZE)
        overlaps.append(iou(renderer.render(express_in_frame(released, "shapenet_core")), renderer.render(released)))
    print(f"\nrelease airplane, seed -> shapenet_core: IoU min {min(overlaps):.4f} median {np.median(overlaps):.4f}")
    assert min(overlaps) >= 0.99


def test_a_view_of_the_front_reads_azimuth_zero_whatever_the_source():
    front = Pose(azimuth=0.0, elevation=10.0, theta=0.0, distance=3.0, focal=500.0, u=300.0, v=200.0, width=600,
                 height=400, mesh_frame=FRAMES["shapenet_core"])
    record = seed.from_pose(express_in_frame(front, "shapenet_seed"), *SIZE)  # as the release would store it
    read = express_in_frame(seed.to_pose(record, *SIZE), "shapenet_core")  # imported
    assert abs((read.azimuth + 180) % 360 - 180) < 1e-6 and read.elevation == pytest.approx(10.0)
    assert abs(np.degrees(record["azimuth"])) > 30  # the release's own number for it is not 0
