"""Models that predict the profile of an unseen double perturbation, from the baselines the
benchmarks found hard to beat to learned models.

Every model sees the control profile, every single perturbation's profile and the training
doubles' profiles (pseudobulk log expression), and predicts the test doubles:

- ``no_change``: the control profile;
- ``train_mean``: the mean profile of the training perturbations (Csendes et al.'s "Train Mean");
- ``additive``: control + the sum of the two singles' effects (Ahlmann-Eltze et al.);
- ``linear``: the formula of Ahlmann-Eltze et al.'s linear model, Y ≈ G W Pᵀ + b, with Y the
  training effects (profile - control), b their per-gene mean, gene embeddings G the top
  principal components of the centred effects, a perturbation embedded as the sum of its genes'
  rows of G, and W fitted by ridge regression on both sides (10 dimensions, λ = 0.1, as their
  code); their code takes the PCA of the training expression itself, ours of the effects;
- ``mlp``: an MLP from the multi-hot perturbation to the effect on every gene;
- ``graph``: a GEARS-like model with a knowledge graph as its prior: each gene's features are the
  activation propagated 0-3 hops through the graph and the number of activated genes, read by
  one MLP shared by all genes, with a per-gene scale and offset. The graph is a noisy,
  unsigned, undirected copy of the true network (``prior_graph``), as a gene-ontology graph is a
  noisy stand-in for regulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from reprobook.cells.grn import Network, Screen

MODELS = ("no_change", "train_mean", "additive", "linear", "mlp", "graph")
LABELS = {
    "no_change": "no change", "train_mean": "train mean", "additive": "additive",
    "linear": "linear (PCA + ridge)", "mlp": "MLP", "graph": "graph prior (GEARS-like)",
}  # fmt: skip
LEARNED = ("linear", "mlp", "graph")


@dataclass(frozen=True)
class TrainSettings:
    """Settings of the two neural models."""

    epochs: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hidden: int = 128  # the MLP's width
    graph_hidden: int = 32  # the graph model's shared per-gene MLP
    pca_dim: int = 10  # the linear model's embedding size (Ahlmann-Eltze et al.: 10)
    ridge: float = 0.1  # its ridge penalty (Ahlmann-Eltze et al.: 0.1)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.hidden < 1 or self.pca_dim < 1:
            raise ValueError("epochs, hidden and pca_dim must be positive integers")
        if self.lr <= 0 or self.weight_decay < 0 or self.ridge < 0:
            raise ValueError("lr must be > 0, weight_decay and ridge >= 0")


def multi_hot(perturbations: Sequence[tuple[int, ...]], n_genes: int) -> np.ndarray:
    """(P, G) indicator of the activated genes of each perturbation."""
    out = np.zeros((len(perturbations), n_genes))
    for i, genes in enumerate(perturbations):
        out[i, list(genes)] = 1.0
    return out


def _effects(screen: Screen, perturbations: Sequence[tuple[int, ...]]) -> np.ndarray:
    idx = screen.index()
    return np.stack([screen.profiles[idx[p]] - screen.control for p in perturbations])


def linear_model(
    effects: np.ndarray, train: Sequence[tuple[int, ...]], test: Sequence[tuple[int, ...]],
    dim: int, ridge: float,
) -> np.ndarray:  # fmt: skip
    """Ahlmann-Eltze et al.'s linear model on effects (P_train, G): returns test effects."""
    Y = effects.T  # genes × perturbations
    b = Y.mean(axis=1, keepdims=True)
    centred = Y - b
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    dim = min(dim, len(s))
    G = u[:, :dim] * s[:dim]  # gene embeddings: the top principal components
    n_genes = Y.shape[0]
    P_train = multi_hot(train, n_genes) @ G  # a perturbation: the sum of its genes' rows
    P_test = multi_hot(test, n_genes) @ G
    eye = np.eye(dim)
    W = np.linalg.solve(G.T @ G + ridge * eye, G.T @ centred @ P_train) @ np.linalg.inv(
        P_train.T @ P_train + ridge * eye
    )
    return (G @ W @ P_test.T + b).T


