"""The deceptive hyper-grid of "Adaptive teachers for amortized samplers", on torchgfn's HyperGrid.

The reward follows the official environment (``alstn12088/adaptive-teacher``, ``grid/env.py``),
computed in float64 exactly as written there, with u = x / (H - 1) * 2 - 1 per coordinate::

    R(x) = 0.1 + 1e-5 - 0.1 * prod_i 1[|u_i| > 0.2] + 2 * prod_i 1[0.6 < |u_i| < 0.8]

Modes are the states with the largest reward (every coordinate in the thin band). Which
coordinates fall inside the band's open edges is decided by float64 rounding: at H = 16,
x = 12 gives u = 0.6000000000000001 (inside) while x = 3 gives exactly -0.6 (outside), so there
are 3 mode coordinates per axis (2, 12, 13) and 3^d mode states. torchgfn's own
``DeceptiveReward`` guards the edges with an epsilon and gets 2 per axis (2^d). We train on the
official float64 reward, so the 3^d states we count as modes are the ones the sampler is
rewarded for.

Dynamics follow the official environment too: an episode ends as soon as any coordinate
reaches H - 1, so a state on that edge allows only the exit action, and states with two or more
coordinates at H - 1 are never reached (torchgfn's HyperGrid only masks the move that would leave
the grid, and lets every state terminate). ``DeceptiveGrid`` changes torchgfn's masks to match:
forward, only "exit" on the edge; backward, only parents that are not themselves on the edge,
so the uniform backward policy is uniform over parents that can occur.

The official trainer's uniform backward policy (``learn_pb`` off, its default) is instead uniform
over *every* coordinate above 0, parents on the edge included. Those parents never occur, so for
a trajectory that ends on the edge at x, its log P_B is lower than ours by log k(x), k(x) the
number of non-zero coordinates of x; for every other trajectory the two agree. TB sees log R and
log P_B only through their sum, so ``official_log_pb_shift`` (-log k on the edge, 0 elsewhere)
added to log R reproduces the official loss exactly, while the backward sampler of the replay
buffer keeps drawing only parents that can occur, as the official buffer does.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from gfn.gym import HyperGrid
from gfn.gym.hypergrid import GridReward

R_BASE, R_CROSS, R_MODE = 1e-5, 0.1, 2.0


def _check_grid(ndim: int, height: int) -> None:
    if not isinstance(ndim, int) or ndim < 1:
        raise ValueError(f"ndim must be a positive integer, got {ndim!r}")
    if not isinstance(height, int) or height < 2:
        raise ValueError(f"height must be an integer >= 2, got {height!r}")
    if not mode_coordinates(height):
        raise ValueError(f"height {height} has no coordinate inside the mode band 0.6 < |u| < 0.8")


def deceptive_reward(states: torch.Tensor | np.ndarray, height: int) -> torch.Tensor:
    """The official deceptive reward of integer grid states ``[..., ndim]``, in float64."""
    if not isinstance(height, int) or height < 2:
        raise ValueError(f"height must be an integer >= 2, got {height!r}")
    x = torch.as_tensor(states).to(torch.float64)
    if x.ndim == 0:
        raise ValueError("states must have a last axis of coordinates, got a scalar")
    if (x < 0).any() or (x > height - 1).any():
        raise ValueError(f"grid coordinates must lie in [0, {height - 1}]")
    u = (x / (height - 1) * 2 - 1).abs()
    outside_cross = (u > 0.2).all(-1).to(torch.float64)
    in_band = ((u > 0.6) & (u < 0.8)).all(-1).to(torch.float64)
    return R_CROSS + R_BASE - R_CROSS * outside_cross + R_MODE * in_band


def mode_coordinates(height: int) -> list[int]:
    """Coordinates x in [0, H-1] with 0.6 < |x/(H-1)*2-1| < 0.8 in float64 (the band's axis)."""
    return [x for x in range(height) if 0.6 < abs(x / (height - 1) * 2 - 1) < 0.8]


def n_mode_states(ndim: int, height: int) -> int:
    """Number of mode states: every coordinate in the band."""
    _check_grid(ndim, height)
    return len(mode_coordinates(height)) ** ndim


def all_states(ndim: int, height: int) -> torch.Tensor:
    """Every grid state ``[H^d, ndim]`` in row-major order, so row k has ``state_index`` k."""
    _check_grid(ndim, height)
    return torch.tensor(list(itertools.product(range(height), repeat=ndim)), dtype=torch.long)


def state_index(states: torch.Tensor, height: int) -> torch.Tensor:
    """Row-major flat index of integer states ``[..., ndim]`` (x_1 most significant)."""
    index = torch.zeros(states.shape[:-1], dtype=torch.long)
    for i in range(states.shape[-1]):
        index = index * height + states[..., i].long()
    return index


def mode_mask(ndim: int, height: int) -> np.ndarray:
    """Boolean ``[H^d]``: which states (by ``state_index``) are modes, i.e. have the top reward."""
    reward = deceptive_reward(all_states(ndim, height), height)
    return (reward >= reward.max()).numpy()


def terminal_mask(ndim: int, height: int) -> np.ndarray:
    """Boolean ``[H^d]``: the reachable terminal states (at most one coordinate at H - 1)."""
    return ((all_states(ndim, height) == height - 1).sum(-1) <= 1).numpy()


def target_distribution(ndim: int, height: int) -> np.ndarray:
    """p(x) = R(x) / Z over the terminal states, 0 on the unreachable ones; ``[H^d]``, float64."""
    reward = deceptive_reward(all_states(ndim, height), height).numpy()
    reward = np.where(terminal_mask(ndim, height), reward, 0.0)
    return reward / reward.sum()


def official_log_pb_shift(final_states: torch.Tensor, height: int) -> torch.Tensor:
    """-log k(x) for final states x on the edge (a coordinate at H - 1), 0 for the others.

    k(x) is the number of non-zero coordinates of x: the official uniform backward policy splits
    the last step into x over all of them, where only the step off the edge can occur. Add it to
    log R(x) to train on the official TB loss (see the module doc). ``final_states`` is [B, d].
    """
    if final_states.dim() != 2:
        raise ValueError(f"final_states must be [batch, d], got shape {tuple(final_states.shape)}")
    if ((final_states < 0) | (final_states >= height)).any():
        raise ValueError(f"final states must lie in {{0, ..., {height - 1}}}^d")
    on_edge = (final_states == height - 1).any(-1)
    k = (final_states > 0).sum(-1).clamp(min=1).to(torch.get_default_dtype())
    return torch.where(on_edge, -torch.log(k), torch.zeros_like(k))


def empirical_l1(counts: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """L1 between the empirical distribution of ``counts`` and ``target``, both conventions.

    ``mean``: mean over states of |p_hat - p| (the official code's ``empirical_l1``);
    ``sum``: the sum (torchgfn's ``l1_dist``, bounded by 2). ``sum = mean * n_states``.
    """
    counts, target = np.asarray(counts, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if counts.shape != target.shape or counts.ndim != 1:
        raise ValueError(
            f"counts and target must be 1-D of the same length, got {counts.shape}, {target.shape}"
        )
    if counts.sum() <= 0:
        raise ValueError("counts must contain at least one sample")
    gap = np.abs(counts / counts.sum() - target)
    return {"mean": float(gap.mean()), "sum": float(gap.sum())}


class OfficialDeceptiveReward(GridReward):
    """torchgfn reward wrapper around ``deceptive_reward`` (float64 test, float32 output)."""

    def __call__(self, states_tensor: torch.Tensor) -> torch.Tensor:
        return deceptive_reward(states_tensor, self.height).to(torch.get_default_dtype())


class DeceptiveGrid(HyperGrid):
    """torchgfn's HyperGrid with the official environment's stopping rule (see the module doc)."""

    def make_states_class(self) -> type:
        base, edge = super().make_states_class(), self.height - 1

        class DeceptiveGridStates(base):
            def _compute_forward_masks(self) -> torch.Tensor:
                masks = super()._compute_forward_masks()
                on_edge = (self.tensor == edge).any(-1, keepdim=True)
                masks[..., :-1] &= ~on_edge  # on the edge only "exit" is allowed
                return masks

            def _compute_backward_masks(self) -> torch.Tensor:
                at_edge = self.tensor == edge
                n_at_edge = at_edge.sum(-1, keepdim=True)
                # Undoing step i leaves a parent off the edge iff no other coordinate is at it.
                parent_off_edge = (n_at_edge == 0) | (at_edge & (n_at_edge == 1))
                return (self.tensor != 0) & parent_off_edge

        return DeceptiveGridStates


def make_deceptive_grid(ndim: int, height: int) -> DeceptiveGrid:
    """The deceptive grid: official float64 reward and stopping rule on torchgfn's HyperGrid."""
    _check_grid(ndim, height)
    env = DeceptiveGrid(
        ndim=ndim,
        height=height,
        reward_fn_str="deceptive",
        reward_fn_kwargs={"R0": R_BASE, "R1": R_CROSS, "R2": R_MODE},
        validate_modes=False,
    )
    env.reward_fn = OfficialDeceptiveReward(height, ndim)
    return env
