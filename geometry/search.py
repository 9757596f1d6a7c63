"""The greedy local search of the paper's Algorithm 1, over any objective.

For each parameter i in turn, try ``p_i +- alpha * eps_i`` and keep the best of the three;
when a whole sweep brings no gain, halve ``alpha``; stop once ``alpha <= min_alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: The release's update units eps for (azimuth, elevation, theta, distance, focal, u, v):
#: pi/100 rad (= 1.8 degrees) for the angles, 0.01 model units, 10 px, 1 px, 1 px.
RELEASE_STEPS = np.array([180.0 / 100.0] * 3 + [0.01, 10.0, 1.0, 1.0])
DEFAULT_ALPHA = 1.0
DEFAULT_MIN_ALPHA = 0.125
DEFAULT_MAX_SWEEPS = 400


@dataclass
class SearchResult:
    x: np.ndarray
    value: float
    evaluations: int
    sweeps: int


def greedy_search(
    objective: Callable[[np.ndarray], float],
    x0: Sequence[float],
    steps: Sequence[float] = RELEASE_STEPS,
    alpha: float = DEFAULT_ALPHA,
    min_alpha: float = DEFAULT_MIN_ALPHA,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    value0: float | None = None,
    dims: Sequence[int] | None = None,
) -> SearchResult:
    """Maximise ``objective`` by Algorithm 1 from ``x0``.

    ``dims`` restricts the search to some parameters.
    """
    x = np.array(x0, dtype=float)
    steps = np.asarray(steps, dtype=float)
    dims = range(len(x)) if dims is None else dims
    best = objective(x) if value0 is None else value0
    evaluations = 1 if value0 is None else 0
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        last = best
        for i in dims:
            step = alpha * steps[i]
            plus, minus = x.copy(), x.copy()
            plus[i] += step
            minus[i] -= step
            value_plus, value_minus = objective(plus), objective(minus)
            evaluations += 2
            if max(value_plus, value_minus) <= best:
                continue
            x, best = (plus, value_plus) if value_plus >= value_minus else (minus, value_minus)
        if best <= last:
            alpha /= 2.0
            if alpha <= min_alpha:
                break
    if math.isnan(best):
        raise ValueError("objective returned NaN")
    return SearchResult(x=x, value=best, evaluations=evaluations, sweeps=sweeps)
