"""The perturbation benchmarks' metrics: L2 on the most expressed genes, Pearson-Δ, and how well a
model's departure from additivity flags genetic interactions (ROC-AUC)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def top_genes(control: np.ndarray, k: int = 1000) -> np.ndarray:
    """Indices of the ``k`` genes with the highest control expression (all genes when fewer)."""
    return np.argsort(-control, kind="stable")[: min(k, len(control))]


def scored_genes(
    perturbations: list[tuple[int, ...]], genes: np.ndarray, n_genes: int
) -> np.ndarray:
    """(P, G) mask of the genes each perturbation is scored on: ``genes`` without the ones it
    activates itself (their change is the perturbation, trivially predicted)."""
    mask = np.zeros((len(perturbations), n_genes), dtype=bool)
    mask[:, genes] = True
    for i, p in enumerate(perturbations):
        mask[i, list(p)] = False
    return mask


def l2_error(predicted: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per perturbation, the Euclidean distance between predicted and true profiles on the genes
    of its row of ``mask``."""
    return np.sqrt((((predicted - truth) ** 2) * mask).sum(axis=1))


def pearson_delta(
    predicted: np.ndarray, truth: np.ndarray, control: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Per perturbation, the Pearson correlation of ŷ - control with y - control over the genes
    of its row of ``mask`` (0 where the prediction does not vary, e.g. "no change")."""
    p, t = predicted - control, truth - control
    n = mask.sum(axis=1, keepdims=True)
    p = np.where(mask, p - (p * mask).sum(axis=1, keepdims=True) / n, 0.0)
    t = np.where(mask, t - (t * mask).sum(axis=1, keepdims=True) / n, 0.0)
    denom = np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(axis=1) / denom
    return np.where(denom > 1e-12, r, 0.0)


def interaction_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC of ``scores`` (a model's departure from additivity per double) for ``labels``
    (the truly interacting doubles); 0.5 when every score ties or a class is missing."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any() or np.ptp(scores) < 1e-12:
        return 0.5
    return float(roc_auc_score(labels, scores))
