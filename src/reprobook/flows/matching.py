"""FM, CGFM and Meta Flow Matching on populations: training, transport by an ODE, evaluation.

All three regress a vector field on the straight path between known pairs,
y_t = (1 - t) x₀ + t x₁ with target velocity u = x₁ - x₀ (the loss ‖v - u‖²; the paper's code
writes ‖v‖² - 2⟨v, u⟩, which differs by a constant). They differ only in what v is told:

- **FM**: nothing about the population (a treatment one-hot when the task has treatments);
- **CGFM**: a one-hot of the training source population, which has no valid value for a
  population it never saw (it then gets the average of the training one-hots, as the paper's
  code does);
- **MFM**: φ(p₀), the embedding of the whole source population (``networks.PopulationEmbedding``),
  trained through the same loss with its own optimiser; steps alternate between the field (on
  cached, detached embeddings) and the embedding, as the paper's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint
from tqdm.std import tqdm

from reprobook.flows.distances import population_distances
from reprobook.flows.networks import PopulationEmbedding, VectorField
from reprobook.flows.populations import Population

METHODS = ("fm", "cgfm", "mfm")
LABELS = {"identity": "identity", "fm": "FM", "cgfm": "CGFM", "mfm": "MFM"}


@dataclass(frozen=True)
class FlowSettings:
    """Training and inference settings shared by the three methods."""

    n_steps: int = 2000  # optimiser steps of the vector field (MFM takes as many of φ too)
    pops_per_step: int = 10  # populations in a batch
    points_per_pop: int = 200  # points drawn from each, pairs kept (fresh on every step)
    lr: float = 1e-3
    width: int = 256  # vector-field MLP
    n_layers: int = 4
    time_dim: int = 128
    n_fourier: int = 128
    fourier_scale: float = 0.01  # the Fourier features' frequency scale (the paper's code: 0.01)
    gnn_width: int = 64  # population embedding
    gnn_layers: int = 3
    knn: int = 10
    ode_steps: int = 20  # fixed-step RK4 steps from t = 0 to 1

    def __post_init__(self) -> None:
        for name in ("n_steps", "pops_per_step", "points_per_pop", "width", "n_layers", "gnn_width",
                     "gnn_layers", "knn", "ode_steps"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


class ConditionalFlow(nn.Module):
    """A vector field with the condition of its ``method`` (see the module docstring)."""

    def __init__(
        self,
        method: str,
        dim: int,
        sources: Sequence[str],
        n_treatments: int,
        settings: FlowSettings,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if n_treatments < 1:
            raise ValueError(f"n_treatments must be >= 1, got {n_treatments}")
        self.method, self.n_treatments = method, n_treatments
        self.sources = {s: i for i, s in enumerate(dict.fromkeys(sources))}
        self.embedding = (
            PopulationEmbedding(dim, settings.gnn_width, settings.gnn_layers, settings.knn)
            if method == "mfm" else None
        )  # fmt: skip
        own = {"fm": 0, "cgfm": len(self.sources), "mfm": settings.gnn_width}[method]
        self.treatment_dim = n_treatments if n_treatments > 1 else 0
        self.field = VectorField(
            dim, own + self.treatment_dim, settings.width, settings.n_layers,
            settings.time_dim, settings.n_fourier, settings.fourier_scale,
        )  # fmt: skip

    def embed(self, pops: Sequence[Population]) -> torch.Tensor:
        """MFM's φ of each population's source points (P, gnn_width)."""
        if self.embedding is None:
            raise ValueError(f"only MFM embeds populations, not {self.method!r}")
        return self.embedding(torch.as_tensor(np.stack([p.x0 for p in pops])))

    def condition(
        self, pops: Sequence[Population], phi: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One condition vector per population (P, cond_dim); MFM uses ``phi`` when given (e.g.
        cached embeddings), else embeds the populations."""
        parts = []
        if self.method == "cgfm":
            onehot = torch.zeros(len(pops), len(self.sources))
            for i, pop in enumerate(pops):
                if pop.source in self.sources:
                    onehot[i, self.sources[pop.source]] = 1.0
                else:  # no valid one-hot: the average of the training ones
                    onehot[i] = 1.0 / len(self.sources)
            parts.append(onehot)
        elif self.method == "mfm":
            parts.append(self.embed(pops) if phi is None else phi)
        if self.treatment_dim:
            treatments = torch.tensor([p.treatment for p in pops])
            parts.append(nn.functional.one_hot(treatments, self.n_treatments).float())
        if not parts:
            return torch.zeros(len(pops), 0)
        return torch.cat(parts, dim=1)

    def velocity(self, t: torch.Tensor, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """v(t, y | c) for points y (P, n, d), times t (P, n) and conditions (P, cond_dim)."""
        n_pop, n, dim = y.shape
        c = cond[:, None, :].expand(n_pop, n, cond.shape[1]).reshape(n_pop * n, -1)
        v = self.field(t.reshape(-1), y.reshape(-1, dim), c if c.shape[1] else None)
        return v.reshape(n_pop, n, dim)


def flow_matching_loss(
    model: ConditionalFlow, pops: Sequence[Population], cond: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Mean ‖v(t, y_t | c) - (x₁ - x₀)‖² over the batch's points, t ~ U[0, 1] per point."""
    x0 = torch.as_tensor(np.stack([p.x0 for p in pops]))
    x1 = torch.as_tensor(np.stack([p.x1 for p in pops]))
    t = torch.rand(x0.shape[:2], generator=gen)
    yt = (1 - t[..., None]) * x0 + t[..., None] * x1
    v = model.velocity(t, yt, cond)
    return ((v - (x1 - x0)) ** 2).sum(-1).mean()


def _subsample(pops: Sequence[Population], m: int, rng: np.random.Generator) -> list[Population]:
    """Each population cut to ``m`` of its points (the same rows of x0 and x1: pairs kept)."""
    out = []
    for p in pops:
        idx = rng.choice(len(p.x0), size=m, replace=False) if m < len(p.x0) else slice(None)
        out.append(Population(p.x0[idx], p.x1[idx], p.name, p.source, p.treatment))
    return out


def train(
    method: str,
    pops: Sequence[Population],
    settings: FlowSettings,
    seed: int,
    n_treatments: int = 1,
    progress: bool = False,
) -> tuple[ConditionalFlow, list[float]]:
    """Train ``method`` on the populations ``pops``; returns the model and the field's mean loss
    every 50 of its steps.

    Each step draws ``pops_per_step`` populations and ``points_per_pop`` pairs from each. MFM
    alternates as the paper's code: a field step on cached, detached embeddings, then an
    embedding step through the same loss (field held fixed) whose embeddings refresh the cache
    (both on the step's subsample), each with
    its own Adam; it so takes ``n_steps`` steps of each, the field as many as FM's and CGFM's."""
    if not pops:
        raise ValueError("need at least one training population")
    dims = {p.x0.shape[1] for p in pops}
    if len(dims) != 1 or min(len(p.x0) for p in pops) < settings.points_per_pop:
        raise ValueError(
            f"training populations must share one dimension and have >= points_per_pop = "
            f"{settings.points_per_pop} points, got dims {sorted(dims)}, "
            f"smallest {min(len(p.x0) for p in pops)}"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ConditionalFlow(method, dims.pop(), [p.source for p in pops], n_treatments, settings)
    field_opt = torch.optim.Adam(model.field.parameters(), lr=settings.lr)
    embed_opt = (
        torch.optim.Adam(model.embedding.parameters(), lr=settings.lr) if model.embedding else None
    )
    cache: dict[str, torch.Tensor] = {}  # MFM: the latest detached embedding per population
    per_step = min(settings.pops_per_step, len(pops))
    n_total = settings.n_steps * (2 if embed_opt is not None else 1)
    losses, running = [], []
    for step in tqdm(range(n_total), disable=not progress, desc=LABELS[method], mininterval=10):
        chosen = rng.choice(len(pops), size=per_step, replace=False)
        batch = _subsample([pops[i] for i in chosen], settings.points_per_pop, rng)
        if embed_opt is not None and step % 2 == 1:  # φ's step, the field held fixed
            phi = model.embed(batch)
            embed_loss = flow_matching_loss(model, batch, model.condition(batch, phi), gen)
            embed_opt.zero_grad()
            embed_loss.backward()
            embed_opt.step()
            model.field.zero_grad()
            cache.update({p.name: e.detach() for p, e in zip(batch, phi, strict=True)})
            continue
        phi = None
        if embed_opt is not None:  # the field's step on cached, detached embeddings
            missing = [p for p in batch if p.name not in cache]
            if missing:
                with torch.no_grad():
                    cache.update(zip([p.name for p in missing], model.embed(missing), strict=True))
            phi = torch.stack([cache[p.name] for p in batch])
        cond = model.condition(batch, phi)
        loss = flow_matching_loss(model, batch, cond, gen)
        field_opt.zero_grad()
        loss.backward()
        field_opt.step()
        running.append(loss.item())
        if len(running) == 50 or step + 1 == n_total:
            losses.append(float(np.mean(running)))
            running = []
    return model, losses


@torch.no_grad()
def transport(
    model: ConditionalFlow, pops: Sequence[Population], n_steps: int = 20, method: str = "rk4"
) -> list[np.ndarray]:
    """Integrate dy/dt = v(t, y | c) from each source population at t = 0 to t = 1
    (torchdiffeq; fixed-step ``rk4`` with ``n_steps`` steps, or adaptive ``dopri5`` with
    atol = rtol = 1e-4 as the paper's inference)."""
    if method not in ("rk4", "dopri5", "euler"):
        raise ValueError(f"method must be 'rk4', 'dopri5' or 'euler', got {method!r}")
    if not pops:
        return []
    out = []
    for shape in dict.fromkeys(p.x0.shape for p in pops):  # solve same-shaped ones together
        group = [p for p in pops if p.x0.shape == shape]
        cond = model.condition(group)
        y0 = torch.as_tensor(np.stack([p.x0 for p in group]))

        def rhs(t: torch.Tensor, y: torch.Tensor, cond=cond) -> torch.Tensor:
            return model.velocity(t.expand(y.shape[:2]), y, cond)

        options = {"step_size": 1.0 / n_steps} if method != "dopri5" else None
        tol = {"atol": 1e-4, "rtol": 1e-4} if method == "dopri5" else {}
        y1 = odeint(rhs, y0, torch.tensor([0.0, 1.0]), method=method, options=options, **tol)[-1]
        out += list(zip(group, y1.numpy(), strict=True))
    by_id = {id(p): y for p, y in out}
    return [by_id[id(p)] for p in pops]


def evaluate(
    model: ConditionalFlow | None, pops: Sequence[Population], n_steps: int = 20
) -> list[dict[str, float]]:
    """W1, W2 and MMD of each population's prediction against its target; ``model=None`` is the
    identity map (the source itself as the prediction), the floor every method must beat."""
    predicted = [p.x0 for p in pops] if model is None else transport(model, pops, n_steps)
    return [population_distances(y, p.x1) for y, p in zip(predicted, pops, strict=True)]


def solver_gap(model: ConditionalFlow, pops: Sequence[Population], n_steps: int) -> float:
    """Largest distance between a point transported by fixed-step RK4 and by adaptive dopri5."""
    fixed = transport(model, pops, n_steps, "rk4")
    adaptive = transport(model, pops, method="dopri5")
    return float(
        max(np.linalg.norm(a - b, axis=1).max() for a, b in zip(fixed, adaptive, strict=True))
    )
