"""A gene-regulatory-network simulator of a CRISPR-activation screen (a stand-in for Norman et al.).

Genes' log-expression levels y settle at the steady state of

    y = b + u + φ_s(W (y - b)),    φ_s(z) = (1 - s) z + s · κ tanh(z / κ),

with W a sparse signed network (transcription factors regulate targets), b the basal levels and
u the perturbation (activating gene g adds ``activation`` to u_g). A gene's regulatory input is
the sum of its regulators' deviations, passed through φ_s: at saturation s = 0 the network is
linear and a double perturbation's effect is exactly the sum of its singles; s > 0 makes a
target that two activated regulators share saturate, a weak, local interaction. W is scaled so
that its largest absolute row sum is ``contraction`` < 1, which makes the iteration a
contraction (φ_s is 1-Lipschitz): the steady state exists, is unique, and is found.

The **epistasis knob** ε acts on doubles on top of the network, as *buffering* (the
sub-additive interaction type of Norman et al.): a double's effect d_ab on every gene but the two
activated ones is damped to d_ab / (1 + ε ‖d_ab‖ / D), with D the median size of a single's
effect, so larger combined responses are damped more. At ε = 0 the network alone decides;
``interaction_share`` measures the departure from additivity each ε produces, so the knob is
reported in interpretable units.

Cells are drawn from the steady state: counts are negative binomial (a gamma-Poisson mixture)
around library size × softmax(y), normalised to 10⁴ counts and log1p-transformed, as scanpy's
``normalize_total`` + ``log1p`` would, and averaged per perturbation (a pseudobulk profile).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Network:
    """W (G × G; W[i, j] is j's effect on i), basal levels b (G,), the regulators (TF indices)."""

    W: np.ndarray
    b: np.ndarray
    regulators: np.ndarray

    @property
    def n_genes(self) -> int:
        return len(self.b)


def random_network(
    n_genes: int,
    n_regulators: int,
    in_degree: int,
    rng: np.random.Generator,
    contraction: float = 0.8,
    activating: float = 0.6,
    n_modules: int = 1,
    in_module: float = 0.8,
) -> Network:
    """A sparse random network: every gene gets ``in_degree`` regulators drawn from the first
    ``n_regulators`` genes (never itself), each activating with probability ``activating``.

    Genes and regulators are dealt into ``n_modules`` programmes; a gene draws each regulator
    from its own programme with probability ``in_module``, and a programme's regulators push a
    given target the same way, so their effects are correlated (real perturbation effects are
    low-rank); one programme gives independent regulators."""
    if not 2 <= n_regulators <= n_genes or not 1 <= in_degree < n_regulators:
        raise ValueError(
            f"need 2 <= n_regulators <= n_genes and 1 <= in_degree < n_regulators, got "
            f"n_genes = {n_genes}, n_regulators = {n_regulators}, in_degree = {in_degree}"
        )
    if not 0 < contraction < 1:
        raise ValueError(f"contraction must be in (0, 1), got {contraction}")
    if not 1 <= n_modules <= n_regulators // 2 or not 0 <= in_module <= 1:
        raise ValueError(
            f"need 1 <= n_modules <= n_regulators / 2 and 0 <= in_module <= 1, got "
            f"{n_modules}, {in_module}"
        )
    module = np.arange(n_genes) % n_modules  # regulators too: genes 0 .. n_regulators - 1
    # one sign per (target, programme): a programme's regulators push a target the same way
    sign = np.where(rng.random((n_genes, n_modules)) < activating, 1.0, -1.0)
    W = np.zeros((n_genes, n_genes))
    for i in range(n_genes):
        own = [j for j in range(n_regulators) if j != i and module[j] == module[i]]
        other = [j for j in range(n_regulators) if j != i and module[j] != module[i]]
        sources: list[int] = []
        while len(sources) < in_degree:  # ends: own + other hold >= in_degree regulators
            mine = [j for j in own if j not in sources]
            rest = [j for j in other if j not in sources]
            pool = mine if (mine and rng.random() < in_module) or not rest else rest
            sources.append(int(rng.choice(pool)))
        W[i, sources] = sign[i, module[sources]] * rng.uniform(0.5, 1.5, size=in_degree)
    W *= contraction / np.abs(W).sum(axis=1).max()
    b = rng.normal(1.0, 0.5, size=n_genes)
    return Network(W, b, np.arange(n_regulators))


KAPPA = 0.5  # the level at which a regulatory input saturates (log expression)


def phi(z: np.ndarray, saturation: float) -> np.ndarray:
    """φ_s: the identity at s = 0, a saturating κ tanh(z / κ) at s = 1 (1-Lipschitz for all s)."""
    return (1 - saturation) * z + saturation * KAPPA * np.tanh(z / KAPPA)


def steady_state(
    net: Network, u: np.ndarray, saturation: float, tol: float = 1e-10, max_iter: int = 2000
) -> np.ndarray:
    """The steady states y (P, G) for perturbation inputs u (P, G), by fixed-point iteration."""
    if not 0 <= saturation <= 1:
        raise ValueError(f"saturation must be in [0, 1], got {saturation}")
    u = np.atleast_2d(u)
    if u.shape[1] != net.n_genes:
        raise ValueError(f"u must have {net.n_genes} columns (genes), got {u.shape[1]}")
    y = net.b + u
    for _ in range(max_iter):
        new = net.b + u + phi((y - net.b) @ net.W.T, saturation)
        if np.abs(new - y).max() < tol:
            return new
        y = new
    raise RuntimeError(f"the steady state did not converge in {max_iter} iterations")


@dataclass(frozen=True)
class Screen:
    """A simulated screen: pseudobulk log-normalised profiles of the control and of every
    perturbation (a tuple of activated genes), and the noise-free steady states behind them."""

    control: np.ndarray  # (G,)
    perturbations: list[tuple[int, ...]]
    profiles: np.ndarray  # (P, G), one row per perturbation
    truth: np.ndarray  # (P, G) noise-free log expression (steady state), for diagnostics
    truth_control: np.ndarray  # (G,)
    epsilon: float

    def index(self) -> dict[tuple[int, ...], int]:
        return {p: i for i, p in enumerate(self.perturbations)}

    @property
    def singles(self) -> list[tuple[int, ...]]:
        return [p for p in self.perturbations if len(p) == 1]

    @property
    def doubles(self) -> list[tuple[int, ...]]:
        return [p for p in self.perturbations if len(p) == 2]


def design(
    net: Network, n_singles: int, n_doubles: int, rng: np.random.Generator
) -> list[tuple[int, ...]]:
    """``n_singles`` activated regulators and ``n_doubles`` distinct pairs of them."""
    if not 2 <= n_singles <= len(net.regulators):
        raise ValueError(f"n_singles must be in [2, {len(net.regulators)}], got {n_singles}")
    n_pairs = n_singles * (n_singles - 1) // 2
    if not 0 <= n_doubles <= n_pairs:
        raise ValueError(f"n_doubles must be in [0, {n_pairs}], got {n_doubles}")
    genes = sorted(rng.choice(net.regulators, size=n_singles, replace=False).tolist())
    pairs = list(itertools.combinations(genes, 2))
    chosen = rng.choice(len(pairs), size=n_doubles, replace=False)
    return [(g,) for g in genes] + [pairs[i] for i in sorted(chosen)]


def sample_cells(
    y: np.ndarray, n_cells: int, rng: np.random.Generator, library_size: float = 5000.0,
    dispersion: float = 5.0,
) -> np.ndarray:  # fmt: skip
    """Log-normalised expression of ``n_cells`` cells around the log-expression ``y`` (G,):
    negative binomial counts (mean library_size · softmax(y), shape ``dispersion``), scaled to
    10⁴ counts per cell and log1p-transformed."""
    mean = library_size * np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    rate = rng.gamma(dispersion, mean / dispersion, size=(n_cells, len(y)))
    counts = rng.poisson(rate).astype(float)
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return np.log1p(counts / totals * 1e4)


def buffer_doubles(
    y: np.ndarray, perturbations: list[tuple[int, ...]], epsilon: float
) -> np.ndarray:
    """Apply the epistasis knob (see the module docstring) to the steady states ``y``: the
    control in row 0, one row per perturbation after it."""
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    singles = [i + 1 for i, p in enumerate(perturbations) if len(p) == 1]
    if not singles:
        raise ValueError("the design needs single perturbations")
    sizes = [np.linalg.norm(np.delete(y[i] - y[0], list(perturbations[i - 1]))) for i in singles]
    scale = float(np.median(sizes))
    out = y.copy()
    for i, p in enumerate(perturbations, start=1):
        if len(p) < 2:
            continue
        keep = np.ones(y.shape[1], dtype=bool)
        keep[list(p)] = False
        d = y[i, keep] - y[0, keep]
        out[i, keep] = y[0, keep] + d / (1 + epsilon * np.linalg.norm(d) / scale)
    return out


def simulate_screen(
    net: Network, perturbations: list[tuple[int, ...]], epsilon: float, n_cells: int,
    rng: np.random.Generator, activation: float = 3.0, saturation: float = 0.5,
    n_control_cells: int | None = None,
) -> Screen:  # fmt: skip
    """Steady states (with the epistasis knob ε on doubles) and pseudobulk profiles of the
    control and of each perturbation."""
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    u = np.zeros((len(perturbations) + 1, net.n_genes))
    for row, genes in enumerate(perturbations, start=1):
        u[row, list(genes)] = activation
    y = buffer_doubles(steady_state(net, u, saturation), perturbations, epsilon)
    n_control = n_control_cells or 4 * n_cells
    profiles = np.stack([
        sample_cells(y[i], n_control if i == 0 else n_cells, rng).mean(axis=0)
        for i in range(len(y))
    ])  # fmt: skip
    return Screen(profiles[0], list(perturbations), profiles[1:], y[1:], y[0], epsilon)


def interaction_share(screen: Screen) -> float:
    """How far the noise-free doubles are from additive, on the genes a double does not activate
    itself: Σ‖y_ab - (y_a + y_b - y_0)‖² over Σ‖y_ab - y_0‖² (0 when effects add exactly)."""
    idx = screen.index()
    y0 = screen.truth_control
    num = den = 0.0
    for a, b in screen.doubles:
        ya, yb, yab = (screen.truth[idx[p]] for p in ((a,), (b,), (a, b)))
        keep = np.ones(len(y0), dtype=bool)
        keep[[a, b]] = False
        num += float(((yab - (ya + yb - y0))[keep] ** 2).sum())
        den += float(((yab - y0)[keep] ** 2).sum())
    return num / den if den else 0.0
