"""The human satisfaction study (the paper's Table 4): refined vs human pose, rated blind.

``create``: for N sampled images (seeded), render the model's projection at the human and at
the refined pose over the photo (same colour, so nothing tells them apart), put them left and
right in a random, recorded order, and create a Label Studio project
(``templates/satisfaction_study.xml``) asking whether the RIGHT image is Worse / Equal /
Better than the LEFT one, with several raters per task. The order is kept only in the key
file (never in task data, which raters can see).

``report``: pull the annotations through label-studio-sdk, un-blind them (a rating of the
right image becomes a rating of refined vs human: unchanged when refined is on the right,
Worse <-> Better swapped when it is on the left), and give the shares of Worse / Equal /
Better overall and per rater with bootstrap 95% intervals over tasks, Fleiss' kappa for
agreement, a CSV and a bar chart.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geometry.images import read_rgb
from geometry.overlay import save_overlay

from ls_backend.errors import DataError
from ls_backend.templates import SATISFACTION_STUDY, read_template
from ls_backend.datasets.posesets import by_image_key, load_pose_set
from ls_backend.studio.client import project_tasks
from ls_backend.tools.statistics import bootstrap_indices, format_table, interval95

RATINGS = ("Worse", "Equal", "Better")
SWAP = {"Worse": "Better", "Equal": "Equal", "Better": "Worse"}


class StudyError(DataError):
    """A study that cannot be created or reported; the message says why."""


# -- pure parts ------------------------------------------------------------------------------


def unblind(rating: str, refined_side: str) -> str:
    """A rating of the right image vs the left one, as a rating of refined vs human."""
    if rating not in RATINGS:
        raise StudyError(f"unknown rating {rating!r}; expected one of {RATINGS}")
    if refined_side not in ("left", "right"):
        raise StudyError(f"refined side must be 'left' or 'right', got {refined_side!r}")
    return rating if refined_side == "right" else SWAP[rating]


def shares(ratings) -> dict[str, float]:
    """Share of each of :data:`RATINGS` among ``ratings``."""
    ratings = list(ratings)
    if not ratings:
        return {r: float("nan") for r in RATINGS}
    return {r: ratings.count(r) / len(ratings) for r in RATINGS}


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items x categories) table of rating counts, the same number of
    raters per item (>= 2). 1 = full agreement, 0 = chance."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if len(counts) == 0 or raters.min() < 2 or not np.all(raters == raters[0]):
        raise StudyError("Fleiss' kappa needs items rated by the same number (>= 2) of raters")
    n = raters[0]
    p_items = ((counts * (counts - 1)).sum(axis=1)) / (n * (n - 1))
    p_bar = p_items.mean()
    p_cat = counts.sum(axis=0) / counts.sum()
    p_e = (p_cat**2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else 1.0


def bootstrap_shares(per_task: list[list[str]], seed_value: int, rounds: int = 2000) -> dict:
    """95% intervals of the shares, resampling tasks (with all their ratings)."""
    draws = [[shares([r for i in picked for r in per_task[i]])[k] for k in RATINGS]
             for picked in bootstrap_indices(len(per_task), rounds, seed_value)]
    low, high = interval95(draws)
    return {k: [float(lo), float(hi)] for k, lo, hi in zip(RATINGS, low, high)}


# -- create ----------------------------------------------------------------------------------


def create_study(client, human, refined, images: Path, registry, media_root: Path, url_prefix: str,
                 sample: int, raters: int, seed_value: int = 0, title: str = "finepose satisfaction study",
                 key_path: Path | None = None) -> dict:
    """Render the overlays, create the project, import the tasks, write the key file."""
    human_set, refined_set = load_pose_set(human), load_pose_set(refined)
    by_key_h, by_key_r = by_image_key(human_set), by_image_key(refined_set)
    common = sorted(by_key_h.keys() & by_key_r.keys())
    available = [k for k in common if (images / by_key_h[k].image).is_file()]
    if len(available) < sample:
        raise StudyError(f"only {len(available)} images have both poses and a photo in {images}; asked for {sample}")
    rng = np.random.default_rng(seed_value)
    chosen = sorted(available[i] for i in rng.choice(len(available), size=sample, replace=False))
    media_root.mkdir(parents=True, exist_ok=True)
    tasks, key = [], {}
    for index, name in enumerate(tqdm(chosen, desc="study overlays", unit="image")):
        item = f"item-{index:04d}"
        refined_side = "right" if rng.random() < 0.5 else "left"
        photo = read_rgb(images / by_key_h[name].image)
        for side, record in (("A", by_key_h[name]), ("B", by_key_r[name])):  # A human, B refined
            _render_overlay(photo, record, registry, media_root / f"{item}-{side}.png")
        human_url, refined_url = (url_prefix + f"{item}-{s}.png" for s in ("A", "B"))
        left, right = (human_url, refined_url) if refined_side == "right" else (refined_url, human_url)
        tasks.append({"data": {"left": left, "right": right, "item": item}})
        key[item] = {"image": by_key_h[name].image, "refined_side": refined_side}
    project = client.projects.create(title=title, label_config=read_template(SATISFACTION_STUDY), maximum_annotations=raters)
    client.projects.import_tasks(id=project.id, request=tasks)
    key_path = key_path or media_root / "study_key.json"
    key_path.write_text(json.dumps({"project": project.id, "seed": seed_value, "raters": raters, "items": key}, indent=1))
    return {"project": project.id, "tasks": len(tasks), "raters": raters, "key": str(key_path)}


def _render_overlay(rgb: np.ndarray, record, registry, out: Path) -> None:
    height, width = rgb.shape[:2]
    pose = record.pose_in(registry.entry(record.model), width, height)
    mask = registry.renderer(record.model).render(pose)
    save_overlay(out, rgb, {"model": mask})


# -- report ----------------------------------------------------------------------------------


def collect_ratings(client, project_id: int, key: dict) -> list[dict]:
    """One row per annotation: item, rater, raw rating, un-blinded rating of refined vs human."""
    rows = []
    for task in project_tasks(client, project_id):
        item = task["data"].get("item")
        if item not in key["items"]:
            raise StudyError(f"task {task['id']} has item {item!r}, which the key file does not know")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            choices = [r["value"]["choices"][0] for r in annotation.get("result") or [] if r.get("type") == "choices"]
            if not choices:
                continue
            side = key["items"][item]["refined_side"]
            rows.append({"item": item, "task": task["id"], "rater": annotation.get("completed_by"),
                         "rating_right_vs_left": choices[0], "refined_side": side,
                         "refined_vs_human": unblind(choices[0], side)})
    if not rows:
        raise StudyError(f"project {project_id} has no ratings yet")
    return rows


def rating_summary(rows: list[dict], seed_value: int = 0) -> dict:
    """Table 4: shares overall and per rater, bootstrap intervals, Fleiss' kappa."""
    per_task: dict[str, list[str]] = {}
    for row in rows:
        per_task.setdefault(row["item"], []).append(row["refined_vs_human"])
    tasks = list(per_task.values())
    raters = sorted({row["rater"] for row in rows}, key=str)
    counts = np.array([[ratings.count(r) for r in RATINGS] for ratings in tasks])
    most = max(len(t) for t in tasks)
    full = counts[counts.sum(axis=1) == most]
    kappa = fleiss_kappa(full) if most >= 2 and len(full) else None
    kappa_ci = None
    if kappa is not None and len(full) > 1:
        low, high = interval95([fleiss_kappa(full[picked]) for picked in bootstrap_indices(len(full), 1000, seed_value)])
        kappa_ci = [float(low), float(high)]
    return {
        "ratings": len(rows),
        "tasks": len(tasks),
        "overall": shares(row["refined_vs_human"] for row in rows),
        "overall_ci95": bootstrap_shares(tasks, seed_value),
        "per_rater": {str(r): shares(row["refined_vs_human"] for row in rows if row["rater"] == r) for r in raters},
        "fleiss_kappa": kappa,
        "fleiss_kappa_ci95": kappa_ci,
        "kappa_tasks": int(len(full)),
        "raters_per_task": int(most),
    }


