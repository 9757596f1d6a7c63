"""What the front/back check (geometry.ambiguity.far_apart_rival) costs on top of a refinement,
and what it finds, on Pascal3D+ meshes (../shared/data) at the backend's 300 px working width.

Prints (asserts nothing) per mesh and view: the refinement's seconds and IoU from a start 4
degrees and 5 % off, then the check's seconds and its rival (azimuth, IoU) or none. The
reference is the mesh's own silhouette at the view, so a rival is a true look-alike.

    python bench/front_back_bench.py [--meshes car01 car04 aeroplane01]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from geometry.ambiguity import far_apart_rival
from geometry.masks import resize_mask
from geometry.mesh import load_mesh
from geometry.pose import Pose
from geometry.refine import refine
from geometry.render import SilhouetteRenderer

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes" / "pascal3d_off"
VIEWS = ((0, 10), (35, 12), (90, 5), (160, 15))  # azimuth, elevation (degrees)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", nargs="+", default=["car01", "car04", "aeroplane01"])
    args = parser.parse_args()
    if not ROOT.is_dir():
        raise SystemExit(f"{ROOT} is missing: this benchmark reads the Pascal3D+ meshes of ../shared/data")
    for name in args.meshes:
        renderer = SilhouetteRenderer(load_mesh(ROOT / f"{name}.off"))
        for azimuth, elevation in VIEWS:
            pose = Pose(azimuth=azimuth, elevation=elevation, theta=0, distance=5.0 * renderer.mesh.radius,
                        focal=693, u=300, v=200, width=600, height=400)
            mask = resize_mask(renderer.render(pose), 300, 200)
            start = replace(pose, azimuth=azimuth + 4, distance=pose.distance * 1.05).rescaled(300, 200)
            t0 = time.perf_counter()
            result = refine(renderer, mask, start)
            t1 = time.perf_counter()
            rival = far_apart_rival(renderer, mask, result.refined, result.iou_refined)
            t2 = time.perf_counter()
            found = "none" if rival is None else f"rival azimuth {rival.pose.azimuth % 360:.1f}, IoU {rival.iou:.3f}"
            print(f"{name:12s} azimuth {azimuth:3d} elevation {elevation:2d}: refine {t1 - t0:.2f} s, "
                  f"IoU {result.iou_refined:.3f}; check {t2 - t1:.2f} s -> {found}")


if __name__ == "__main__":
    main()
