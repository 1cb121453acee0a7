"""Stability of trajectory balance under reward perturbations, computed exactly.

With a fixed backward policy P_B, the TB-optimal GFlowNet for a reward R samples a trajectory
tau ending at x with probability P(tau) = R(x) P_B(tau | x) / Z. For a second reward R' with
f = log R' - log R, the ratio P'(tau) / P(tau) = e^f(x) / E_P[e^f] does not depend on the path,
so the trajectory distributions' total variation equals that of the terminal distributions, and
a tilt by f with |f| <= eps moves it by at most

    TV(P, P') <= tanh(eps / 2),

reached by f = +eps on a set of P-mass 1 / (1 + e^eps) and -eps elsewhere. This is the bound
the chapter derives and plots; ``curve`` computes the exact TV (from the DP-optimal policies,
by enumerating trajectories) for families of perturbations of growing size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reprobook.gfn.exact import (
    levels,
    optimal_policy,
    terminal_distribution,
    total_variation,
    trajectory_probabilities,
)

FAMILIES = ("random_signs", "hidden_only", "worst_case")
FAMILY_LABELS = {
    "random_signs": "random ±ε on every state",
    "hidden_only": "+ε on the long states only (‖x‖₁ > L; bound tanh(ε/4))",
    "worst_case": "two-level tilt aimed at the bound",
}


def tv_bound(eps: float | np.ndarray) -> np.ndarray:
    """The tight bound tanh(eps / 2) on TV between TB-optimal trajectory distributions whose
    log-rewards differ by at most eps everywhere."""
    eps = np.asarray(eps, dtype=np.float64)
    if not (eps >= 0).all():
        raise ValueError("eps must be >= 0 (and not NaN)")
    return np.tanh(eps / 2)


def worst_case_set(p: np.ndarray, eps: float) -> np.ndarray:
    """A set A of states whose mass under p is as close as a greedy pass gets to
    1 / (1 + e^eps), the mass at which the tilt +eps on A, -eps elsewhere moves TV most."""
    order = np.argsort(-np.asarray(p))
    target = 1.0 / (1.0 + np.exp(eps))
    chosen, mass = np.zeros(len(p), dtype=bool), 0.0
    for k in order:
        if abs(mass + p[k] - target) < abs(mass - target):
            chosen[k], mass = True, mass + p[k]
    return chosen


def perturbation(
    family: str, log_reward: np.ndarray, eps: float, long_states: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """f = log R' - log R with |f| <= eps, for one of ``FAMILIES`` (max |f| = eps, except
    ``hidden_only`` when no state is long). ``hidden_only`` moves one side only, so its
    oscillation is eps and its own tight bound tanh(eps / 4)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if np.shape(long_states) != np.shape(log_reward):
        raise ValueError("long_states must be a mask of the same shape as log_reward")
    if family == "random_signs":
        return eps * rng.choice([-1.0, 1.0], size=len(log_reward))
    if family == "hidden_only":
        return np.where(long_states, eps, 0.0)
    p = np.exp(log_reward - log_reward.max())
    return np.where(worst_case_set(p / p.sum(), eps), eps, -eps)


def curve(
    ndim: int, height: int, log_reward: np.ndarray, max_length: int, eps_grid: Sequence[float],
    seed: int = 0,
) -> dict:  # fmt: skip
    """Exact TV between the trajectory distributions of the DP-optimal policies for R and R'
    (trajectories enumerated) and between their terminal distributions, per family and eps."""
    log_reward = np.asarray(log_reward, dtype=np.float64)
    if log_reward.shape != (height**ndim,):
        raise ValueError(f"log_reward must have shape (H^d,) = {(height**ndim,)}")
    if not 1 <= max_length < (height - 1) * ndim:
        raise ValueError(f"max_length must be in [1, {(height - 1) * ndim - 1}], got {max_length}")
    long_states = levels(ndim, height) > max_length
    base = optimal_policy(np.exp(log_reward), ndim, height)
    base_traj = trajectory_probabilities(base, ndim, height)
    base_term = terminal_distribution(base, ndim, height)
    rng = np.random.default_rng(seed)
    out = {"eps": [float(e) for e in eps_grid], "bound": tv_bound(eps_grid).tolist()}
    out["n_trajectories"] = int(base_traj.size)
    for family in FAMILIES:
        tv_traj, tv_term, sup = [], [], []
        for eps in eps_grid:
            f = perturbation(family, log_reward, float(eps), long_states, rng)
            other = optimal_policy(np.exp(log_reward + f), ndim, height)
            paths = trajectory_probabilities(other, ndim, height)
            tv_traj.append(total_variation(base_traj, paths))
            tv_term.append(total_variation(base_term, terminal_distribution(other, ndim, height)))
            sup.append(float(np.abs(f).max()))
        out[family] = {"tv_trajectories": tv_traj, "tv_terminal": tv_term, "sup_log_ratio": sup}
    return out
