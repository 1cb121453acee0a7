"""The accuracy law of MATH²: pair accuracy Y against single-skill accuracy X across solvers,
fitted as Y = X^a (a least-squares line through the origin in log-log), with a bootstrap
interval over solvers and over the questions behind each accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_exponent(x: Sequence[float], y: Sequence[float]) -> float:
    """a minimising sum (log y - a log x)^2: the exponent of Y = X^a through (1, 1)."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(lx) < 1 or len(lx) != len(ly):
        raise ValueError(f"need equal, non-empty x and y, got {len(lx)} and {len(ly)}")
    if not (np.isfinite(lx).all() and np.isfinite(ly).all()) or (lx >= 0).all():
        raise ValueError("accuracies must lie in (0, 1), not all 1")
    return float((lx * ly).sum() / (lx * lx).sum())


def bootstrap_exponent(
    x: Sequence[float],
    y: Sequence[float],
    n_x: int,
    n_y: int,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(a, lower, upper): a from the data; the interval from resampling the solvers and, within
    each, redrawing its accuracies as binomial counts over ``n_x`` and ``n_y`` questions. An
    accuracy of 0 counts as half a question right."""
    if n_boot < 10 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 10 and level in (0, 1), got {n_boot}, {level}")
    floor = 0.5  # an accuracy of 0 counts as half a question right, so that its log exists
    x = np.maximum(np.asarray(x, dtype=float), floor / n_x)
    y = np.maximum(np.asarray(y, dtype=float), floor / n_y)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        rows = rng.integers(len(x), size=len(x))
        bx = np.maximum(rng.binomial(n_x, x[rows]), floor) / n_x
        by = np.maximum(rng.binomial(n_y, y[rows]), floor) / n_y
        if (bx >= 1).all():
            continue
        values.append(fit_exponent(np.minimum(bx, 1 - 0.5 / n_x), by))
    tail = (1 - level) / 2
    lower, upper = np.quantile(values, [tail, 1 - tail])
    return fit_exponent(x, y), float(lower), float(upper)
