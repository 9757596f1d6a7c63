"""The study's arithmetic (the paper's Table 4): un-blinding, shares with intervals, Fleiss'
kappa, the printed table and the bar chart. Pure functions over rating rows.

A rating row is a dict with at least ``item`` (the study item), ``rater`` (who rated) and
``verdict``: the rating of the *candidate* pose against the *baseline* pose (the paper: refined
vs human), one of :data:`RATINGS`. Intervals are seeded percentile-bootstrap 95% intervals
over items (an item keeps all its ratings), :mod:`ls_backend.tools.statistics`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ls_backend.errors import DataError
from ls_backend.tools.statistics import bootstrap_indices, format_table, interval95

RATINGS = ("Worse", "Equal", "Better")
SWAP = {"Worse": "Better", "Equal": "Equal", "Better": "Worse"}
SIDES = ("left", "right")
BOOTSTRAP_ROUNDS = 2000


class StudyError(DataError):
    """A study that cannot be created or reported; the message says why."""


def unblind(rating: str, candidate_side: str) -> str:
    """A rating of the right image against the left one, as a rating of the candidate against
    the baseline: unchanged when the candidate is on the right, Worse <-> Better when on the
    left (its own inverse: what a rater clicks for a wanted verdict)."""
    if rating not in RATINGS:
        raise StudyError(f"unknown rating {rating!r}; expected one of {RATINGS}")
    if candidate_side not in SIDES:
        raise StudyError(f"the candidate's side must be 'left' or 'right', got {candidate_side!r}")
    return rating if candidate_side == "right" else SWAP[rating]


def shares(ratings) -> dict[str, float]:
    """Share of each of :data:`RATINGS` among ``ratings`` (NaN for none)."""
    ratings = list(ratings)
    if not ratings:
        return {r: float("nan") for r in RATINGS}
    return {r: ratings.count(r) / len(ratings) for r in RATINGS}


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items x categories) table of rating counts, the same number of
    raters per item (>= 2). 1 = full agreement, 0 = chance; NaN when every rating falls in
    one category (chance agreement is then 1 and kappa 0/0)."""
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    if len(counts) == 0 or raters.min() < 2 or not np.all(raters == raters[0]):
        raise StudyError("Fleiss' kappa needs items rated by the same number (>= 2) of raters")
    n = raters[0]
    p_items = ((counts * (counts - 1)).sum(axis=1)) / (n * (n - 1))
    p_bar = p_items.mean()
    p_cat = counts.sum(axis=0) / counts.sum()
    p_e = (p_cat**2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def bootstrap_shares(per_item: list[list[str]], seed_value: int, rounds: int = BOOTSTRAP_ROUNDS) -> dict:
    """95% intervals of the shares, resampling items (with all their ratings)."""
    if not per_item:
        return {k: [float("nan"), float("nan")] for k in RATINGS}
    draws = [[shares([r for i in picked for r in per_item[i]])[k] for k in RATINGS]
             for picked in bootstrap_indices(len(per_item), rounds, seed_value)]
    low, high = interval95(draws)
    return {k: [float(lo), float(hi)] for k, lo, hi in zip(RATINGS, low, high)}


def rating_summary(rows: list[dict], seed_value: int = 0) -> dict:
    """Table 4: shares overall and per rater, each with its interval, and Fleiss' kappa (over
    the items rated by the most raters) with its interval."""
    if not rows:
        raise StudyError("no ratings to summarise")
    per_item: dict[str, list[str]] = {}
    for row in rows:
        per_item.setdefault(row["item"], []).append(row["verdict"])
    items = list(per_item.values())
    raters = sorted({str(row["rater"]) for row in rows})
    counts = np.array([[ratings.count(r) for r in RATINGS] for ratings in items])
    most = max(len(ratings) for ratings in items)
    full = counts[counts.sum(axis=1) == most]
    kappa = fleiss_kappa(full) if most >= 2 and len(full) else float("nan")
    kappa_ci = None
    if not np.isnan(kappa) and len(full) > 1:
        draws = [fleiss_kappa(full[picked]) for picked in bootstrap_indices(len(full), BOOTSTRAP_ROUNDS, seed_value)]
        low, high = interval95(draws)  # resamples where kappa is undefined (one category) are left out
        kappa_ci = [float(low), float(high)]
    per_rater = {}
    for rater in raters:
        mine = [row for row in rows if str(row["rater"]) == rater]
        by_item: dict[str, list[str]] = {}
        for row in mine:
            by_item.setdefault(row["item"], []).append(row["verdict"])
        per_rater[rater] = {"shares": shares(row["verdict"] for row in mine), "ratings": len(mine),
                            "ci95": bootstrap_shares(list(by_item.values()), seed_value)}
    return {
        "ratings": len(rows),
        "items": len(items),
        "overall": shares(row["verdict"] for row in rows),
        "overall_ci95": bootstrap_shares(items, seed_value),
        "per_rater": per_rater,
        "fleiss_kappa": None if np.isnan(kappa) else kappa,  # None: fewer than 2 raters, or all in one category
        "fleiss_kappa_ci95": kappa_ci,
        "kappa_items": int(len(full)),
        "raters_per_item": int(most),
        "bootstrap": {"rounds": BOOTSTRAP_ROUNDS, "seed": seed_value},
    }


def _groups(summary: dict) -> dict:
    """Row label -> (shares, intervals): all raters, then each rater."""
    return {"all raters": (summary["overall"], summary["overall_ci95"]),
            **{f"rater {k}": (v["shares"], v["ci95"]) for k, v in summary["per_rater"].items()}}


def _cell(share: float, interval) -> str:
    if np.isnan(share):
        return "n/a"
    return f"{100 * share:.1f}% [{100 * interval[0]:.0f}-{100 * interval[1]:.0f}]"


def rating_table(summary: dict, candidate: str = "refined", baseline: str = "human") -> str:
    """The shares of Worse / Equal / Better (``candidate`` vs ``baseline``), overall and per
    rater, each with its 95% interval, and kappa with its interval."""
    groups = _groups(summary)
    rows = [[label, *(_cell(values[k], ci[k]) for k in RATINGS)] for label, (values, ci) in groups.items()]
    kappa, ci = summary["fleiss_kappa"], summary["fleiss_kappa_ci95"]
    kappa_text = "n/a" if kappa is None else f"{kappa:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    return "\n".join([
        f"{candidate} vs {baseline} pose (the paper's Table 4); [95% interval, %]",
        format_table(["", *RATINGS], rows, max(14, max(len(label) for label in groups) + 2), 20),
        f"Fleiss' kappa: {kappa_text} over {summary['kappa_items']} items with {summary['raters_per_item']} raters",
    ])


def write_report(rows: list[dict], summary: dict, out: Path, candidate: str = "refined",
                 baseline: str = "human") -> None:
    """``ratings.csv`` (one row per rating), ``summary.json`` and ``ratings.png`` (the shares
    as bars with their 95% intervals as error bars) in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ratings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    groups = _groups(summary)
    fig, ax = plt.subplots(figsize=(1.5 + 1.4 * len(groups), 3.8))
    x = np.arange(len(groups))
    for i, (rating, colour) in enumerate(zip(RATINGS, ("#d62728", "#7f7f7f", "#2ca02c"))):
        heights = np.array([100 * values[rating] for values, _ in groups.values()])
        low = np.array([100 * ci[rating][0] for _, ci in groups.values()])
        high = np.array([100 * ci[rating][1] for _, ci in groups.values()])
        ax.bar(x + (i - 1) * 0.27, heights, 0.27, label=rating, color=colour,
               yerr=[np.clip(heights - low, 0, None), np.clip(high - heights, 0, None)], capsize=3)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel("share of ratings (%), 95% interval")
    ax.set_title(f"{candidate} vs {baseline} pose")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ratings.png", dpi=120)
    plt.close(fig)
