"""The exploding bandit, with an exact Bayesian posterior over every hypothesis.

Arms have binary features x_a in {0..k-1}^d and the world has weights w in {0..k-1}^d, so there
are k^d hypotheses (1024 for k=2, d=10). A pull of arm a pays r ~ N(w·x_a, sigma) and "explodes"
(harm, the episode ends) when r > threshold. Everything is batched over episodes: tensors are
[episodes, arms, hypotheses], so no Python loop ever runs over episodes or hypotheses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import torch


@dataclass(frozen=True)
class BanditSpec:
    """Sizes of the exploding bandit; the defaults are the paper's."""

    n_arms: int = 10
    n_features: int = 10
    k: int = 2
    reward_std: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_arms", "n_features", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.k < 2:
            raise ValueError(f"k must be at least 2 (feature values 0..k-1), got {self.k}")
        if self.k**self.n_features > 2**16:
            raise ValueError(
                f"{self.k**self.n_features} hypotheses: too many for an exact posterior"
            )
        if not self.reward_std > 0:
            raise ValueError(f"reward_std must be positive, got {self.reward_std}")

    @property
    def n_hypotheses(self) -> int:
        return self.k**self.n_features


def all_hypotheses(spec: BanditSpec) -> torch.Tensor:
    """Every weight vector, as a float tensor [k^d, d]; row i is hypothesis i."""
    rows = itertools.product(range(spec.k), repeat=spec.n_features)
    return torch.tensor(list(rows), dtype=torch.float32)


def estimate_threshold(
    spec: BanditSpec, n_bandits: int = 100, generator: torch.Generator | None = None
) -> float:
    """The explosion threshold: round(mean over random bandits of the largest arm mean).

    Rounding to an integer makes arms whose mean sits exactly on the threshold common; their
    harm probability is exactly 1/2 (the paper's "50/50" arms).
    """
    if n_bandits < 1:
        raise ValueError(f"n_bandits must be positive, got {n_bandits}")
    w = torch.randint(0, spec.k, (n_bandits, spec.n_features), generator=generator).float()
    x = torch.randint(0, spec.k, (n_bandits, spec.n_arms, spec.n_features), generator=generator)
    arm_means = torch.einsum("bd,bad->ba", w, x.float())
    return float(torch.round(arm_means.max(dim=1).values.mean()))


@dataclass
class BanditBatch:
    """A batch of bandits, one per episode, drawn from the uniform prior.

    Arm means are integers (integer weights times integer features), so they are stored as
    ``levels`` [E, A, H]: the mean of arm a under hypothesis tau, for every hypothesis.
    """

    features: torch.Tensor  # [E, A, d]
    true_index: torch.Tensor  # [E], index of the true hypothesis
    levels: torch.Tensor  # [E, A, H], integer arm means implied by every hypothesis

    @property
    def n_episodes(self) -> int:
        return self.features.shape[0]

    @cached_property
    def true_means(self) -> torch.Tensor:
        """[E, A] the arm means under the true hypothesis."""
        idx = self.true_index[:, None, None].expand(-1, self.levels.shape[1], 1)
        return self.levels.gather(2, idx).squeeze(2).float()

    def subset(self, keep: torch.Tensor) -> BanditBatch:
        return BanditBatch(self.features[keep], self.true_index[keep], self.levels[keep])


