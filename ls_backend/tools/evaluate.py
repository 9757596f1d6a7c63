"""``finepose evaluate``: segmentation IoU of pose sets against ground-truth masks (the
paper's Tables 2 and 3), with paired differences between sets.

For every evaluated image and every named pose set, the set's pose is turned into a
silhouette of its model at the mask's size (:meth:`PoseRecord.pose_for`: release records
take the mask's size as the original image size, canonical poses are rescaled to it) and
compared with the mask by IoU. The evaluated images are those with a mask (or the list
given), and every set must hold each of them; images of a set without a mask are ignored.

- Masks are any mapping ``image key -> (H, W) bool array`` (:func:`geometry.iou`'s inputs);
  :class:`MaskFolder` reads ``<folder>/<image key>.png`` (``geometry.masks.read_mask``),
  :class:`ProjectMasks` a Label Studio project's brush annotations.
- Meshes: the backend's :class:`~ls_backend.registry.Registry`, ``{"<model id>": {"mesh": "<path>", "frame": "<name>"}}``
  (relative paths from the registry's folder; every pose is expressed in the model's ``frame``
  by the one frame rule, :func:`geometry.frames.pose_in_model_frame`, as in the backend), or
  one mesh for every model (``--mesh``, with ``--frame`` its frame). One renderer
  per mesh, cached.
- IoU summaries: mean ± sample standard deviation, in percent in the table.
- Paired differences ``B - A`` (for each pair of sets in the order given): mean with a
  percentile bootstrap 95% CI (seeded; resampling images), and the shares of images where
  B > A, B = A, B < A.

Outputs (:func:`run_evaluation`): ``per_image.csv`` (image, mask size, each set's model and IoU),
``iou_histogram.png``, ``evaluation.json``; the command prints :func:`iou_table` (or the JSON).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geometry.iou import Reference
from geometry.masks import MaskError, read_mask

from ls_backend.datasets.posesets import by_image_key, image_key, load_pose_set
from ls_backend.errors import DataError
from ls_backend.registry import Registry
from ls_backend.tools.statistics import BOOTSTRAP_RESAMPLES, format_table, mean_std, paired_difference

#: Two sizes describe the same image when rescaling one to the other's width moves the height by <= this.
ASPECT_TOLERANCE_PX = 1.0


class MaskFolder(Mapping):
    """Ground-truth masks ``<folder>/<image key>.png`` (searched recursively), read on access."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MaskError(f"mask folder not found: {self.folder}")
        self._paths = {image_key(p.relative_to(self.folder).as_posix()): p for p in sorted(self.folder.rglob("*.png"))}
        if not self._paths:
            raise MaskError(f"{self.folder}: no .png masks found")

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._paths:
            raise MaskError(f"no mask for image {key!r}: {self.folder / (key + '.png')} not found")
        return read_mask(self._paths[key])

    def __iter__(self):
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


class ProjectMasks(dict):
    """Ground-truth masks painted in a Label Studio project (``templates/segmentation_gt.xml``):
    for each task, the union of the brush regions of its newest annotation, keyed by the image
    name (``data.source.key`` when the task was imported by finepose, else the image URL's
    file name)."""

    def __init__(self, client, project_id: int):
        from ls_backend.studio.client import project_tasks
        from ls_backend.studio.tasks import brush_mask, newest_annotation

        super().__init__()
        for task in project_tasks(client, project_id):
            annotation = newest_annotation(task.get("annotations") or [])
            brushes = [r for r in (annotation or {}).get("result") or [] if r.get("type") == "brushlabels"]
            if not brushes:
                continue
            mask = np.logical_or.reduce([brush_mask(r) for r in brushes])
            self[image_key(_image_name(task))] = mask
        if not self:
            raise MaskError(f"Label Studio project {project_id} has no annotated brush masks")


def _image_name(task: dict) -> str:
    data = task.get("data") or {}
    key = (data.get("source") or {}).get("key")
    if key:
        return key
    url = next((v for v in data.values() if isinstance(v, str)), "")
    return Path(url.split("?d=")[-1].split("?")[0]).name


@dataclass
class Evaluation:
    """IoUs of each set (``ious[name][i]`` for ``images[i]``) and the models used."""

    images: list[str]
    sizes: list[tuple[int, int]]
    ious: dict[str, np.ndarray]
    models: dict[str, list[str | None]]


def evaluate(masks: Mapping, sets: dict[str, Mapping], meshes: Registry, images=None) -> Evaluation:
    """IoU of every set's silhouette with every mask (``images``: keys to evaluate, default all masks)."""
    if len(sets) < 2:
        raise DataError(f"evaluate compares two or more pose sets, got {len(sets)}")
    images = [image_key(i) for i in (masks.keys() if images is None else images)]
    if not images:
        raise DataError("no image to evaluate")
    indexed = {name: by_image_key(records) for name, records in sets.items()}
    for name, records in indexed.items():
        missing = [i for i in images if i not in records]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(
                f"pose set {name!r} has no pose for {len(missing)} of {len(images)} evaluated " f"images: {shown}"
            )
    ious = {name: np.empty(len(images)) for name in sets}
    models = {name: [] for name in sets}
    sizes = []
    for i, image in enumerate(tqdm(images, desc="evaluate", unit="image")):
        try:
            reference = Reference(masks[image])  # read once (a MaskFolder decodes on access)
        except KeyError:
            raise MaskError(f"no mask for image {image!r}") from None
        sizes.append((reference.width, reference.height))
        for name, records in indexed.items():
            record = records[image]
            ious[name][i] = _iou(record, reference, meshes, f"set {name!r}, image {image!r}")
            models[name].append(record.model)
    return Evaluation(images, sizes, ious, models)


