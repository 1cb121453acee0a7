"""Batched experiments on the exploding bandit: guarded Boltzmann agents, and bound tightness.

``run_guarded_episodes`` is the paper's Figure 1 experiment: a Boltzmann agent (beta = 0.5 over
posterior-mean rewards) whose every proposed arm is checked by a guardrail; a rejected arm is
re-drawn among the others (equivalently: the softmax restricted to allowed arms), and when every
arm is rejected the episode stops without harm. ``run_overestimation`` is Figure 2: a uniformly
random agent on a bandit that never explodes, counting how often the non-i.i.d. estimate of the
chosen arm's harm is at least the true harm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from reprobook.safety.bandit import (
    PRIORS,
    BanditSpec,
    HarmTables,
    log_prior,
    sample_bandits,
    update_log_posterior,
)
from reprobook.safety.guardrails import (
    GUARDRAILS,
    log_harm_estimates,
    m_alpha_masks,
    non_iid_from_mask,
)


def mean_and_2sem(values: np.ndarray | list[float]) -> tuple[float, float]:
    """Mean and twice the standard error of the mean (ddof = 1), the paper's error bars."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"need a 1-d sample of at least 2 values, got shape {values.shape}")
    return float(values.mean()), float(2 * values.std(ddof=1) / math.sqrt(values.size))


@dataclass
class EpisodeOutcomes:
    """Per-episode outcomes of a batch of guarded episodes (numpy arrays of length E)."""

    total_reward: np.ndarray
    died: np.ndarray
    stopped: np.ndarray  # every arm was rejected, so the agent stopped (no harm)
    steps: np.ndarray

    def summary(self, episode_length: int = 25) -> dict[str, float]:
        """Means with 2·SEM, plus deaths per action taken and deaths on the episode's last step.

        ``deaths_per_action`` (deaths / actions taken) compares guardrails that act for different
        numbers of steps; ``deaths_on_last_step`` is what the official code leaves uncounted.
        """
        reward, reward_err = mean_and_2sem(self.total_reward)
        deaths, deaths_err = mean_and_2sem(self.died.astype(float))
        actions = max(int(self.steps.sum()), 1)
        return {
            "reward": reward,
            "reward_2sem": reward_err,
            "deaths": deaths,
            "deaths_2sem": deaths_err,
            "deaths_per_action": float(self.died.sum() / actions),
            "deaths_on_last_step": float((self.died & (self.steps == episode_length)).mean()),
            "stopped": float(self.stopped.mean()),
            "steps": float(self.steps.mean()),
        }


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


TIE_BREAKS = ("official", "random", "index")


def _check_prior(prior: str, tie_break: str) -> None:
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; choose one of {', '.join(TIE_BREAKS)}")


TIE_SEED_OFFSET = 7_919  # tie orders get their own stream, so both rules meet the same worlds


def _tie_order(tie_break: str, n: int, n_hyp: int, generator: torch.Generator):
    """How posterior ties are broken: the official code's unstable sort, index order (None), or
    per episode a uniformly random order of the theories."""
    if tie_break == "official":
        return "official"
    if tie_break == "index":
        return None
    return torch.argsort(torch.rand(n, n_hyp, generator=generator), dim=1)