def sample_bandits(
    spec: BanditSpec, n_episodes: int, hypotheses: torch.Tensor, generator: torch.Generator
) -> BanditBatch:
    """Draw ``n_episodes`` bandits: true weights uniform over hypotheses, features uniform."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be positive, got {n_episodes}")
    if hypotheses.shape != (spec.n_hypotheses, spec.n_features):
        raise ValueError(
            f"hypotheses must have shape {(spec.n_hypotheses, spec.n_features)}, "
            f"got {tuple(hypotheses.shape)}"
        )
    true_index = torch.randint(0, spec.n_hypotheses, (n_episodes,), generator=generator)
    features = torch.randint(
        0, spec.k, (n_episodes, spec.n_arms, spec.n_features), generator=generator
    ).float()
    means = torch.einsum("ead,hd->eah", features, hypotheses)
    dtype = torch.int8 if (spec.k - 1) ** 2 * spec.n_features <= 127 else torch.int16
    return BanditBatch(features, true_index, means.round().to(dtype))


def log_harm_probability(means: torch.Tensor, threshold: float, reward_std: float) -> torch.Tensor:
    """log P(r > threshold | mean) for r ~ N(mean, reward_std), computed in log space.

    P(harm | a, tau) = 1 - Phi((threshold - tau·x_a) / sigma) = Phi((tau·x_a - threshold) / sigma).
    """
    if not reward_std > 0:
        raise ValueError(f"reward_std must be positive, got {reward_std}")
    return torch.special.log_ndtr((means - threshold) / reward_std)


@dataclass
class HarmTables:
    """P(H | a, tau) for a batch, looked up by integer arm mean ("level").

    ``log_harm_of_level[v]`` is log P(harm) for an arm of mean v; it increases with v, which the
    non-i.i.d. estimator uses (the most harmful plausible theory is the one with the highest mean).
    Dense [E, A, H] tables are built only when an estimator needs them.
    """

    levels: torch.Tensor  # [E, A, H] integer
    log_harm_of_level: torch.Tensor  # [n_levels]
    _dense: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, bandits: BanditBatch, threshold: float, reward_std: float) -> HarmTables:
        if int(bandits.levels.min()) < 0:  # non_iid_from_mask's masked max needs means >= 0
            raise ValueError("arm means must be non-negative integers")
        n_levels = int(bandits.levels.max()) + 1
        levels = torch.arange(n_levels, dtype=torch.float32)
        return cls(bandits.levels, log_harm_probability(levels, threshold, reward_std))

    def lookup(self, levels: torch.Tensor) -> torch.Tensor:
        return self.log_harm_of_level[levels.long()]

    def log_harm(self) -> torch.Tensor:
        """Dense log P(H | a, tau) [E, A, H], built once and kept."""
        if "log" not in self._dense:
            self._dense["log"] = self.lookup(self.levels)
        return self._dense["log"]

    def harm(self) -> torch.Tensor:
        """Dense P(H | a, tau) [E, A, H], built once and kept."""
        if "prob" not in self._dense:
            self._dense["prob"] = self.log_harm().exp()
        return self._dense["prob"]

    def subset(self, keep: torch.Tensor) -> HarmTables:
        dense = {k: v[keep] for k, v in self._dense.items()}
        return HarmTables(self.levels[keep], self.log_harm_of_level, dense)


PRIORS = ("correct", "truth-excluded", "optimistic")


def log_prior(kind: str, bandits: BanditBatch) -> torch.Tensor:
    """The agent's log prior [E, H] over hypotheses.

    - ``correct``: uniform, the prior the bandits are really drawn from (the paper's setting).
    - ``truth-excluded``: uniform over every hypothesis but the true one (zero mass on the truth).
    - ``optimistic``: zero mass on the truth and on every theory at least as dangerous as it; the
      support is the theories that predict every arm's mean <= its true mean and some arm's mean
      strictly lower (a prior written by someone sure the world is safer than it is). Episodes
      where no such theory exists (all true means 0) fall back to ``truth-excluded``.
    """
    if kind not in PRIORS:
        raise ValueError(f"unknown prior {kind!r}; choose one of {', '.join(PRIORS)}")
    n, n_hyp = bandits.n_episodes, bandits.levels.shape[2]
    support = torch.ones(n, n_hyp, dtype=torch.bool)
    if kind != "correct":
        support[torch.arange(n), bandits.true_index] = False
    if kind == "optimistic":
        true_levels = bandits.true_means.to(bandits.levels.dtype)[:, :, None]
        safer = (bandits.levels <= true_levels).all(dim=1) & (bandits.levels < true_levels).any(
            dim=1
        )
        has_any = safer.any(dim=1, keepdim=True)
        support = torch.where(has_any, safer, support)
    log_p = torch.where(support, 0.0, float("-inf"))
    return log_p - torch.logsumexp(log_p, dim=1, keepdim=True)


def update_log_posterior(
    log_posterior: torch.Tensor,
    predicted_means: torch.Tensor,
    rewards: torch.Tensor,
    reward_std: float,
) -> torch.Tensor:
    """One exact Bayes step: add the Gaussian log-likelihood of each reward, renormalise.

    ``log_posterior`` and ``predicted_means`` are [E, H] (the mean each hypothesis predicts for the
    arm pulled); ``rewards`` is [E].
    """
    if (
        log_posterior.dim() != 2
        or log_posterior.shape != predicted_means.shape
        or rewards.shape != log_posterior.shape[:1]
    ):
        raise ValueError(
            "shapes must be log_posterior [E, H], predicted_means [E, H], rewards [E]; got "
            f"{tuple(log_posterior.shape)}, {tuple(predicted_means.shape)}, {tuple(rewards.shape)}"
        )
    log_lik = -0.5 * ((rewards[:, None] - predicted_means) / reward_std) ** 2
    unnormalised = log_posterior + log_lik
    return unnormalised - torch.logsumexp(unnormalised, dim=1, keepdim=True)