def _iou(record, reference: Reference, meshes: Registry, where: str) -> float:
    try:
        entry = meshes.entry(record.model)
        renderer = meshes.renderer(record.model)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    if record.pose is not None:
        expected = record.pose.height * reference.width / record.pose.width
        if abs(expected - reference.height) > ASPECT_TOLERANCE_PX:
            raise DataError(
                f"{where}: mask is {reference.width}x{reference.height} but the pose refers to a "
                f"{record.pose.width}x{record.pose.height} image (different aspect ratio)"
            )
    pose = record.pose_in(entry, reference.width, reference.height)
    return reference.iou_window(renderer.render_window(pose))


def iou_summary(evaluation: Evaluation, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Per-set mean/std IoU and paired differences (every pair, later set minus earlier)."""
    names = list(evaluation.ious)
    sets = {}
    for name, values in evaluation.ious.items():
        mean, std = mean_std(values)
        sets[name] = {"mean": mean, "std": std, "min": float(values.min()), "max": float(values.max())}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs.append({"a": a, "b": b, **paired_difference(evaluation.ious[a], evaluation.ious[b], resamples, seed)})
    return {"images": len(evaluation.images), "sets": sets, "pairs": pairs}


def iou_table(summary: dict) -> str:
    """The paper's Table 2/3 layout (mean ± std IoU per set) and the paired differences."""
    names = list(summary["sets"])
    cells = [f"{100 * s['mean']:.1f}% ± {100 * s['std']:.1f}%" for s in summary["sets"].values()]
    width = max(16, *(len(c) + 2 for c in cells), *(len(n) + 2 for n in names))
    lines = [format_table(["Average IoUs", *names], [[f"{summary['images']:>4} images", *cells]], 22, width), ""]
    for p in summary["pairs"]:
        low, high = p["ci95"]
        lines.append(
            f"{p['b']} - {p['a']}: {100 * p['mean_difference']:+.1f} points "
            f"[95% CI {100 * low:+.1f}, {100 * high:+.1f}]; {p['b']} better on "
            f"{100 * p['share_b_better']:.1f}%, equal {100 * p['share_equal']:.1f}%, "
            f"worse {100 * p['share_b_worse']:.1f}% of images"
        )
    return "\n".join(lines)


def write_per_image_csv(path: Path, evaluation: Evaluation) -> None:
    names = list(evaluation.ious)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "mask_width", "mask_height"] + [c for n in names for c in (f"{n}_model", f"{n}_iou")])
        for i, image in enumerate(evaluation.images):
            row = [image, *evaluation.sizes[i]]
            for n in names:
                row += [evaluation.models[n][i], repr(float(evaluation.ious[n][i]))]
            writer.writerow(row)


def plot_iou_histogram(path: Path, evaluation: Evaluation) -> None:
    """Histograms of the IoUs of every set, 0.02 wide bins, overlaid as outlines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(0.0, 1.0, 51)
    for name, values in evaluation.ious.items():
        ax.hist(
            values,
            bins=edges,
            histtype="step",
            linewidth=1.5,
            label="{}: {:.1f}% ± {:.1f}%".format(name, *(100 * x for x in mean_std(values))),
        )
    ax.set_xlabel("IoU of the rendered silhouette with the ground-truth mask")
    ax.set_ylabel("images")
    ax.set_title(f"IoU per pose set ({len(evaluation.images)} images)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run_evaluation(masks: Mapping, sets: dict[str, str | Path], meshes: Registry, out: Path, images=None,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Evaluate the pose sets at ``sets`` (name -> path) against ``masks``; write
    ``per_image.csv``, ``iou_histogram.png`` and ``evaluation.json`` into ``out``; return the
    summary (:func:`iou_summary` plus ``sources`` and ``files``)."""
    if resamples < 1:
        raise DataError(f"--bootstrap (resamples) must be at least 1, got {resamples}")
    evaluation = evaluate(masks, {name: load_pose_set(path) for name, path in sets.items()}, meshes, images)
    summary = iou_summary(evaluation, resamples=resamples, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    write_per_image_csv(out / "per_image.csv", evaluation)
    plot_iou_histogram(out / "iou_histogram.png", evaluation)
    summary["sources"] = {name: str(path) for name, path in sets.items()}
    summary["files"] = [str(out / "per_image.csv"), str(out / "iou_histogram.png"), str(out / "evaluation.json")]
    (out / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