def prior_graph(net: Network, rng: np.random.Generator, keep: float = 0.5) -> np.ndarray:
    """A knowledge graph for the ``graph`` model: a fraction ``keep`` of the true edges, as many
    random edges as were dropped, no signs or directions; row-normalised (G, G)."""
    if not 0 <= keep <= 1:
        raise ValueError(f"keep must be in [0, 1], got {keep}")
    true = np.argwhere(net.W != 0)
    kept = true[rng.random(len(true)) < keep]
    n = net.n_genes
    A = np.zeros((n, n))
    for i, j in kept:
        A[i, j] = A[j, i] = 1.0
    n_fake = len(true) - len(kept)
    while n_fake > 0:  # random new edges, no self-loops, none twice
        i, j = rng.integers(0, n, size=2)
        if i != j and not A[i, j]:
            A[i, j] = A[j, i] = 1.0
            n_fake -= 1
    return A / np.maximum(A.sum(axis=1, keepdims=True), 1.0)


class GraphPrior(nn.Module):
    """Per-gene features [u, Au, A²u, A³u, number activated] -> shared MLP -> scale and offset."""

    def __init__(self, A: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.register_buffer("W", torch.as_tensor(A, dtype=torch.float32))
        n_genes = A.shape[0]
        self.mlp = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))  # fmt: skip
        self.scale = nn.Parameter(torch.ones(n_genes))
        self.offset = nn.Parameter(torch.zeros(n_genes))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (P, G) multi-hot -> predicted effects (P, G)."""
        hops = [u]
        for _ in range(3):
            hops.append(hops[-1] @ self.W.T)
        count = u.sum(dim=1, keepdim=True).expand_as(u)
        features = torch.stack([*hops, count], dim=-1)  # (P, G, 5)
        return self.mlp(features).squeeze(-1) * self.scale + self.offset


def _train_torch(model: nn.Module, x: np.ndarray, y: np.ndarray, settings: TrainSettings) -> None:
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for _ in range(settings.epochs):
        opt.zero_grad()
        loss = ((model(xt) - yt) ** 2).mean()
        loss.backward()
        opt.step()


def predict(
    model: str, screen: Screen, graph: np.ndarray, train: Sequence[tuple[int, ...]],
    test: Sequence[tuple[int, ...]], settings: TrainSettings, seed: int,
) -> np.ndarray:  # fmt: skip
    """Predicted profiles (len(test), G) of the test doubles by ``model``, trained on the
    perturbations ``train`` (every single and the training doubles); ``graph`` is the ``graph``
    model's prior (``prior_graph``)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if not train or not test:
        raise ValueError("need training and test perturbations")
    if set(train) & set(test):
        raise ValueError("a test perturbation is also in the training set")
    control, n_genes = screen.control, len(screen.control)
    if model == "no_change":
        return np.tile(control, (len(test), 1))
    effects = _effects(screen, train)
    if model == "train_mean":
        return np.tile(control + effects.mean(axis=0), (len(test), 1))
    if model == "additive":
        singles = dict(zip(train, effects, strict=True))
        missing = [g for p in test for g in p if (g,) not in singles]
        if missing:
            raise ValueError(f"additive needs every test gene's single, missing {missing[:5]}")
        return np.stack([control + sum(singles[(g,)] for g in p) for p in test])
    if model == "linear":
        return control + linear_model(effects, train, test, settings.pca_dim, settings.ridge)
    torch.manual_seed(seed)
    if model == "mlp":
        net_ = nn.Sequential(nn.Linear(n_genes, settings.hidden), nn.ReLU(),
                             nn.Linear(settings.hidden, settings.hidden), nn.ReLU(),
                             nn.Linear(settings.hidden, n_genes))  # fmt: skip
    else:
        net_ = GraphPrior(graph, settings.graph_hidden)
    _train_torch(net_, multi_hot(train, n_genes), effects, settings)
    with torch.no_grad():
        out = net_(torch.as_tensor(multi_hot(test, n_genes), dtype=torch.float32)).numpy()
    return control + out.astype(np.float64)
