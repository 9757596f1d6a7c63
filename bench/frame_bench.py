"""Frame detection (``finepose registry add --frame auto``) over every mesh at hand, each
under the 24 axis-aligned rotations a file may come in.

Prints (asserts nothing), per mesh and in all: how often the up axis, the length axis and the
front were found, and how often the front was declared unsure; with keypoints (Pascal3D+
meshes have them) and from the shape alone. The truth: Pascal3D+ meshes are canonical (z up,
front at -y); the ShapeNet airplane has y up and its front at +x (checked on its
preview: the ``shapenet_core`` frame); the procedural car is canonical.

    python bench/frame_bench.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from geometry.frame_detection import axis_rotations, detect_frame  # noqa: E402
from geometry.frames import FRAMES  # noqa: E402
from geometry.mesh import Mesh, load_mesh  # noqa: E402
from geometry.procedural import car_mesh  # noqa: E402
from tests.support.data import DATA  # noqa: E402


# The RenderForCNN-aligned ShapeNet airplane: y up, front at +x, the ``shapenet_core`` frame (not
# ``shapenet``'s +z), as its preview shows (nose, wings and fin seen from the front, side and top).
SHAPENET_AIRPLANE = FRAMES["shapenet_core"]


def meshes(data: Path):
    """(name, mesh, its true frame, keypoints in mesh coordinates or None, category)."""
    yield "procedural car", car_mesh(), np.eye(3), None, "car"
    for path in sorted((data / "meshes" / "pascal3d_off").glob("*.off")):
        keypoints_file = path.with_name(path.stem + "_keypoints.json")
        keypoints = json.loads(keypoints_file.read_text()) if keypoints_file.is_file() else None
        yield path.stem, load_mesh(path), np.eye(3), keypoints, path.stem.rstrip("0123456789")
    airplane = data / "meshes" / "shapenet_airplane" / "model.obj"
    if airplane.is_file():
        yield "shapenet airplane", load_mesh(airplane), SHAPENET_AIRPLANE, None, "aeroplane"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    rotations = axis_rotations()
    totals = {"shape": np.zeros(5, int), "keypoints": np.zeros(5, int)}
    print(f"{'mesh':<18} {'evidence':<9} {'cases':>5} {'up':>4} {'length':>6} {'front':>5} {'unsure':>6} {'wrong':>5}"
          f"  margin (min over rotations)")
    for name, mesh, truth, keypoints, category in meshes(args.data):
        for evidence in ("shape", "keypoints"):
            if evidence == "keypoints" and keypoints is None:
                continue
            counts, margins = np.zeros(5, int), []
            for r in rotations:
                turned = Mesh(mesh.vertices @ r.T, mesh.triangles, mesh.name)  # file coords v' = R v
                points = {k: (r @ np.asarray(v, float)).tolist() for k, v in (keypoints or {}).items()}
                found = detect_frame(turned, category, points if evidence == "keypoints" else None)
                true = truth @ r.T  # v' -> v -> canonical
                up_ok = np.allclose(found.matrix[2], true[2])
                length_ok = np.allclose(np.abs(found.matrix[1]), np.abs(true[1]))
                front_ok = np.allclose(found.matrix[1], true[1])
                unsure = not found.front_sure
                counts += [1, up_ok, length_ok, front_ok, unsure and not front_ok]
                margins.append(found.front_margin if front_ok else -found.front_margin)
            totals[evidence] += counts
            wrong = counts[0] - counts[3] - counts[4]
            print(f"{name:<18} {evidence:<9} {counts[0]:>5} {counts[1]:>4} {counts[2]:>6} {counts[3]:>5} {counts[4]:>6} "
                  f"{wrong:>5}  {min(margins):+.3f}")
    for evidence, c in totals.items():
        if c[0]:
            print(f"\nall ({evidence}): {c[0]} cases; up right {c[1] / c[0]:.1%}, length right {c[2] / c[0]:.1%}, "
                  f"front right {c[3] / c[0]:.1%}, unsure (and not right) {c[4] / c[0]:.1%}, "
                  f"wrong and sure {(c[0] - c[3] - c[4]) / c[0]:.1%}")


if __name__ == "__main__":
    main()
