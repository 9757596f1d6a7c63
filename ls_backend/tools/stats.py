"""``finepose stats``: the distributions of the 7 pose parameters of a pose set (the paper's
Figure 7) and, with a second set, of the differences between two sets (human vs refined).

Units and conventions of the numbers (a set is described in its own convention):

- release pickles (``seed``): the release's numbers as they are — azimuth, elevation, theta
  converted from radians to degrees; ``distance`` in model units; ``focal`` = the release's
  ``f`` in pixels of the 300-px-wide resized image; ``u``, ``v`` the release's offsets (pixels
  of that image) of the model origin's image from the image centre. The original image size
  is not needed.
- canonical poses (``finepose``): degrees, model units, ``focal`` in pixels of the pose's own
  image, ``u``, ``v`` as offsets from the image centre (``u - width / 2``, ``v - height / 2``).

Azimuth is wrapped to [0, 360), elevation and theta to (-180, 180]; angle differences to
(-180, 180]. Histograms: polar for the angles (azimuth 10° bins, elevation and theta 2°
bins); the other parameters have 50 bins over the 0.5-99.5 percentile range plus an
underflow and an overflow bin (edges -inf / inf in the CSV), so the counts of every
parameter add up to the number of records.

Outputs in the output folder: ``<name>.png`` (the figure), ``<name>_histograms.csv`` (parameter,
bin_left, bin_right, count), ``<name>_summary.json``; with a second set: ``<name>_vs_<other>_diff.png``,
``..._diff.csv`` and ``..._diff.json``. The command prints the summaries as JSON.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from geometry.pose import PARAMETER_NAMES, display_angles, wrap_signed_degrees

from ls_backend.errors import DataError
from ls_backend.datasets.posesets import PoseRecord, PoseSet, by_image_key, load_pose_set

ANGLES = ("azimuth", "elevation", "theta")
ANGLE_BIN_DEG = {"azimuth": 10.0, "elevation": 2.0, "theta": 2.0}
LINEAR_BINS = 50
CORE_PERCENTILES = (0.5, 99.5)
#: Candidate steps of quantised values, largest first (1.8 deg = the release's pi/100 rad).
QUANTA = (10.0, 5.0, 1.8, 1.0, 0.9, 0.5, 0.45, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001)
UNITS = {
    "azimuth": "deg",
    "elevation": "deg",
    "theta": "deg",
    "distance": "model units",
    "focal": "px",
    "u": "px from centre",
    "v": "px from centre",
}


def record_parameters(record: PoseRecord) -> np.ndarray:
    """The 7 numbers of a record in the units above (angles not yet wrapped)."""
    if record.release is not None:
        r = record.release
        return np.array(
            [
                math.degrees(r["azimuth"]),
                math.degrees(r["elevation"]),
                math.degrees(r["theta"]),
                r["distance"],
                r["f"],
                r["u"],
                r["v"],
            ]
        )
    p = record.pose
    return np.array([p.azimuth, p.elevation, p.theta, p.distance, p.focal, p.u - p.width / 2.0, p.v - p.height / 2.0])


def parameter_table(pose_set: dict) -> dict[str, np.ndarray]:
    """``parameter -> values`` over the records (in key order), angles wrapped."""
    values = np.array([record_parameters(r) for r in pose_set.values()]).reshape(-1, len(PARAMETER_NAMES))
    table = dict(zip(PARAMETER_NAMES, values.T))
    table["azimuth"], table["elevation"], table["theta"] = display_angles(
        table["azimuth"], table["elevation"], table["theta"]
    )
    return table


def histogram(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and counts of one parameter (see the module docstring); counts sum to ``len(values)``."""
    if name == "azimuth":
        edges = np.arange(0.0, 360.0 + 1e-9, ANGLE_BIN_DEG[name])
    elif name in ANGLES:
        edges = np.arange(-180.0, 180.0 + 1e-9, ANGLE_BIN_DEG[name])
    else:
        return _histogram_with_overflow(values)
    counts, _ = np.histogram(values, bins=edges)
    return edges, counts