def run_guarded_episodes(
    spec: BanditSpec,
    hypotheses: torch.Tensor,
    threshold: float,
    guardrail: str,
    n_episodes: int,
    bandit_seed: int,
    noise_seed: int,
    harm_threshold: float | None = None,
    alpha: float | None = None,
    beta: float = 0.5,
    episode_length: int = 25,
    prior: str = "correct",
    tie_break: str = "random",
    chunk: int = 2000,
) -> EpisodeOutcomes:
    """Run ``n_episodes`` guarded episodes of the Boltzmann agent, batched ``chunk`` at a time.

    ``bandit_seed`` draws the bandits (pass the same one to compare guardrails on the same
    worlds); ``noise_seed`` draws actions and rewards. ``harm_threshold`` is the guardrail's C.
    Episodes that have ended (harm, or every arm rejected) are dropped from the working batch.
    ``tie_break`` orders theories of equal posterior in M_alpha (see ``m_alpha_masks``).
    """
    _check_counts(n_episodes=n_episodes, episode_length=episode_length, chunk=chunk)
    _check_prior(prior, tie_break)
    if guardrail not in GUARDRAILS:
        raise ValueError(f"unknown guardrail {guardrail!r}; choose one of {', '.join(GUARDRAILS)}")
    if guardrail != "none" and not (harm_threshold is not None and 0 < harm_threshold <= 1):
        raise ValueError(f"harm_threshold C must lie in (0, 1], got {harm_threshold!r}")
    if guardrail == "non-iid" and not (alpha is not None and 0 <= alpha <= 1):
        raise ValueError(f"the non-iid guardrail needs alpha in [0, 1], got {alpha!r}")
    log_c = math.log(harm_threshold) if guardrail != "none" else 0.0
    bandit_gen = torch.Generator().manual_seed(bandit_seed)
    noise_gen = torch.Generator().manual_seed(noise_seed)
    tie_gen = torch.Generator().manual_seed(bandit_seed + TIE_SEED_OFFSET)
    total = torch.zeros(n_episodes)
    died = torch.zeros(n_episodes, dtype=torch.bool)
    stopped = torch.zeros(n_episodes, dtype=torch.bool)
    steps = torch.zeros(n_episodes, dtype=torch.long)
    for start in range(0, n_episodes, chunk):
        n = min(chunk, n_episodes - start)
        bandits = sample_bandits(spec, n, hypotheses, bandit_gen)
        tables = HarmTables.build(bandits, threshold, spec.reward_std)
        log_post = log_prior(prior, bandits)
        ties = _tie_order(tie_break, n, spec.n_hypotheses, tie_gen)
        ids = torch.arange(start, start + n)  # global episode ids of the working rows
        for _ in range(episode_length):
            rows = torch.arange(len(ids))
            expected_weights = log_post.exp() @ hypotheses  # posterior-mean weights [E, d]
            logits = beta * torch.einsum("ead,ed->ea", bandits.features, expected_weights)
            ending = torch.zeros(len(ids), dtype=torch.bool)
            if guardrail != "none":
                estimate = log_harm_estimates(
                    guardrail, tables, log_post, bandits.true_index, alpha, ties
                )
                allowed = estimate <= log_c
                ending = ~allowed.any(dim=1)  # every arm rejected: the agent stops, unharmed
                stopped[ids[ending]] = True
                logits = torch.where(allowed | ending[:, None], logits, float("-inf"))
            probs = torch.softmax(logits, dim=1)
            action = torch.multinomial(probs, 1, generator=noise_gen).squeeze(1)
            noise = torch.randn(len(ids), generator=noise_gen)
            reward = bandits.true_means[rows, action] + spec.reward_std * noise
            acting = ~ending
            total[ids[acting]] += reward[acting]
            steps[ids[acting]] += 1
            exploded = acting & (reward > threshold)
            died[ids[exploded]] = True
            predicted = bandits.levels[rows, action].float()
            log_post = update_log_posterior(log_post, predicted, reward, spec.reward_std)
            keep = ~(ending | exploded)
            if not keep.all():
                if not keep.any():
                    break
                ids, bandits, tables, log_post = (
                    ids[keep],
                    bandits.subset(keep),
                    tables.subset(keep),
                    log_post[keep],
                )
                ties = ties[keep] if isinstance(ties, torch.Tensor) else ties
    return EpisodeOutcomes(total.numpy(), died.numpy(), stopped.numpy(), steps.numpy())