def rating_table(summary: dict) -> str:
    """The shares of Worse / Equal / Better (refined vs human), overall and per rater, and kappa."""
    groups = {"all raters": summary["overall"], **{f"rater {k}": v for k, v in summary["per_rater"].items()}}
    rows = [[label, *(f"{100 * row[k]:.1f}%" for k in RATINGS)] for label, row in groups.items()]
    kappa = summary["fleiss_kappa"]
    return "\n".join([
        "Refined vs human pose (the paper's Table 4)",
        format_table(["", *RATINGS], rows, 14, 9),
        f"Fleiss' kappa: {'n/a' if kappa is None else f'{kappa:.3f}'} over {summary['kappa_tasks']} tasks "
        f"with {summary['raters_per_task']} raters",
    ])


def write_report(rows: list[dict], summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ratings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    groups = {"all": summary["overall"], **{f"rater {k}": v for k, v in summary["per_rater"].items()}}
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(groups), 3.5))
    x = np.arange(len(groups))
    for i, (rating, colour) in enumerate(zip(RATINGS, ("#d62728", "#7f7f7f", "#2ca02c"))):
        ax.bar(x + (i - 1) * 0.27, [100 * g[rating] for g in groups.values()], 0.27, label=rating, color=colour)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel("share of ratings (%)")
    ax.set_title("Refined vs human pose")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ratings.png", dpi=120)
    plt.close(fig)


def report_study(client, key_path: Path, out: Path, seed_value: int = 0) -> dict:
    try:
        key = json.loads(Path(key_path).read_text())
    except (OSError, ValueError) as exc:
        raise StudyError(f"study key file unreadable: {key_path} ({exc})") from None
    rows = collect_ratings(client, key["project"], key)
    summary = rating_summary(rows, seed_value)
    write_report(rows, summary, out)
    return summary
