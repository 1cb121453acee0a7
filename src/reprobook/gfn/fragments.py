"""Fragment-based molecule generation on torchgfn, with the paper's baselines.

``FragmentEnv`` is a torchgfn ``DiscreteEnv`` over the molecules of a
``reprobook.chem.space.FragmentSpace``: a state is (scaffold, s_1, ..., s_4) with -1 for "not
chosen yet". The first action picks the scaffold, the next four fill the sites in any order, and
"exit" is allowed once every site is filled, so each molecule is reached by 4! trajectories and
the backward policy is uniform over the filled sites (the scaffold can be undone only when no
site is filled). The log-reward is a function of flat molecule indices, called on what the
samplers draw (the space is too large to tabulate).

Samplers, each recording the molecules it draws in order:

- ``train_tb``: a TB GFlowNet (uniform P_B, learned log Z) whose trajectories come from an EMA
  copy of the forward policy (``sampling_tau``) with a small random-action probability, as the
  paper's fragment GFlowNet.
- ``train_sql``: soft Q-learning as the official baseline: Q(s, .) from the same network shape,
  target r / alpha at the exit (r = R^beta), the soft value logsumexp Q(s', .) of the same
  network elsewhere (gamma = 1, no target network), squared error; sampling softmax(Q) from an
  EMA copy.
- ``uniform_sample``: random molecules, uniform over the space (what uniform random actions give,
  since every scaffold has the same number of sites).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from gfn.env import DiscreteEnv, DiscreteStates
from gfn.estimators import DiscretePolicyEstimator
from gfn.gflownet import TBGFlowNet
from gfn.preprocessors import Preprocessor
from gfn.samplers import Sampler
from gfn.utils.modules import MLP, DiscreteUniform
from tqdm.std import tqdm

from reprobook.chem.space import N_SITES, FragmentSpace

EMPTY, SINK = -1, -2


class FragmentEnv(DiscreteEnv):
    """Scaffold first, then the four sites in any order, then exit (see the module doc)."""

    def __init__(
        self, space: FragmentSpace, log_reward: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        if not callable(log_reward):
            raise ValueError("log_reward must be a function of flat molecule indices")
        self.space = space
        self.n_scaffolds, self.n_substituents = space.n_scaffolds, space.n_substituents
        self.log_reward_fn = log_reward
        n_actions = self.n_scaffolds + N_SITES * self.n_substituents + 1
        s0 = torch.full((1 + N_SITES,), EMPTY, dtype=torch.long)
        sf = torch.full((1 + N_SITES,), SINK, dtype=torch.long)
        super().__init__(n_actions=n_actions, s0=s0, state_shape=(1 + N_SITES,), sf=sf)

    def make_states_class(self) -> type[DiscreteStates]:
        env = self
        n_sc, k = self.n_scaffolds, self.n_substituents

        class FragmentStates(DiscreteStates):
            state_shape = (1 + N_SITES,)
            s0 = env.s0
            sf = env.sf
            make_random_states = env.make_random_states
            n_actions = env.n_actions

            def _compute_forward_masks(self) -> torch.Tensor:
                t = self.tensor
                masks = torch.zeros((*self.batch_shape, env.n_actions), dtype=torch.bool)
                no_scaffold = t[..., 0] == EMPTY
                has_scaffold = t[..., 0] >= 0
                masks[..., :n_sc] = no_scaffold.unsqueeze(-1)
                empty_sites = (t[..., 1:] == EMPTY) & has_scaffold.unsqueeze(-1)
                masks[..., n_sc:-1] = empty_sites.repeat_interleave(k, dim=-1)
                masks[..., -1] = has_scaffold & (t[..., 1:] >= 0).all(-1)
                return masks

            def _compute_backward_masks(self) -> torch.Tensor:
                t = self.tensor
                masks = torch.zeros((*self.batch_shape, env.n_actions - 1), dtype=torch.bool)
                no_site = (t[..., 1:] == EMPTY).all(-1)
                scaffold_onehot = torch.nn.functional.one_hot(t[..., 0].clamp(min=0), n_sc).bool()
                masks[..., :n_sc] = scaffold_onehot & (no_site & (t[..., 0] >= 0)).unsqueeze(-1)
                site_onehot = torch.nn.functional.one_hot(t[..., 1:].clamp(min=0), k).bool()
                site_onehot &= (t[..., 1:] >= 0).unsqueeze(-1)
                masks[..., n_sc:] = site_onehot.flatten(-2)
                return masks

        return FragmentStates

    def _decode(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = actions.squeeze(-1)
        is_scaffold = a < self.n_scaffolds
        site_action = (a - self.n_scaffolds).clamp(min=0)
        return is_scaffold, site_action // self.n_substituents, site_action % self.n_substituents

    def step(self, states: DiscreteStates, actions) -> DiscreteStates:
        t = states.tensor.clone()
        is_scaffold, site, value = self._decode(actions.tensor)
        rows = torch.arange(len(t))
        t[rows[is_scaffold], 0] = actions.tensor.squeeze(-1)[is_scaffold]
        sites = ~is_scaffold
        t[rows[sites], 1 + site[sites]] = value[sites]
        return self.States(t)

    def backward_step(self, states: DiscreteStates, actions) -> DiscreteStates:
        t = states.tensor.clone()
        is_scaffold, site, _ = self._decode(actions.tensor)
        rows = torch.arange(len(t))
        t[rows[is_scaffold], 0] = EMPTY
        sites = ~is_scaffold
        t[rows[sites], 1 + site[sites]] = EMPTY
        return self.States(t)

    def terminal_index(self, final_states: torch.Tensor) -> np.ndarray:
        """Flat molecule index of complete states ``[n, 1 + N_SITES]``."""
        return self.space.index(final_states.numpy())

    def log_reward(self, final_states: DiscreteStates) -> torch.Tensor:
        values = np.asarray(self.log_reward_fn(self.terminal_index(final_states.tensor)))
        if not np.isfinite(values).all():
            raise ValueError("log_reward returned a non-finite value (rewards must be > 0)")
        return torch.as_tensor(values, dtype=torch.get_default_dtype())


class FragmentPreprocessor(Preprocessor):
    """One-hot of each position's choice, "empty" being its own category."""

    def __init__(self, space: FragmentSpace) -> None:
        self.sizes = [space.n_scaffolds + 1] + [space.n_substituents + 1] * N_SITES
        super().__init__(output_dim=sum(self.sizes))

    def preprocess(self, states) -> torch.Tensor:
        t = states.tensor.clamp(min=EMPTY) + 1
        parts = [torch.nn.functional.one_hot(t[..., i], n) for i, n in enumerate(self.sizes)]
        return torch.cat(parts, -1).float()


