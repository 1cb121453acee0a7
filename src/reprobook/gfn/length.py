"""Length generalisation on the hyper-grid: train on short trajectories, judge the long ones.

The split: the reward is shown only on the terminal states with ‖x‖₁ <= L ("seen"); the states
with ‖x‖₁ > L ("unseen") can only be reached by trajectories longer than any seen in training.
Training is offline: each batch draws x from R restricted to the seen states (exactly) and gives
it a fresh backward trajectory under the uniform P_B, on the full grid (nothing is masked, so the
model decides by itself how much flow to send past L). Intermediate states lie below x, so
FL-DB's intermediate rewards are seen-state rewards too.

After training, the model's forward policy is evaluated on every state and its exact terminal
distribution P_T computed by dynamic programming (``reprobook.gfn.exact``): no sampling noise.
Its implied reward is R^(x) = Z^ P_T(x), with Z^ the model's own log-partition estimate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from gfn.gym import HyperGrid
from gfn.samplers import Sampler
from tqdm.std import tqdm

from reprobook.gfn.exact import grid_coordinates, levels, policy_table, terminal_distribution
from reprobook.gfn.objectives import (
    build_gflownet,
    check_loss,
    log_partition,
    loss_value,
    optimizer,
)


def make_grid(ndim: int, height: int, R0: float = 0.1) -> HyperGrid:
    """torchgfn's HyperGrid with the original reward (Bengio et al. 2021): R0 + 0.5 on the outer
    ring + 2 on the thin band; every state can terminate."""
    if not isinstance(ndim, int) or ndim < 1:
        raise ValueError(f"ndim must be a positive integer, got {ndim!r}")
    if not isinstance(height, int) or height < 5:
        raise ValueError(f"height must be an integer >= 5, got {height!r}")
    if not R0 > 0:
        raise ValueError(f"R0 must be > 0, got {R0}")
    return HyperGrid(
        ndim=ndim, height=height, reward_fn_str="original",
        reward_fn_kwargs={"R0": R0, "R1": 0.5, "R2": 2.0}, validate_modes=False,
    )  # fmt: skip


def grid_log_reward(env: HyperGrid) -> np.ndarray:
    """log R of every state (row-major), float64."""
    states = env.States(torch.as_tensor(grid_coordinates(env.ndim, env.height)))
    return env.log_reward(states).to(torch.float64).numpy()


def seen_mask(ndim: int, height: int, max_length: int) -> np.ndarray:
    """Boolean ``[H^d]``: the states with ‖x‖₁ <= L, whose reward training sees."""
    if not 1 <= max_length < (height - 1) * ndim:
        raise ValueError(
            f"max_length L must be in [1, {(height - 1) * ndim - 1}] so that both sides of the "
            f"split are non-empty, got {max_length}"
        )
    return levels(ndim, height) <= max_length


@dataclass
class OfflineSettings:
    """Training settings shared by every objective."""

    n_iterations: int
    batch_size: int = 16
    lr: float = 1e-3
    lr_logz: float = 1e-1
    hidden_dim: int = 256
    n_layers: int = 2
    record_every: int = 50

    def __post_init__(self) -> None:
        for name in ("n_iterations", "batch_size", "hidden_dim", "n_layers", "record_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.lr_logz > 0):
            raise ValueError("learning rates must be > 0")


def backward_trajectories(env: HyperGrid, sampler: Sampler, terminal: torch.Tensor):
    """Complete forward trajectories ending at ``terminal`` states, drawn backwards with P_B."""
    trajectories = sampler.sample_trajectories(env, states=env.States(terminal))
    return trajectories.reverse_backward_trajectories()


def train_offline(
    loss: str, env: HyperGrid, seen: np.ndarray, settings: OfflineSettings, seed: int,
    progress: bool = True,
):  # fmt: skip
    """Train one objective on backward trajectories from x ~ R restricted to ``seen``.

    Returns the trained GFlowNet and its loss every ``record_every`` iterations (mean over them).
    """
    check_loss(loss)
    _check_seen(seen, env.height**env.ndim)
    torch.manual_seed(seed)
    gflownet = build_gflownet(loss, env, settings.hidden_dim, settings.n_layers)
    opt = optimizer(gflownet, settings.lr, settings.lr_logz)
    sampler = Sampler(gflownet.pb)
    states = torch.as_tensor(grid_coordinates(env.ndim, env.height))
    weights = torch.as_tensor(np.where(seen, np.exp(grid_log_reward(env)), 0.0))
    draw = torch.Generator().manual_seed(seed)
    history, window = [], []
    for _ in tqdm(range(settings.n_iterations), desc=loss, disable=not progress, mininterval=10):
        picks = torch.multinomial(weights, settings.batch_size, replacement=True, generator=draw)
        trajectories = backward_trajectories(env, sampler, states[picks])
        value = loss_value(gflownet, env, trajectories)
        opt.zero_grad()
        value.backward()
        opt.step()
        window.append(float(value.detach()))
        if len(window) == settings.record_every:
            history.append(float(np.mean(window)))
            window = []
    return gflownet, history


def _check_seen(seen: np.ndarray, n_states: int) -> None:
    seen = np.asarray(seen)
    if seen.dtype != bool or seen.shape != (n_states,) or not seen.any() or seen.all():
        raise ValueError(
            f"seen must be a boolean mask of shape ({n_states},) with both seen and unseen states"
        )


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log) of two probability vectors."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log(a[nz] / m[nz])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def generalisation_metrics(
    p_model: np.ndarray, log_z_model: float, log_reward: np.ndarray, seen: np.ndarray,
    length: np.ndarray,
) -> dict:  # fmt: skip
    """How the model's exact terminal distribution compares with the target, seen vs unseen.

    - ``mass``: P_T(unseen) of the model and of the target p = R / Z;
    - ``l1_unseen`` / ``jsd_unseen``: both distributions restricted to the unseen states and
      renormalised (the shape there; L1 as a sum, at most 2);
    - ``log_reward_rmse_{seen,unseen}``: RMSE of log R^(x) = log Z^ + log P_T(x) against log R;
    - ``calibrated_rmse_unseen``: the same with Z^ replaced by the one that makes the model's
      implied rewards on the seen states sum to the true ones, Z_cal = (sum over seen of R) /
      P_T(seen): free of the model's own partition estimate, it measures only how the model
      extrapolates past L relative to what it learned below it;
    - ``log_reward_rmse_by_length`` / ``calibrated_rmse_by_length``: both at each ‖x‖₁ in
      ``lengths``; ``l1_full`` over the
      whole grid; ``total_mass``: sum of P_T (1 up to rounding: a check of the DP).
    """
    p_model = np.asarray(p_model, dtype=np.float64)
    log_reward = np.asarray(log_reward, dtype=np.float64)
    _check_seen(seen, log_reward.size)
    if p_model.shape != log_reward.shape or (p_model < 0).any():
        raise ValueError(f"p_model must be a distribution of shape {log_reward.shape}")
    target = _normalised(np.exp(log_reward - log_reward.max()))
    unseen = ~seen
    log_p = np.log(np.maximum(p_model, 1e-300))
    error = log_z_model + log_p - log_reward
    log_z_cal = np.logaddexp.reduce(log_reward[seen]) - np.log(max(p_model[seen].sum(), 1e-300))
    calibrated = log_z_cal + log_p - log_reward
    shape_model, shape_target = _normalised(p_model[unseen]), _normalised(target[unseen])
    lengths = np.unique(length)
    by_length = [float(np.sqrt(np.mean(error[length == k] ** 2))) for k in lengths]
    calibrated_by_length = [float(np.sqrt(np.mean(calibrated[length == k] ** 2))) for k in lengths]
    return {
        "mass_unseen_model": float(p_model[unseen].sum()),
        "mass_unseen_target": float(target[unseen].sum()),
        "l1_unseen": float(np.abs(shape_model - shape_target).sum()),
        "jsd_unseen": jsd(shape_model, shape_target),
        "l1_full": float(np.abs(p_model - target).sum()),
        "log_reward_rmse_seen": float(np.sqrt(np.mean(error[seen] ** 2))),
        "log_reward_rmse_unseen": float(np.sqrt(np.mean(error[unseen] ** 2))),
        "calibrated_rmse_unseen": float(np.sqrt(np.mean(calibrated[unseen] ** 2))),
        "lengths": [int(k) for k in lengths],
        "log_reward_rmse_by_length": by_length,
        "calibrated_rmse_by_length": calibrated_by_length,
        "total_mass": float(p_model.sum()),
        "log_z_model": float(log_z_model),
        "log_z_target": float(np.logaddexp.reduce(log_reward)),
    }


@dataclass
class LengthRun:
    """One objective's run on one split and seed."""

    loss: str
    seed: int
    ndim: int
    height: int
    max_length: int
    iterations: int
    seconds: float = 0.0
    loss_history: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    terminal: list[float] | None = None  # P_T of the model, kept for 2-D maps only

    def summary(self) -> dict:
        return asdict(self)


def run_split(
    loss: str, ndim: int, height: int, max_length: int, settings: OfflineSettings, seed: int,
    R0: float = 0.1, keep_terminal: bool = False, progress: bool = True,
) -> LengthRun:  # fmt: skip
    """Train ``loss`` on the split ‖x‖₁ <= L of the (d, H) grid and measure it exactly."""
    env = make_grid(ndim, height, R0)
    seen = seen_mask(ndim, height, max_length)
    started = time.perf_counter()
    gflownet, history = train_offline(loss, env, seen, settings, seed, progress)
    seconds = time.perf_counter() - started
    p_model = terminal_distribution(policy_table(gflownet, env), ndim, height)
    log_reward = grid_log_reward(env)
    metrics = generalisation_metrics(
        p_model, log_partition(gflownet, env), log_reward, seen, levels(ndim, height)
    )
    if not all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)):
        raise FloatingPointError(f"{loss}: non-finite metrics {metrics}")
    return LengthRun(
        loss, seed, ndim, height, max_length, settings.n_iterations, seconds, history, metrics,
        p_model.tolist() if keep_terminal else None,
    )  # fmt: skip
