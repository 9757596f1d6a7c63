"""Benchmark: the paper's Algorithm 1 vs finepose's fast refiner on realistic cases.

Cases: Pascal3D+ CAD models from ``../shared/data/meshes/pascal3d_off``; true poses drawn from
the release's refined annotations (``*_anno_v2.pkl``); start = true pose minus a real
human-vs-refined difference (v1 - v2 of another random record of the same dataset);
reference = the exact silhouette at the true pose, 300 px wide.

    python bench/refine_bench.py [--cases 20] [--data ../shared/data] [--seed 0]

Methods: ``paper`` (Algorithm 1 with full-frame renders, as a plain implementation),
``paper-win`` (the same with bounding-box renders: the share of the speed-up that rendering
alone gives) and ``fast`` (the outline fit; its renders count every ray-cast silhouette:
bounding-box, band-only, and the full ones of the reported IoUs).
Prints, per method: median seconds per image, renders per image, mean final IoU, share of
cases with azimuth error under 2 degrees; per dataset the mean IoUs; in how many cases
fast ends at least as high as paper; and the speed ratios. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geometry.conventions import seed  # noqa: E402
from geometry.mesh import load_mesh  # noqa: E402
from geometry.pose import wrap_degrees  # noqa: E402
from geometry.refine import refine_fast, refine_paper  # noqa: E402
from geometry.render import SilhouetteRenderer  # noqa: E402

DATASETS = {"StanfordCars": "car", "FGVC_Aircraft": "aeroplane"}
IMAGE_SIZE = (300, 200)  # references at 300 px wide


def load_records(data: Path, dataset: str, name: str) -> dict:
    with open(data / "finegrained_pose" / "Anno3D" / dataset / name, "rb") as f:
        return pickle.load(f, encoding="latin1")


def make_cases(data: Path, count: int, rng: np.random.Generator):
    """Yield (dataset, mesh name, renderer, true pose, start pose, reference mask)."""
    renderers = {}
    for dataset, category in DATASETS.items():
        human = load_records(data, dataset, "test_anno.pkl")
        refined = load_records(data, dataset, "test_anno_v2.pkl")
        keys = sorted(set(human) & set(refined))
        meshes = sorted((data / "meshes" / "pascal3d_off").glob(f"{category}*.off"))
        made = 0
        while made < count:
            true_record = refined[keys[rng.integers(len(keys))]]
            diff_key = keys[rng.integers(len(keys))]
            mesh_path = meshes[rng.integers(len(meshes))]
            if mesh_path not in renderers:
                renderers[mesh_path] = SilhouetteRenderer(load_mesh(mesh_path))
            renderer = renderers[mesh_path]
            true = _canonical(true_record)
            diff = _canonical(human[diff_key]).vector() - _canonical(refined[diff_key]).vector()
            diff[:3] = [wrap_degrees(x) for x in diff[:3]]
            try:
                start = true.with_vector(true.vector() - diff)
            except ValueError:
                continue  # a difference that makes distance or focal non-positive
            mask = renderer.render(true)
            area = mask.mean()
            touches_border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
            if area < 0.03 or touches_border:
                continue  # the record's distance suits its own ShapeNet model, not this one
            made += 1
            yield dataset, mesh_path.name, renderer, true, start, mask


def _canonical(record):
    """A release record as a canonical pose for a Pascal3D+ model (canonical frame)."""
    pose = seed.to_pose(record, *IMAGE_SIZE)
    return replace(pose, mesh_frame=np.eye(3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20, help="cases per dataset")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.data / "finegrained_pose").is_dir():
        sys.exit(f"benchmark data not found under {args.data} (expects finegrained_pose/ and meshes/)")
    rng = np.random.default_rng(args.seed)
    methods = {
        "paper": refine_paper,  # Algorithm 1, full-frame renders
        "paper-win": partial(refine_paper, windowed=True),  # Algorithm 1, bounding-box renders
        "fast": refine_fast,
    }
    rows = {name: [] for name in methods}
    cases = make_cases(args.data, args.cases, rng)
    for dataset, mesh, renderer, true, start, mask in tqdm(cases, total=args.cases * len(DATASETS), desc="cases"):
        for name, method in methods.items():
            result = method(renderer, mask, start)
            az_err = abs(wrap_degrees(result.refined.azimuth - true.azimuth))
            rows[name].append((dataset, result.seconds, result.renders, result.iou_initial, result.iou_refined, az_err))
    print(f"{len(rows['paper'])} cases ({args.cases} per dataset: {', '.join(DATASETS)}), references {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}")
    print(f"{'method':<10}{'median s':>10}{'renders':>10}{'IoU start':>11}{'IoU final':>11}{'az<2deg':>9}")
    medians = {}
    for name, data in rows.items():
        seconds = [r[1] for r in data]
        medians[name] = statistics.median(seconds)
        print(
            f"{name:<10}{medians[name]:>10.3f}{np.mean([r[2] for r in data]):>10.1f}"
            f"{np.mean([r[3] for r in data]):>11.4f}{np.mean([r[4] for r in data]):>11.4f}"
            f"{np.mean([r[5] < 2.0 for r in data]):>9.2f}"
        )
    for dataset in DATASETS:
        paper = np.mean([r[4] for r in rows["paper"] if r[0] == dataset])
        fast = np.mean([r[4] for r in rows["fast"] if r[0] == dataset])
        print(f"  {dataset}: mean final IoU paper {paper:.4f}, fast {fast:.4f}")
    at_least = sum(f[4] >= p[4] - 1e-3 for f, p in zip(rows["fast"], rows["paper"]))
    print(f"fast IoU >= paper IoU - 0.001 in {at_least} of {len(rows['fast'])} cases")
    print(f"speed ratio (paper median / fast median): {medians['paper'] / medians['fast']:.1f}x")
    print(f"speed ratio (paper-win median / fast median): {medians['paper-win'] / medians['fast']:.1f}x")


if __name__ == "__main__":
    main()
