"""A synthetic stand-in for a patients × treatments single-cell screen (not real data).

Each patient's control population mixes ``N_TYPES`` cell types (Gaussian clusters at fixed
places) in proportions ``w`` drawn from a Dirichlet. A treatment moves every cell by an amount
that depends on its type *and on the composition of its population*:

    x₁ = x₀ + g[j, k] · A[j] (w - 1/K) · ``STRENGTH`` + ``RESPONSE_NOISE`` · N(0, I)

for a cell of type k under treatment j, with A[j] (2 × K) and g[j, k] fixed by the task's world
seed. A single cell does not tell how its patient responds; the whole population does, which is
the situation Meta Flow Matching is built for (cells that signal to each other, a tumour's
microenvironment). The world is fixed; a run's seed draws the patients and their cells.
"""

from __future__ import annotations

import numpy as np

from reprobook.flows.populations import Population

N_TYPES = 3
TYPE_RADIUS = 2.0  # cluster centres on a circle of this radius
TYPE_STD = 0.35
STRENGTH = 3.0
RESPONSE_NOISE = 0.1
WORLD_SEED = 8  # fixes the treatments' effects, the same for every run


def type_means() -> np.ndarray:
    """The K cluster centres (K, 2), evenly spaced on a circle."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(N_TYPES) / N_TYPES
    return TYPE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def treatment_effects(n_treatments: int) -> tuple[np.ndarray, np.ndarray]:
    """A (T, 2, K) and the per-type gains g (T, K), fixed by ``WORLD_SEED``."""
    if n_treatments < 1:
        raise ValueError(f"n_treatments must be >= 1, got {n_treatments}")
    rng = np.random.default_rng(WORLD_SEED)
    A = rng.standard_normal((n_treatments, 2, N_TYPES))
    g = rng.uniform(0.3, 1.5, size=(n_treatments, N_TYPES))
    return A, g


def control_population(
    w: np.ndarray, n_cells: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_cells`` control cells of a patient with composition ``w``: points and cell types."""
    types = rng.choice(N_TYPES, size=n_cells, p=w)
    x0 = type_means()[types] + TYPE_STD * rng.standard_normal((n_cells, 2))
    return x0, types


def respond(
    x0: np.ndarray, types: np.ndarray, w: np.ndarray, treatment: int, n_treatments: int,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """The treated cells, paired with ``x0`` (see the module docstring)."""
    if not 0 <= treatment < n_treatments:
        raise ValueError(f"treatment must be in [0, {n_treatments}), got {treatment}")
    A, g = treatment_effects(n_treatments)
    shift = STRENGTH * A[treatment] @ (w - 1.0 / N_TYPES)  # one 2-vector per population
    return (
        x0 + g[treatment, types][:, None] * shift + RESPONSE_NOISE * rng.standard_normal(x0.shape)
    )


def patients_split(
    n_train: int, n_test: int, n_treatments: int, n_cells: int, seed: int,
    concentration: float = 1.0,
) -> dict[str, list[Population]]:  # fmt: skip
    """Populations for ``n_train`` training and ``n_test`` held-out patients, each under every
    treatment (one control sample per patient, shared by its treatments), and ``replicates``:
    a fresh control sample of each training patient, treated alike (the same patient, unseen
    cells). Patients' compositions are Dirichlet(``concentration``)."""
    if n_train < 1 or n_test < 1 or n_cells < 2:
        raise ValueError(
            f"need n_train, n_test >= 1 and n_cells >= 2, got {n_train}, {n_test}, {n_cells}"
        )
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[Population]] = {"train": [], "replicates": [], "test": []}
    for i in range(n_train + n_test):
        patient = f"P{i}"
        w = rng.dirichlet(np.full(N_TYPES, concentration))
        samples = [("train" if i < n_train else "test", "")]
        if i < n_train:
            samples.append(("replicates", "/rep"))
        for split, tag in samples:
            x0, types = control_population(w, n_cells, rng)
            for j in range(n_treatments):
                x1 = respond(x0, types, w, j, n_treatments, rng)
                out[split].append(Population(
                    x0.astype(np.float32), x1.astype(np.float32), f"{patient}{tag}/T{j}",
                    source=patient, treatment=j,
                ))  # fmt: skip
    return out
