"""Teacher-student GFlowNet training on the deceptive grid (Kim, Choi et al., 2025), on torchgfn.

Four arms share one loop so they differ only where the method does:

- ``tb``: trajectory balance (TB), on-policy.
- ``tb_eps``: TB sampling from an epsilon-uniform mixture of the forward policy.
- ``tb_prt``: TB whose every other batch is replayed from a rank-prioritised buffer of terminal
  states (priority = reward, "PRT"), each replayed state given a fresh backward trajectory under
  the uniform backward policy; as in the official runs it gets twice the iterations, so it
  samples as many new trajectories as the others.
- ``teacher``: the student is TB; a second TB GFlowNet (the teacher) is trained on the same
  batch with reward R_T = log(1 + 1e-3 + delta^2 (1 + C 1[delta > 0])) * R^alpha, where delta is
  the student's TB residual on that trajectory computed *before* the student's update. Batches
  come from the student and the teacher in turn, two iterations each.

Only trajectories sampled afresh count as samples (for modes found and L1); replayed ones do not.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import torch
from gfn.estimators import DiscretePolicyEstimator
from gfn.gflownet import TBGFlowNet
from gfn.gym import HyperGrid
from gfn.preprocessors import KHotPreprocessor
from gfn.samplers import Sampler
from gfn.utils.modules import MLP, DiscreteUniform
from tqdm.std import tqdm

from reprobook.gfn.grid import (
    empirical_l1,
    mode_mask,
    official_log_pb_shift,
    state_index,
    target_distribution,
    terminal_mask,
)

ARMS = ("tb", "tb_eps", "tb_prt", "teacher")
BACKWARD_POLICIES = ("official", "valid")
ARM_LABELS = {
    "tb": "TB",
    "tb_eps": "TB + ε-greedy",
    "tb_prt": "TB + PRT buffer",
    "teacher": "Teacher",
}


def teacher_reward(
    delta: torch.Tensor, reward: torch.Tensor, C: float = 19.0, alpha: float = 0.0
) -> torch.Tensor:
    """The teacher's reward log(1 + 1e-3 + delta^2 (1 + C 1[delta > 0])) * R^alpha.

    ``delta`` = log R + log P_B(tau|x) - log Z - log P_F(tau) is the student's TB residual:
    delta > 0 marks an under-sampled x, weighted (1 + C) times more than an over-sampled one.
    """
    if delta.shape != reward.shape:
        raise ValueError(f"delta and reward must have one shape, got {delta.shape}, {reward.shape}")
    if C < 0:
        raise ValueError(f"C must be >= 0, got {C}")
    if (reward <= 0).any():
        raise ValueError("rewards must be positive")
    weight = 1 + torch.where(delta > 0, C, 0.0)
    return torch.log1p(1e-3 + delta**2 * weight) * reward**alpha


def policy_estimators(
    env: HyperGrid, hidden_dim: int = 256, n_layers: int = 2
) -> tuple[DiscretePolicyEstimator, DiscretePolicyEstimator]:
    """The grid GFlowNets' policies: a LeakyReLU MLP forward policy on the one-hot (K-hot) state
    and the uniform backward policy (over the parents the environment's backward masks allow)."""
    preprocessor = KHotPreprocessor(env.height, env.ndim)
    forward_module = MLP(
        input_dim=preprocessor.output_dim,
        output_dim=env.n_actions,
        hidden_dim=hidden_dim,
        n_hidden_layers=n_layers,
        activation_fn="leaky_relu",  # as the official grid MLP (nn.LeakyReLU, slope 0.01)
    )
    pf = DiscretePolicyEstimator(forward_module, env.n_actions, preprocessor=preprocessor)
    pb = DiscretePolicyEstimator(
        DiscreteUniform(env.n_actions - 1), env.n_actions, preprocessor=preprocessor,
        is_backward=True,
    )  # fmt: skip
    return pf, pb


def build_tb_gflownet(env: HyperGrid, hidden_dim: int = 256, n_layers: int = 2) -> TBGFlowNet:
    """A TB GFlowNet on ``policy_estimators`` with log Z initialised at 0."""
    pf, pb = policy_estimators(env, hidden_dim, n_layers)
    return TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)


