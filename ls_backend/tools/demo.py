"""``finepose demo``: the main job on an embedded default, with no data to fetch.

A procedural car-like mesh, a reference mask rendered at a hidden pose and corrupted like a
CNN segmentation, a start pose perturbed like a rough human annotation; the pose is refined
and an overlay PNG shows reference (red), start (yellow) and refined (green) outlines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geometry.iou import iou
from geometry.masks import realistic_noise, write_mask
from geometry.overlay import save_overlay
from geometry.pose import Pose, wrap_degrees
from geometry.procedural import car_mesh
from geometry.refine import refine
from geometry.render import SilhouetteRenderer

HIDDEN_POSE = Pose(azimuth=35.0, elevation=12.0, theta=3.0, distance=1.7, focal=560.0, u=322.0, v=226.0, width=640, height=427)
#: A rough human start: offsets like the release's human-vs-refined differences.
START_OFFSET = np.array([6.0, -4.0, -3.0, 0.09, 30.0, -9.0, 7.0])
MASK_SIZE = (480, 320)  # the reference is coarser than the photo: the pose is rescaled to it


def run_demo(out_dir: Path, method: str = "fast", seed: int = 7) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    renderer = SilhouetteRenderer(car_mesh())
    hidden = HIDDEN_POSE.rescaled(*MASK_SIZE)
    clean = renderer.render(hidden)
    reference = realistic_noise(clean, rng, amplitude_px=2.0)
    start = HIDDEN_POSE.with_vector(HIDDEN_POSE.vector() + START_OFFSET)
    result = refine(renderer, reference, start, method=method)
    refined_mask = renderer.render(result.refined)
    write_mask(out_dir / "reference.png", reference)
    save_overlay(
        out_dir / "overlay.png",
        None,
        {"reference": reference, "initial": renderer.render(result.initial), "refined": refined_mask},
        size=MASK_SIZE,
    )
    error = result.refined.vector() - hidden.vector()
    return {
        "method": method,
        "mask_size": list(MASK_SIZE),
        "iou_initial": round(result.iou_initial, 4),
        "iou_refined": round(result.iou_refined, 4),
        "iou_refined_vs_clean_truth": round(iou(refined_mask, clean), 4),
        "azimuth_error_deg": round(abs(wrap_degrees(error[0])), 2),
        "elevation_error_deg": round(abs(error[1]), 2),
        "renders": result.renders,
        "seconds": round(result.seconds, 3),
        "hidden": hidden.to_dict(),
        "refined": result.refined.to_dict(),
        "overlay": str(out_dir / "overlay.png"),
        "reference": str(out_dir / "reference.png"),
    }
