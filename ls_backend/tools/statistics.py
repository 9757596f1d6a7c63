"""Statistics the offline tools share: the seeded percentile bootstrap, mean ± sample
standard deviation, paired differences and plain-text tables.

The bootstrap resamples items (images, study tasks) with replacement; intervals are the 2.5th
and 97.5th percentiles of the resampled statistic (95%), NaN draws ignored. Seeds make every
number reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10000


def bootstrap_indices(n: int, resamples: int, seed: int | np.random.Generator) -> np.ndarray:
    """``resamples`` x ``n`` item indices drawn with replacement (one row per resample)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def interval95(draws) -> tuple[np.ndarray, np.ndarray]:
    """The percentile 95% interval (low, high) of bootstrap ``draws`` along their first axis."""
    low, high = np.nanpercentile(np.asarray(draws, dtype=float), [2.5, 97.5], axis=0)
    return low, high


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def paired_difference(a, b, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """``b - a`` item by item: mean, seeded percentile-bootstrap 95% CI of the mean, shares
    b > a, b = a, b < a."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    means = diff[bootstrap_indices(len(diff), resamples, seed)].mean(axis=1)
    low, high = interval95(means)
    return {
        "mean_difference": float(diff.mean()),
        "ci95": [float(low), float(high)],
        "share_b_better": float(np.mean(diff > 0)),
        "share_equal": float(np.mean(diff == 0)),
        "share_b_worse": float(np.mean(diff < 0)),
        "bootstrap": {"resamples": resamples, "seed": seed},
    }


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], label_width: int, width: int) -> str:
    """A plain-text table: the first column left-aligned in ``label_width`` characters, the
    others right-aligned in ``width``."""
    return "\n".join(
        f"{row[0]:<{label_width}}" + "".join(f"{cell:>{width}}" for cell in row[1:]) for row in [header, *rows]
    )