class RankPrioritizedBuffer:
    """FIFO buffer of distinct terminal states, sampled with weight 1 / (k N + rank).

    rank 0 is the highest priority and N the buffer's size (rank-based prioritisation with
    ``rank_weight`` k = 1e-2, as in the official grid code); re-adding a state refreshes it.
    """

    def __init__(self, capacity: int, rank_weight: float = 1e-2) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if rank_weight <= 0:
            raise ValueError(f"rank_weight must be > 0, got {rank_weight}")
        self.capacity, self.rank_weight = capacity, rank_weight
        self._items: OrderedDict[tuple[int, ...], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, states: torch.Tensor, priorities: torch.Tensor) -> None:
        for state, priority in zip(states.tolist(), priorities.tolist(), strict=True):
            key = tuple(state)
            if key in self._items:
                del self._items[key]
            elif len(self._items) >= self.capacity:
                self._items.popitem(last=False)
            self._items[key] = float(priority)

    def weights(self) -> np.ndarray:
        """Sampling probabilities of the stored states, in insertion order."""
        priorities = np.fromiter(self._items.values(), dtype=np.float64)
        ranks = np.argsort(np.argsort(-priorities))  # numpy's default sort, as the official code
        weights = 1.0 / (self.rank_weight * len(priorities) + ranks)
        return weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        if not self._items:
            raise ValueError("cannot sample from an empty buffer")
        keys = list(self._items)
        picks = rng.choice(len(keys), size=n, replace=True, p=self.weights())
        return torch.tensor([keys[i] for i in picks], dtype=torch.long)


def buffer_capacity(ndim: int, height: int) -> int:
    """The official default: 0.1 (H - 1 + d) (H - 1)^(d - 1)."""
    return max(1, int(0.1 * (height - 1 + ndim) * (height - 1) ** (ndim - 1)))


@dataclass
class TrainSettings:
    """One arm's training settings (defaults: the official grid code's)."""

    n_iterations: int
    batch_size: int = 16
    lr: float = 1e-3
    lr_logz: float = 1e-1
    clip_grad_norm: float = 1.0
    epsilon: float = 0.01  # used by tb_eps only
    C: float = 19.0
    alpha: float = 0.0
    rank_weight: float = 1e-2
    # "official": the official trainer's uniform P_B over every coordinate above 0 (see
    # ``grid.official_log_pb_shift``); "valid": uniform over the parents that can occur.
    backward: str = "official"
    hidden_dim: int = 256
    n_layers: int = 2
    record_every: int = 5
    train_l1_window: int = 10_000
    eval_samples: int = 100_000
    eval_batch: int = 1_000

    def __post_init__(self) -> None:
        sizes = ("n_iterations", "batch_size", "record_every", "eval_batch", "eval_samples",
                 "hidden_dim", "n_layers", "train_l1_window")  # fmt: skip
        for name in sizes:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.backward not in BACKWARD_POLICIES:
            raise ValueError(
                f"backward must be one of {', '.join(BACKWARD_POLICIES)}, got {self.backward!r}"
            )


@dataclass
class ArmRun:
    """What one arm's training produced."""

    arm: str
    seed: int
    n_mode_states: int
    samples: list[int] = field(default_factory=list)  # trajectories sampled so far
    modes_found: list[int] = field(default_factory=list)  # distinct mode states visited so far
    visit_counts: np.ndarray | None = None  # per state, over all sampled trajectories
    train_l1: dict[str, float] = field(default_factory=dict)  # last ``train_l1_window`` samples
    eval_l1: dict[str, float] = field(default_factory=dict)  # fresh samples of the final student
    eval_modes: int = 0  # distinct modes among the fresh samples
    # Distinct modes among the batches the student sampled itself (all but the teacher's).
    student_modes: int = 0
    # Modes found once the student has taken ``TrainSettings.n_iterations`` gradient steps: the
    # final count for every arm but PRT, which by then has drawn half its samples.
    modes_at_equal_steps: int = 0
    seconds: float = 0.0
    iterations: int = 0

    def summary(self) -> dict:
        return {
            "arm": self.arm, "seed": self.seed, "samples": self.samples,
            "modes_found": self.modes_found, "final_modes": self.modes_found[-1],
            "n_mode_states": self.n_mode_states, "train_l1": self.train_l1,
            "eval_l1": self.eval_l1, "eval_modes": self.eval_modes, "seconds": self.seconds,
            "student_modes": self.student_modes,
            "modes_at_equal_steps": self.modes_at_equal_steps,
            "iterations": self.iterations,
            "ms_per_iteration": 1000 * self.seconds / max(self.iterations, 1),
            "samples_to_all_modes": next(
                (n for n, m in zip(self.samples, self.modes_found, strict=True)
                 if m == self.n_mode_states), None,
            ),
        }  # fmt: skip


def _optimizer(gflownet: TBGFlowNet, settings: TrainSettings) -> torch.optim.Adam:
    return torch.optim.Adam(
        [
            {"params": gflownet.pf_pb_parameters(), "lr": settings.lr},
            {"params": gflownet.logz_parameters(), "lr": settings.lr_logz},
        ]
    )