@dataclass
class SamplerSettings:
    n_iterations: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    lr_logz: float = 1e-2
    beta: float = 64.0
    sampling_tau: float = 0.95
    random_action_prob: float = 0.01
    sql_alpha: float = 0.01
    hidden_dim: int = 128
    n_layers: int = 2
    clip_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        for name in ("n_iterations", "batch_size", "hidden_dim", "n_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lr_logz <= 0 or self.beta <= 0 or self.sql_alpha <= 0:
            raise ValueError("lr, lr_logz, beta and sql_alpha must be > 0")
        if not 0 <= self.sampling_tau < 1 or not 0 <= self.random_action_prob <= 1:
            raise ValueError("sampling_tau must be in [0, 1) and random_action_prob in [0, 1]")


@dataclass
class SamplerRun:
    """The molecules a sampler drew, in order, and what its training cost."""

    method: str
    drawn: np.ndarray  # flat molecule indices, in sampling order
    losses: list[float] = field(default_factory=list)
    log_z: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _forward_module(
    env: FragmentEnv, settings: SamplerSettings
) -> tuple[MLP, FragmentPreprocessor]:
    pre = FragmentPreprocessor(env.space)
    module = MLP(
        input_dim=pre.output_dim, output_dim=env.n_actions, hidden_dim=settings.hidden_dim,
        n_hidden_layers=settings.n_layers, activation_fn="leaky_relu",
    )  # fmt: skip
    return module, pre


def _ema(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p_t, p_s in zip(target.parameters(), source.parameters(), strict=True):
            p_t.mul_(tau).add_(p_s, alpha=1 - tau)


@torch.no_grad()
def _draw(sampler: Sampler, env: FragmentEnv, settings: SamplerSettings):
    """One batch of trajectories from the sampling (EMA) policy, with random actions."""
    return sampler.sample_trajectories(
        env, n=settings.batch_size, epsilon=settings.random_action_prob
    )


def build_tb(env: FragmentEnv, settings: SamplerSettings) -> TBGFlowNet:
    """TB GFlowNet: MLP forward policy on the one-hot state, uniform backward policy."""
    module, pre = _forward_module(env, settings)
    pf = DiscretePolicyEstimator(module, env.n_actions, preprocessor=pre)
    pb = DiscretePolicyEstimator(
        DiscreteUniform(env.n_actions - 1), env.n_actions, preprocessor=pre, is_backward=True
    )
    return TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)


def train_tb(
    env: FragmentEnv, settings: SamplerSettings, seed: int, progress: bool = False
) -> SamplerRun:
    """Train TB on log R^beta = beta * log R (the env holds log R); record every molecule drawn."""
    torch.manual_seed(seed)
    gfn = build_tb(env, settings)
    sampling_pf = copy.deepcopy(gfn.pf)
    sampler = Sampler(sampling_pf)
    opt = torch.optim.Adam(
        [
            {"params": list(gfn.pf_pb_parameters()), "lr": settings.lr},
            {"params": list(gfn.logz_parameters()), "lr": settings.lr_logz},
        ]
    )
    run, drawn = SamplerRun("gfn", np.empty(0, dtype=np.int64)), []
    started = time.perf_counter()
    for _ in tqdm(range(settings.n_iterations), desc="TB", disable=not progress, mininterval=10):
        traj = _draw(sampler, env, settings)
        log_r = settings.beta * traj.log_rewards.detach()
        scores = gfn.get_scores(traj, recalculate_all_logprobs=True, log_rewards=log_r)
        loss = ((scores + gfn.logZ) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gfn.parameters(), settings.clip_grad_norm)
        opt.step()
        _ema(sampling_pf.module, gfn.pf.module, settings.sampling_tau)
        drawn.append(env.terminal_index(traj.terminating_states.tensor))
        run.losses.append(float(loss.detach()))
        run.log_z.append(float(gfn.logZ.detach()))
    run.drawn, run.seconds = np.concatenate(drawn), time.perf_counter() - started
    return run


def _soft_value(q: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return q.masked_fill(~masks, float("-inf")).logsumexp(-1)


def train_sql(
    env: FragmentEnv, settings: SamplerSettings, seed: int, progress: bool = False
) -> SamplerRun:
    """Soft Q-learning on r = R^beta (see the module doc); record every molecule drawn."""
    torch.manual_seed(seed)
    module, pre = _forward_module(env, settings)
    sampling_module = copy.deepcopy(module)
    sampler = Sampler(DiscretePolicyEstimator(sampling_module, env.n_actions, preprocessor=pre))
    opt = torch.optim.Adam(module.parameters(), lr=settings.lr)
    run, drawn = SamplerRun("sql", np.empty(0, dtype=np.int64)), []
    started = time.perf_counter()
    for _ in tqdm(range(settings.n_iterations), desc="SQL", disable=not progress, mininterval=10):
        traj = _draw(sampler, env, settings)
        valid = ~traj.actions.is_dummy  # [T, B] transitions that happened
        states, actions = traj.states[:-1][valid], traj.actions.tensor[valid].squeeze(-1)
        next_states = traj.states[1:][valid]
        is_exit = actions == env.n_actions - 1
        q = module(pre(states))
        q_sa = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        target = torch.zeros_like(q_sa)
        with torch.no_grad():
            r = torch.exp(settings.beta * env.log_reward(states[is_exit]))
            target[is_exit] = r / settings.sql_alpha
            cont = ~is_exit
            q_next = module(pre(next_states[cont]))
            target[cont] = _soft_value(q_next, next_states[cont].forward_masks)
        loss = ((q_sa - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), settings.clip_grad_norm)
        opt.step()
        _ema(sampling_module, module, settings.sampling_tau)
        drawn.append(env.terminal_index(traj.terminating_states.tensor))
        run.losses.append(float(loss.detach()))
    run.drawn, run.seconds = np.concatenate(drawn), time.perf_counter() - started
    return run


def uniform_sample(space: FragmentSpace, n: int, rng: np.random.Generator) -> SamplerRun:
    """``n`` molecules uniformly at random from the space."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return SamplerRun("random", rng.integers(0, space.size, n))
