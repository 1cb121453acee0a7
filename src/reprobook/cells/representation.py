"""Universal representations and a "virtual instrument" on real cells: scanpy's bundled PBMC data.

``pbmc68k_reduced`` ships inside scanpy (700 blood cells × 765 genes, with cell-type labels), so
nothing is downloaded. Cells are encoded by PCA (scanpy) and by a small autoencoder (torch); a
decoder, the virtual instrument, reads the cell type from each representation (a logistic
regression, scored by cross-validation). The figure draws the UMAP embedding that ships with the
dataset (computed by scanpy from the data's PCA), which avoids compiling UMAP's numba code in a
run: it is drawn, never measured.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import scanpy as sc
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits
from torch import nn

LABEL_KEY = "bulk_labels"


def load_pbmc() -> ad.AnnData:
    """scanpy's bundled ``pbmc68k_reduced`` (no download)."""
    return sc.datasets.pbmc68k_reduced()


def autoencode(X: np.ndarray, dim: int, epochs: int, seed: int, hidden: int = 128) -> np.ndarray:
    """Codes (n, dim) of a small autoencoder trained on the rows of ``X`` (full batch, Adam)."""
    if dim < 1 or epochs < 1:
        raise ValueError(f"dim and epochs must be positive, got {dim}, {epochs}")
    torch.manual_seed(seed)
    x = torch.as_tensor(X, dtype=torch.float32)
    encoder = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, dim))
    decoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, x.shape[1]))
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        loss = ((decoder(encoder(x)) - x) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return encoder(x).numpy()


def decoder_accuracy(Z: np.ndarray, labels: np.ndarray, seed: int, folds: int = 5) -> list[float]:
    """Cross-validated accuracy of a logistic-regression decoder of ``labels`` from ``Z``."""
    model = LogisticRegression(max_iter=2000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # tiny problems: BLAS threads only contend
        return cross_val_score(model, Z, labels, cv=cv).tolist()


def representation_study(dim: int, ae_epochs: int, seed: int) -> dict:
    """PCA, autoencoder and random-projection codes of the PBMC cells, each decoder's accuracy,
    the majority-class rate, and the dataset's own UMAP coordinates with the labels."""
    adata = load_pbmc()
    labels = adata.obs[LABEL_KEY].astype(str).to_numpy()
    X = np.asarray(adata.X, dtype=np.float64)
    sc.pp.pca(adata, n_comps=dim, random_state=seed)
    codes = {
        "PCA": adata.obsm["X_pca"],
        "autoencoder": autoencode(X, dim, ae_epochs, seed),
        "random projection": X @ np.random.default_rng(seed).standard_normal((X.shape[1], dim)),
    }
    counts = np.unique(labels, return_counts=True)[1]
    return {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "dim": dim,
        "accuracy": {name: decoder_accuracy(Z, labels, seed) for name, Z in codes.items()},
        "majority": float(counts.max() / counts.sum()),
        "umap": np.round(adata.obsm["X_umap"], 3).tolist(),
        "labels": labels.tolist(),
    }
