"""Distances between a predicted and a target population, with the paper's code's conventions.

W1 and W2 are exact optimal-transport costs between the two empirical measures (POT's
``ot.emd2``, uniform weights); W2 is the square root of the cost under squared Euclidean
distance. The MMD uses the RBF kernel exp(-γ‖x - y‖²), averaged over γ in ``GAMMAS``, as the
biased (V-statistic) estimate. Each is computed per population, then averaged over populations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import ot

GAMMAS = (2.0, 1.0, 0.5, 0.1, 0.01, 0.005)
METRICS = ("w1", "w2", "mmd")
NUM_ITER_MAX = 10_000_000  # as the paper's code: avoids "numItermax reached before optimality"


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise ValueError(f"need two non-empty (n, d) point sets of one d, got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("point sets must be finite")
    return x, y


def wasserstein(x: np.ndarray, y: np.ndarray, p: int) -> float:
    """Exact W_p (p = 1 or 2) between the empirical measures of ``x`` and ``y``."""
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    x, y = _check(x, y)
    cost = ot.dist(x, y, metric="sqeuclidean" if p == 2 else "euclidean")
    value = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=NUM_ITER_MAX)
    return float(np.sqrt(max(value, 0.0)) if p == 2 else value)


def mmd_rbf(x: np.ndarray, y: np.ndarray, gammas: Sequence[float] = GAMMAS) -> float:
    """RBF-kernel MMD² (biased estimate) averaged over ``gammas``."""
    x, y = _check(x, y)
    if not len(gammas) or any(g <= 0 for g in gammas):
        raise ValueError(f"gammas must be a non-empty list of positive numbers, got {gammas!r}")
    dxx, dyy, dxy = ot.dist(x, x), ot.dist(y, y), ot.dist(x, y)  # squared Euclidean
    values = [
        np.exp(-g * dxx).mean() + np.exp(-g * dyy).mean() - 2 * np.exp(-g * dxy).mean()
        for g in gammas
    ]
    return float(np.mean(values))


def population_distances(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """W1, W2 and MMD of one predicted population against its target."""
    return {
        "w1": wasserstein(predicted, target, 1),
        "w2": wasserstein(predicted, target, 2),
        "mmd": mmd_rbf(predicted, target),
    }


def average_distances(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """``population_distances`` per (predicted, target) pair, then the mean of each metric."""
    if not len(pairs):
        raise ValueError("need at least one (predicted, target) pair")
    per = [population_distances(p, t) for p, t in pairs]
    return {m: float(np.mean([d[m] for d in per])) for m in METRICS}