def _histogram_with_overflow(values: np.ndarray, bins: int = LINEAR_BINS) -> tuple[np.ndarray, np.ndarray]:
    """About ``bins`` bins over the core percentile range plus an underflow and an overflow bin.

    Values that are all multiples of a step (the release's u, v in half pixels, refinement
    differences in multiples of its step sizes) get bins of whole steps, centred on multiples,
    so no bin is empty by aliasing.
    """
    lo, hi = np.percentile(values, CORE_PERCENTILES)
    quantum = _quantum(values)
    if quantum is None:
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        core = np.linspace(lo, hi, bins + 1)
    else:
        step = quantum * max(1, math.ceil((hi - lo) / bins / quantum))
        start = (math.floor(lo / quantum + 0.5) - 0.5) * quantum
        core = start + step * np.arange(max(1, math.ceil((hi - start) / step)) + 1)
    edges = np.concatenate([[-np.inf], core, [np.inf]])
    counts = np.array(
        [np.count_nonzero(values < core[0]), *np.histogram(values, bins=core)[0], np.count_nonzero(values > core[-1])]
    )
    return edges, counts


def _quantum(values: np.ndarray) -> float | None:
    """The largest of :data:`QUANTA` that every value is a multiple of, or None."""
    for q in QUANTA:
        ratio = values / q
        if np.all(np.abs(ratio - np.round(ratio)) < 1e-6):
            return q
    return None


def describe(values: np.ndarray, name: str) -> dict:
    """count, mean, std, min, max (plus circular mean/std for angles, degrees)."""
    out = {
        "count": int(len(values)),
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "unit": UNITS[name],
    }
    if name in ANGLES:
        radians = np.radians(values)
        resultant = np.hypot(np.mean(np.cos(radians)), np.mean(np.sin(radians)))
        out["circular_mean"] = float(np.degrees(np.arctan2(np.mean(np.sin(radians)), np.mean(np.cos(radians)))))
        out["circular_std"] = float(np.degrees(math.sqrt(-2.0 * math.log(max(resultant, 1e-300)))))
    return out


def write_histograms_csv(path: Path, histograms: dict) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["parameter", "bin_left", "bin_right", "count"])
        for name, (edges, counts) in histograms.items():
            for left, right, count in zip(edges[:-1], edges[1:], counts):
                writer.writerow([name, repr(float(left)), repr(float(right)), int(count)])


