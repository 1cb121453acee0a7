"""The networks of Meta Flow Matching: a population embedding and a conditional vector field.

``PopulationEmbedding`` is φ(p₀): a GCN (the layer of torch_geometric's ``GCNConv``, computed
as a gather) over the k-nearest-neighbour graph of a source population, mean-pooled over its
points and L2-normalised, so one vector summarises the population. ``VectorField`` is
v(t, y | c): an MLP on the point y, random Fourier features of y, a sinusoidal embedding of t
and a condition c (φ for MFM, a one-hot of the training population for CGFM, nothing for FM;
plus a treatment one-hot when the task has treatments).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def knn_indices(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (P, n, k) of each point's k nearest other points within its own population, for
    populations ``points`` (P, n, d) (torch ``cdist`` + ``topk``; torch_geometric's own
    ``knn_graph`` needs pyg-lib, which is not on PyPI)."""
    if points.ndim != 3:
        raise ValueError(f"points must be (populations, n, d), got shape {tuple(points.shape)}")
    n = points.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n - 1] = [1, {n - 1}], got {k}")
    dist = torch.cdist(points, points)
    dist.diagonal(dim1=1, dim2=2).fill_(math.inf)  # a point is not its own neighbour
    return dist.topk(k, dim=2, largest=False).indices


def knn_edges(neighbours: torch.Tensor) -> torch.Tensor:
    """The same graphs as torch_geometric's ``edge_index`` (2, P·n·k): edge j -> i for each
    neighbour j of i, nodes numbered population by population (one disjoint graph)."""
    n_pop, n, k = neighbours.shape
    offset = (torch.arange(n_pop) * n).view(n_pop, 1, 1)
    source = (neighbours + offset).reshape(-1)
    target = (torch.arange(n).view(1, n, 1).expand(n_pop, n, k) + offset).reshape(-1)
    return torch.stack([source, target])


class KnnGCNLayer(nn.Module):
    """One GCN layer (Kipf & Welling) on a kNN graph: torch_geometric's ``GCNConv`` with its
    defaults (self-loops, symmetric normalisation) computes exactly this on such a graph, since
    every node has k in-neighbours plus itself, so each edge weighs 1 / (k + 1):
    h'_i = (W h_i + Σ_{j ∈ N(i)} W h_j) / (k + 1) + b.
    A gather over the (P, n, k) neighbour indices, several times faster than message passing
    at this size (checked against ``GCNConv`` in the tests)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, h: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        """h (P, n, in_dim), neighbours (P, n, k) -> (P, n, out_dim)."""
        wh = self.lin(h)
        n_pop, n, k = neighbours.shape
        flat = (neighbours + (torch.arange(n_pop) * n).view(n_pop, 1, 1)).reshape(-1)
        gathered = wh.reshape(n_pop * n, -1)[flat].reshape(n_pop, n, k, -1)
        return (wh + gathered.sum(2)) / (k + 1) + self.bias


class PopulationEmbedding(nn.Module):
    """φ(p₀): GCN layers over the kNN graph of the source points (ReLU between them, none after
    the last), mean pool over the points, L2 normalisation, as the paper's code."""

    def __init__(self, dim: int, width: int, n_layers: int, k: int) -> None:
        super().__init__()
        if n_layers < 1 or width < 1 or k < 1:
            raise ValueError(f"need n_layers, width, k >= 1, got {n_layers}, {width}, {k}")
        self.k = k
        sizes = [dim] + [width] * n_layers
        self.convs = nn.ModuleList(
            KnnGCNLayer(a, b) for a, b in zip(sizes, sizes[1:], strict=False)
        )
        self.out_dim = width

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(P, n, d) source populations -> (P, width) unit vectors."""
        neighbours = knn_indices(points, min(self.k, points.shape[1] - 1))
        h = points
        for i, conv in enumerate(self.convs):
            h = conv(h, neighbours)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return nn.functional.normalize(h.mean(dim=1), dim=1)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of times ``t`` (N,) or (N, 1) into ``dim`` features (dim even)."""
    if dim % 2:
        raise ValueError(f"the time embedding's dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=t.dtype) / half)
    angles = t.reshape(-1, 1) * freqs  # raw t in [0, 1], as the paper's code
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class VectorField(nn.Module):
    """v(t, y | c): an MLP (SELU) on [y, Fourier features of y, time embedding, c].

    The Fourier frequencies are fixed random Gaussians times ``fourier_scale`` (0.01 in the
    paper's code, which makes the features nearly linear in y)."""

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        width: int,
        n_layers: int,
        time_dim: int = 128,
        n_fourier: int = 128,
        fourier_scale: float = 0.01,
    ) -> None:
        super().__init__()
        if n_layers < 1 or width < 1 or cond_dim < 0 or n_fourier < 0:
            raise ValueError("need n_layers, width >= 1 and cond_dim, n_fourier >= 0")
        self.dim, self.cond_dim, self.time_dim = dim, cond_dim, time_dim
        # fixed random frequencies (a buffer: saved with the model, never trained)
        self.register_buffer("B", fourier_scale * torch.randn(dim, n_fourier))
        sizes = [dim + 2 * n_fourier + time_dim + cond_dim] + [width] * n_layers
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(a, b), nn.SELU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, t: torch.Tensor, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Velocities at points ``y`` (N, d), times ``t`` (N,) and conditions ``c`` (N, cond)."""
        proj = 2 * math.pi * y @ self.B
        parts = [y, torch.sin(proj), torch.cos(proj), time_embedding(t, self.time_dim)]
        if self.cond_dim:
            if c is None or c.shape != (len(y), self.cond_dim):
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"condition must be ({len(y)}, {self.cond_dim}), got {got}")
            parts.append(c)
        return self.net(torch.cat(parts, dim=1))
