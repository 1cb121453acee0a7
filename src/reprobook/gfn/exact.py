"""Exact computations on the standard hyper-grid, by dynamic programming over ‖s‖₁.

On torchgfn's ``HyperGrid`` (d coordinates in [0, H-1]) action i < d adds 1 to coordinate i
when it is below H - 1, and action d ("exit") ends the trajectory at the current state, which
every state allows. States are indexed row-major (``reprobook.gfn.grid.state_index``), so
action i moves index k to k + H^(d-1-i). Every trajectory's length is ‖x‖₁ + 1, so a sweep over
the levels ‖s‖₁ = 0, 1, ... visits parents before children.

- ``policy_table``: a GFlowNet's forward policy at every state, as the sampler uses it.
- ``terminal_distribution``: the exact distribution of the terminal state under a policy (no
  sampling), and ``visit_probabilities`` along the way.
- ``optimal_policy``: the forward policy that, with the uniform backward policy, satisfies
  trajectory balance for a reward R exactly (its terminal distribution is R / Z).
- ``trajectory_probabilities``: every trajectory's probability on a small grid, for exact
  total-variation distances between trajectory distributions.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch


def _check(ndim: int, height: int) -> None:
    if not isinstance(ndim, int) or ndim < 1:
        raise ValueError(f"ndim must be a positive integer, got {ndim!r}")
    if not isinstance(height, int) or height < 2:
        raise ValueError(f"height must be an integer >= 2, got {height!r}")


def _check_policy(policy: np.ndarray, ndim: int, height: int) -> np.ndarray:
    _check(ndim, height)
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape != (height**ndim, ndim + 1):
        raise ValueError(
            f"policy must have shape (H^d, d + 1) = {(height**ndim, ndim + 1)}, got {policy.shape}"
        )
    if (policy < 0).any() or not np.allclose(policy.sum(1), 1.0, atol=1e-9):
        raise ValueError("every row of policy must be a probability vector")
    blocked = grid_coordinates(ndim, height) == height - 1
    if (policy[:, :ndim][blocked] > 0).any():
        raise ValueError("policy puts probability on a move past the grid's edge (x_i = H - 1)")
    return policy


def grid_coordinates(ndim: int, height: int) -> np.ndarray:
    """Every state's coordinates ``[H^d, d]`` in row-major (``state_index``) order."""
    _check(ndim, height)
    return np.array(list(itertools.product(range(height), repeat=ndim)), dtype=np.int64)


def levels(ndim: int, height: int) -> np.ndarray:
    """‖s‖₁ of every state (row-major), which is also the length of its trajectories minus one."""
    return grid_coordinates(ndim, height).sum(1)


def strides(ndim: int, height: int) -> np.ndarray:
    """Index offset of action i: H^(d-1-i)."""
    return height ** np.arange(ndim - 1, -1, -1)


def n_parents(ndim: int, height: int) -> np.ndarray:
    """Number of parents of every state: its non-zero coordinates (P_B uniform is 1 / that)."""
    return (grid_coordinates(ndim, height) > 0).sum(1)


@torch.no_grad()
def policy_table(gflownet, env) -> np.ndarray:
    """P_F(a | s) for every state s (row-major) and action a, as torchgfn's sampler draws it
    (the estimator's masked categorical, no exploration); ``[H^d, d + 1]``, float64."""
    states = env.States(torch.as_tensor(grid_coordinates(env.ndim, env.height)))
    dist = gflownet.pf.to_probability_distribution(states, gflownet.pf(states))
    return dist.probs.to(torch.float64).numpy()


def visit_probabilities(policy: np.ndarray, ndim: int, height: int) -> np.ndarray:
    """Probability that a trajectory sampled from ``policy`` passes through each state."""
    policy = _check_policy(policy, ndim, height)
    coords, level = grid_coordinates(ndim, height), levels(ndim, height)
    step = strides(ndim, height)
    reach = np.zeros(height**ndim)
    reach[0] = 1.0
    for k in range(int(level.max()) + 1):
        here = np.flatnonzero(level == k)
        for i in range(ndim):
            src = here[coords[here, i] < height - 1]
            reach[src + step[i]] += reach[src] * policy[src, i]
    return reach


def terminal_distribution(policy: np.ndarray, ndim: int, height: int) -> np.ndarray:
    """P_T(x): the exact probability that ``policy`` ends its trajectory at x (row-major)."""
    return visit_probabilities(policy, ndim, height) * np.asarray(policy)[:, ndim]


def optimal_flows(reward: np.ndarray, ndim: int, height: int) -> np.ndarray:
    """State flows F(s) = R(s) + sum over children s' of F(s') P_B(s | s'), P_B uniform.

    F(s0) = Z = sum R. These are the flows of the unique forward policy that satisfies detailed
    (hence trajectory) balance with the uniform backward policy.
    """
    _check(ndim, height)
    reward = np.asarray(reward, dtype=np.float64)
    if reward.shape != (height**ndim,) or (reward <= 0).any():
        raise ValueError(f"reward must be positive with shape (H^d,) = {(height**ndim,)}")
    coords, level = grid_coordinates(ndim, height), levels(ndim, height)
    step = strides(ndim, height)
    parents = n_parents(ndim, height)
    flow = reward.copy()
    for k in range(int(level.max()), -1, -1):
        here = np.flatnonzero(level == k)
        for i in range(ndim):
            src = here[coords[here, i] < height - 1]
            child = src + step[i]
            flow[src] += flow[child] / parents[child]
    return flow


def optimal_policy(reward: np.ndarray, ndim: int, height: int) -> np.ndarray:
    """The TB-optimal forward policy for ``reward`` with uniform P_B:
    P_F(exit | s) = R(s) / F(s), P_F(s + e_i | s) = F(s + e_i) P_B(s | s + e_i) / F(s)."""
    flow = optimal_flows(reward, ndim, height)
    coords, step = grid_coordinates(ndim, height), strides(ndim, height)
    parents = n_parents(ndim, height)
    policy = np.zeros((height**ndim, ndim + 1))
    policy[:, ndim] = np.asarray(reward, dtype=np.float64) / flow
    for i in range(ndim):
        src = np.flatnonzero(coords[:, i] < height - 1)
        child = src + step[i]
        policy[src, i] = flow[child] / parents[child] / flow[src]
    return policy


def trajectory_probabilities(policy: np.ndarray, ndim: int, height: int) -> np.ndarray:
    """Probability of every complete trajectory under ``policy``, in one fixed order that
    depends only on (d, H), so two policies' arrays align entry by entry.

    The number of trajectories grows like a multinomial in H: keep H^d to a few dozen states.
    """
    policy = _check_policy(policy, ndim, height)
    if height**ndim > 64:
        raise ValueError(f"enumerating trajectories needs H^d <= 64, got {height**ndim}")
    coords, step = grid_coordinates(ndim, height), strides(ndim, height)
    state, prob = np.zeros(1, dtype=np.int64), np.ones(1)
    done = []
    while state.size:
        done.append(prob * policy[state, ndim])
        nxt_state, nxt_prob = [], []
        for i in range(ndim):
            ok = coords[state, i] < height - 1
            nxt_state.append(state[ok] + step[i])
            nxt_prob.append(prob[ok] * policy[state[ok], i])
        state, prob = np.concatenate(nxt_state), np.concatenate(nxt_prob)
    return np.concatenate(done)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV(p, q) = 1/2 sum |p - q| of two aligned probability vectors."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {p.shape} and {q.shape}")
    return float(0.5 * np.abs(p - q).sum())