def _tb_step(
    gflownet: TBGFlowNet, optimizer: torch.optim.Adam, trajectories, clip: float,
    log_rewards: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """One TB step; returns the residuals delta = -(log P_F - log P_B - log R + log Z) before it."""
    scores = gflownet.get_scores(
        trajectories, recalculate_all_logprobs=True, log_rewards=log_rewards
    )
    residual = scores + gflownet.logZ
    loss = (residual**2).mean()
    optimizer.zero_grad()
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(gflownet.parameters(), clip)
    optimizer.step()
    return -residual.detach()


def train_arm(
    arm: str, env: HyperGrid, settings: TrainSettings, seed: int, progress: bool = True
) -> ArmRun:
    """Train one arm from a seeded initialisation; record modes found against samples drawn."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid arms: {', '.join(ARMS)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    student = build_tb_gflownet(env, settings.hidden_dim, settings.n_layers)
    student_opt = _optimizer(student, settings)
    student_sampler = Sampler(student.pf)
    if arm == "teacher":
        teacher = build_tb_gflownet(env, settings.hidden_dim, settings.n_layers)
        teacher_opt = _optimizer(teacher, settings)
        teacher_sampler = Sampler(teacher.pf)
    buffer = backward_sampler = None
    if arm == "tb_prt":
        buffer = RankPrioritizedBuffer(buffer_capacity(env.ndim, env.height), settings.rank_weight)
        backward_sampler = Sampler(student.pb)
    epsilon = settings.epsilon if arm == "tb_eps" else 0.0
    n_iterations = settings.n_iterations * (2 if arm == "tb_prt" else 1)

    is_mode = mode_mask(env.ndim, env.height)
    counts = np.zeros(env.height**env.ndim, dtype=np.int64)
    seen_by_student = np.zeros(counts.size, dtype=bool)
    recent: deque[np.ndarray] = deque()
    recent_n = 0
    run = ArmRun(arm, seed, int(is_mode.sum()), samples=[0], modes_found=[0])
    n_sampled = 0
    started = time.perf_counter()
    for i in tqdm(range(n_iterations), desc=arm, disable=not progress, mininterval=10):
        replay = buffer is not None and i % 2 == 1 and len(buffer) > 0
        from_teacher = arm == "teacher" and (i // 2) % 2 == 1
        if replay:
            states = env.States(buffer.sample(settings.batch_size, rng))
            trajectories = backward_sampler.sample_trajectories(env, states=states)
            trajectories = trajectories.reverse_backward_trajectories()
        elif from_teacher:
            trajectories = teacher_sampler.sample_trajectories(env, n=settings.batch_size)
        else:
            trajectories = student_sampler.sample_trajectories(
                env, n=settings.batch_size, epsilon=epsilon
            )
        final = trajectories.terminating_states.tensor
        log_reward = trajectories.log_rewards.detach()
        shift = 0.0  # log P_B of the official trainer minus ours, moved into log R
        if settings.backward == "official":
            shift = official_log_pb_shift(final, env.height)
        delta = _tb_step(
            student, student_opt, trajectories, settings.clip_grad_norm, log_reward + shift
        )
        if arm == "teacher":
            r_teacher = teacher_reward(delta, log_reward.exp(), settings.C, settings.alpha)
            _tb_step(
                teacher, teacher_opt, trajectories, settings.clip_grad_norm,
                r_teacher.log() + shift,
            )  # fmt: skip
        if not replay:
            index = state_index(final, env.height).numpy()
            np.add.at(counts, index, 1)
            if not from_teacher:
                seen_by_student[index] = True
            recent.append(index)
            recent_n += len(index)
            while recent_n - len(recent[0]) >= settings.train_l1_window:
                recent_n -= len(recent.popleft())
            n_sampled += len(index)
            if buffer is not None:
                buffer.add(final, log_reward.exp())
        if i + 1 == settings.n_iterations:
            run.modes_at_equal_steps = int((counts[is_mode] > 0).sum())
        if (i + 1) % settings.record_every == 0 or i + 1 == n_iterations:
            run.samples.append(n_sampled)
            run.modes_found.append(int((counts[is_mode] > 0).sum()))
    run.seconds = time.perf_counter() - started
    run.iterations = n_iterations
    run.visit_counts = counts
    run.student_modes = int(seen_by_student[is_mode].sum())
    terminal = terminal_mask(env.ndim, env.height)  # L1 averages over reachable states only
    target = target_distribution(env.ndim, env.height)[terminal]
    window = np.bincount(np.concatenate(recent), minlength=counts.size)
    run.train_l1 = empirical_l1(window[terminal], target)
    eval_counts = sample_counts(student, env, settings.eval_samples, settings.eval_batch)
    run.eval_l1 = empirical_l1(eval_counts[terminal], target)
    run.eval_modes = int((eval_counts[is_mode] > 0).sum())
    return run


@torch.no_grad()
def sample_counts(gflownet: TBGFlowNet, env: HyperGrid, n: int, batch: int = 1_000) -> np.ndarray:
    """Visit counts per state of ``n`` fresh on-policy samples of ``gflownet`` (no exploration)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    sampler = Sampler(gflownet.pf)
    counts = np.zeros(env.height**env.ndim, dtype=np.int64)
    for start in range(0, n, batch):
        final = sampler.sample_trajectories(env, n=min(batch, n - start)).terminating_states
        np.add.at(counts, state_index(final.tensor, env.height).numpy(), 1)
    return counts
