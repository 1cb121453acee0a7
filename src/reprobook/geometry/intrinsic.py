"""Dimension of a point cloud, with the estimators Lee et al. use, from the field's libraries.

- **TwoNN** (Facco et al. 2017) through DADApy, as the official pipeline: ``Data(X)``, then
  ``remove_identical_points()`` (TwoNN is undefined when a point's nearest neighbour is at
  distance 0), then ``compute_id_2NN()`` with its defaults; and through scikit-dimension as a
  cross-check. Both are *nonlinear*: they read the ratio of each point's two nearest distances.
- **MLE** (Levina and Bickel) through scikit-dimension with its defaults (20 neighbours).
- **PCA dimension** as the official code computes it, ``sum(cumsum(EVR) < threshold)``: the
  number of principal components needed to explain ``threshold`` of the variance, minus one.
- **Participation ratio** (Σλ)² / Σλ² of the covariance eigenvalues.

The two linear ones see the span of the cloud; the nonlinear ones its local dimension.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import numpy as np

ESTIMATORS = ("twonn", "twonn_skdim", "mle", "pca", "participation_ratio")


def _points(x: np.ndarray, minimum: int = 3) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be a 2-D array [n, features], got shape {x.shape}")
    if len(x) < minimum:
        raise ValueError(f"need at least {minimum} points, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError("points must be finite (no NaN or infinity)")
    return x


def distinct(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` with exact duplicates removed (first occurrence kept, order kept)."""
    x = _points(x, 1)
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def twonn(x: np.ndarray) -> float:
    """TwoNN intrinsic dimension through DADApy, identical points removed first."""
    from dadapy import Data

    x = _points(x)
    with contextlib.redirect_stdout(io.StringIO()):  # DADApy prints what it removed
        data = Data(x, verbose=False)
        data.remove_identical_points()
        if data.N < 3:
            raise ValueError("fewer than 3 distinct points: the dimension is undefined")
        dimension, _, _ = data.compute_id_2NN()
    return float(dimension)


def twonn_skdim(x: np.ndarray) -> float:
    """TwoNN through scikit-dimension (duplicates removed), a cross-check of ``twonn``."""
    import skdim

    return float(skdim.id.TwoNN().fit(distinct(_points(x))).dimension_)


def mle(x: np.ndarray) -> float:
    """Levina-Bickel MLE through scikit-dimension with its defaults (duplicates removed)."""
    import skdim

    x = distinct(_points(x))
    if len(x) <= 20:
        raise ValueError(
            f"the MLE uses 20 neighbours: need more than 20 distinct points, got {len(x)}"
        )
    return float(skdim.id.MLE().fit(x).dimension_)


def _spectrum(x: np.ndarray) -> np.ndarray:
    x = _points(x, 2)
    centred = x - x.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return singular**2 / (len(x) - 1)


def pca_dimension(x: np.ndarray, threshold: float = 0.99) -> int:
    """``sum(cumsum(EVR) < threshold)`` as in the official code: the components needed to
    explain ``threshold`` of the variance, minus one."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    variance = _spectrum(x)
    if variance.sum() <= 0:
        return 0
    ratio = np.cumsum(variance / variance.sum())
    return int(np.sum(ratio < threshold))


def participation_ratio(x: np.ndarray) -> float:
    """(Σλ)² / Σλ² of the covariance eigenvalues: 1 for a line, d for d equal directions."""
    variance = _spectrum(x)
    if variance.sum() <= 0:
        raise ValueError("the points have no variance: the participation ratio is undefined")
    return float(variance.sum() ** 2 / (variance**2).sum())


ESTIMATOR_FUNCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "twonn": twonn,
    "twonn_skdim": twonn_skdim,
    "mle": mle,
    "pca": pca_dimension,
    "participation_ratio": participation_ratio,
}


def estimate(x: np.ndarray, estimators: tuple[str, ...] = ESTIMATORS) -> dict[str, float]:
    """Each named estimator's dimension of ``x``."""
    unknown = [e for e in estimators if e not in ESTIMATOR_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown estimators {unknown}; allowed: {list(ESTIMATOR_FUNCTIONS)}")
    return {e: float(ESTIMATOR_FUNCTIONS[e](x)) for e in estimators}


def _embed(points: np.ndarray, ambient: int, rng: np.random.Generator) -> np.ndarray:
    if ambient < points.shape[1]:
        raise ValueError(f"ambient dimension {ambient} is below the manifold's {points.shape[1]}")
    rotation, _ = np.linalg.qr(rng.normal(size=(ambient, ambient)))
    return points @ rotation[: points.shape[1]]


def sphere(n: int, d: int, ambient: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points on the unit d-sphere (in R^(d+1)), rotated into R^ambient."""
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 points on a d >= 1 sphere, got n={n}, d={d}")
    points = rng.normal(size=(n, d + 1))
    return _embed(points / np.linalg.norm(points, axis=1, keepdims=True), ambient, rng)


def torus(n: int, d: int, ambient: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points on the flat d-torus (a product of d unit circles in R^(2d)),
    rotated into R^ambient."""
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 points on a d >= 1 torus, got n={n}, d={d}")
    angles = rng.uniform(0, 2 * np.pi, size=(n, d))
    points = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    return _embed(points, ambient, rng)