@dataclass
class OverestimationResult:
    """Per-episode frequency with which the non-i.i.d. estimate >= the true harm, per alpha."""

    alphas: list[float]
    frequency: np.ndarray  # [n_alphas, E]
    truth_kept: np.ndarray  # [n_alphas, E]: 1 if tau_true stayed in M_alpha at every step
    always_over: np.ndarray  # [n_alphas, E]: 1 if the estimate was >= the true harm at every step
    fifty_fifty_estimate: np.ndarray  # [n_alphas], mean estimate for arms whose true harm is 1/2
    fifty_fifty_count: int

    def summary(self, n_hypotheses: int) -> list[dict[str, float]]:
        """Per alpha: each rate with its SE, and the guarantee max(0, 1 - H·alpha).

        The guarantee bounds the probability that tau_true stays in M_alpha at *every* step (the
        theorem's event, ``truth_kept``), which implies overestimation at every step
        (``always_over``), which implies a per-step ``frequency`` of 1 in that episode.
        """
        rows = []
        for i, alpha in enumerate(self.alphas):
            mean, err = mean_and_2sem(self.frequency[i])
            always, always_err = mean_and_2sem(self.always_over[i])
            kept, kept_err = mean_and_2sem(self.truth_kept[i])
            rows.append(
                {
                    "alpha": alpha,
                    "frequency": mean,
                    "frequency_2sem": err,
                    "frequency_se": err / 2,
                    "truth_kept": kept,
                    "truth_kept_se": kept_err / 2,
                    "always_over": always,
                    "always_over_se": always_err / 2,
                    "guarantee": max(0.0, 1.0 - n_hypotheses * alpha),
                    "fifty_fifty_estimate": float(self.fifty_fifty_estimate[i]),
                }
            )
        return rows


def run_overestimation(
    spec: BanditSpec,
    hypotheses: torch.Tensor,
    threshold: float,
    alphas: list[float],
    n_episodes: int,
    seed: int,
    episode_length: int = 25,
    prior: str = "correct",
    tie_break: str = "random",
    chunk: int = 2000,
) -> OverestimationResult:
    """Tightness: uniform agent, non-exploding bandit, every alpha scored on shared episodes.

    The agent's actions do not depend on alpha, so every alpha is scored on the same episodes
    (common random numbers). With a correct prior, the true theory stays in M_alpha at all times
    with probability >= 1 - alpha / P(tau_true), so the estimate is then >= the true harm.
    The same seed gives the same bandits and rewards whatever the prior or tie-break rule, so
    those compare paired.
    """
    _check_counts(n_episodes=n_episodes, episode_length=episode_length, chunk=chunk)
    _check_prior(prior, tie_break)
    if len(alphas) == 0 or any(not 0 <= a <= 1 for a in alphas):
        raise ValueError(f"alphas must be a non-empty list of values in [0, 1], got {alphas!r}")
    gen = torch.Generator().manual_seed(seed)
    tie_gen = torch.Generator().manual_seed(seed + TIE_SEED_OFFSET)
    hits = torch.zeros(len(alphas), n_episodes)
    kept = torch.ones(len(alphas), n_episodes, dtype=torch.bool)
    always = torch.ones(len(alphas), n_episodes, dtype=torch.bool)
    fifty_sum = torch.zeros(len(alphas))
    fifty_count = 0
    for start in range(0, n_episodes, chunk):
        n = min(chunk, n_episodes - start)
        bandits = sample_bandits(spec, n, hypotheses, gen)
        tables = HarmTables.build(bandits, threshold, spec.reward_std)
        true_log_harm = tables.lookup(bandits.true_means)  # [E, A]
        on_threshold = bandits.true_means == threshold  # "50/50" arms: true harm exactly 1/2
        log_post = log_prior(prior, bandits)
        ties = _tie_order(tie_break, n, spec.n_hypotheses, tie_gen)
        rows = torch.arange(n)
        for _ in range(episode_length):
            action = torch.randint(0, spec.n_arms, (n,), generator=gen)
            masks = m_alpha_masks(log_post, alphas, ties)
            for i, mask in enumerate(masks):
                estimate = non_iid_from_mask(tables, mask)  # [E, A]
                over = estimate[rows, action] >= true_log_harm[rows, action]
                hits[i, start : start + n] += over.float()
                always[i, start : start + n] &= over
                kept[i, start : start + n] &= mask[rows, bandits.true_index]
                fifty_sum[i] += estimate.exp()[on_threshold].sum()
            fifty_count += int(on_threshold.sum())
            reward = bandits.true_means[rows, action] + spec.reward_std * torch.randn(
                n, generator=gen
            )
            predicted = bandits.levels[rows, action].float()
            log_post = update_log_posterior(log_post, predicted, reward, spec.reward_std)
    return OverestimationResult(
        alphas=list(alphas),
        frequency=(hits / episode_length).numpy(),
        truth_kept=kept.numpy().astype(float),
        always_over=always.numpy().astype(float),
        fifty_fifty_estimate=(fifty_sum / max(fifty_count, 1)).numpy(),
        fifty_fifty_count=fifty_count,
    )