def plot_histograms(path: Path, title: str, histograms: dict, convention: str) -> None:
    """Figure 7's layout: polar histograms of the 3 angles, bar histograms of the other 4."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 8.5))
    FigureCanvasAgg(fig)
    for i, name in enumerate(ANGLES):
        ax = fig.add_subplot(2, 4, i + 1, projection="polar")
        edges, counts = histograms[name]
        ax.bar(
            np.radians(edges[:-1]),
            counts,
            width=np.radians(np.diff(edges)),
            align="edge",
            color="tab:blue",
            edgecolor="none",
        )
        if name == "elevation":
            ax.set_thetamin(-90)
            ax.set_thetamax(90)
        ax.set_title(f"{name} (deg)", pad=14)
        ax.tick_params(labelsize=7)
    for i, name in enumerate(PARAMETER_NAMES[3:]):
        ax = fig.add_subplot(2, 4, 5 + i)
        _plot_linear(ax, *histograms[name])
        label = "f" if (name == "focal" and convention == "seed") else name
        ax.set_xlabel(f"{label} ({UNITS[name]})")
        ax.set_ylabel("images")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_linear(ax, edges: np.ndarray, counts: np.ndarray) -> None:
    core, inner = edges[1:-1], counts[1:-1]
    ax.bar(core[:-1], inner, width=np.diff(core), align="edge", color="tab:blue", edgecolor="none")
    notes = [f"{label}: {n}" for label, n in (("< range", counts[0]), ("> range", counts[-1])) if n]
    if notes:
        ax.text(0.98, 0.95, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=8)


def distribution(pose_set: PoseSet, name: str, out: Path) -> dict:
    """Write the figure, CSV and summary of one set; return the summary."""
    table = parameter_table(pose_set)
    histograms = {p: histogram(p, table[p]) for p in PARAMETER_NAMES}
    png, csv_path = out / f"{name}.png", out / f"{name}_histograms.csv"
    plot_histograms(
        png,
        f"{name}: pose parameters ({len(pose_set)} images, " f"{pose_set.convention} convention)",
        histograms,
        pose_set.convention,
    )
    write_histograms_csv(csv_path, histograms)
    summary = {
        "name": name,
        "source": pose_set.source,
        "convention": pose_set.convention,
        "count": len(pose_set),
        "parameters": {p: describe(table[p], p) for p in PARAMETER_NAMES},
        "files": [str(png), str(csv_path)],
    }
    (out / f"{name}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def paired_differences(base: PoseSet, other: PoseSet) -> tuple[list[str], dict[str, np.ndarray], int]:
    """``other - base`` per parameter over the images in both sets (angles wrapped to
    (-180, 180]); returns the matched image keys, the differences and how many images
    changed model."""
    if base.convention != other.convention:
        raise DataError(
            f"cannot compare a {base.convention} set ({base.source}) with a "
            f"{other.convention} set ({other.source}): their numbers are in different conventions"
        )
    base_by_key, other_by_key = by_image_key(base), by_image_key(other)
    keys = [k for k in base_by_key if k in other_by_key]
    if not keys:
        raise DataError(f"{base.source} and {other.source} have no image in common")
    a = np.array([record_parameters(base_by_key[k]) for k in keys])
    b = np.array([record_parameters(other_by_key[k]) for k in keys])
    diffs = dict(zip(PARAMETER_NAMES, (b - a).T))
    for name in ANGLES:
        diffs[name] = wrap_signed_degrees(diffs[name])
    changed = sum(base_by_key[k].model != other_by_key[k].model for k in keys)
    return keys, diffs, changed


def comparison(base: PoseSet, other: PoseSet, name: str, other_name: str, out: Path) -> dict:
    """Write the difference figure, CSV and summary; return the summary."""
    keys, diffs, changed = paired_differences(base, other)
    histograms = {p: _histogram_with_overflow(diffs[p]) for p in PARAMETER_NAMES}
    stem = f"{name}_vs_{other_name}_diff"
    _plot_differences(
        out / f"{stem}.png",
        f"{other_name} - {name}: pose differences ({len(keys)} images)",
        histograms,
        base.convention,
    )
    write_histograms_csv(out / f"{stem}.csv", histograms)
    summary = {
        "base": base.source,
        "other": other.source,
        "images": len(keys),
        "only_in_base": len(base) - len(keys),
        "only_in_other": len(other) - len(keys),
        "model_changed": int(changed),
        "parameters": {p: _describe_difference(diffs[p], p) for p in PARAMETER_NAMES},
        "files": [str(out / f"{stem}.png"), str(out / f"{stem}.csv")],
    }
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _describe_difference(values: np.ndarray, name: str) -> dict:
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {
        "count": int(len(values)),
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "median": float(median),
        "mean_abs": float(np.mean(np.abs(values))),
        "p5": float(p5),
        "p95": float(p95),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "share_unchanged": float(np.mean(np.abs(values) < 1e-6)),
        "unit": UNITS[name].replace(" from centre", ""),
    }


def _plot_differences(path: Path, title: str, histograms: dict, convention: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 8.5))
    FigureCanvasAgg(fig)
    for i, name in enumerate(PARAMETER_NAMES):
        ax = fig.add_subplot(2, 4, i + 1)
        _plot_linear(ax, *histograms[name])
        label = "f" if (name == "focal" and convention == "seed") else name
        ax.set_xlabel(f"difference in {label} ({UNITS[name].replace(' from centre', '')})")
        ax.set_ylabel("images")
        ax.axvline(0.0, color="k", lw=0.6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def set_name(path: str) -> str:
    """A file-name-safe name for a pose set: ``.../StanfordCars/test_anno.pkl`` -> ``StanfordCars_test_anno``."""
    p = Path(path)
    parts = [p.parent.name, p.stem] if p.suffix else [p.name]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(x for x in parts if x)) or "poses"


def describe_sets(poses: str | Path, out: Path, name: str | None = None, compare: str | Path | None = None,
                  compare_name: str | None = None) -> dict:
    """Write the figures, CSVs and summaries of the set ``poses`` (and of ``compare`` and the
    differences ``compare - poses``) into ``out``; return the summaries
    (``distribution``, and with ``compare`` ``other_distribution`` and ``comparison``)."""
    out.mkdir(parents=True, exist_ok=True)
    base = load_pose_set(poses)
    name = name or set_name(str(poses))
    result = {"distribution": distribution(base, name, out)}
    if compare:
        other = load_pose_set(compare)
        other_name = compare_name or set_name(str(compare))
        if other_name == name:
            other_name += "_other"
        result["other_distribution"] = distribution(other, other_name, out)
        result["comparison"] = comparison(base, other, name, other_name, out)
    return result
