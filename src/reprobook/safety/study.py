"""The chapter's two studies as functions of a config, returning JSON-ready metrics.

``guardrail_grid`` is the Figure 1 grid (every guardrail, every C, every alpha, pooled over
seeds); ``overestimation_study`` is Figure 2 and the negative control (every alpha, several
priors). Both use the same bandits for every configuration of a seed (common random numbers),
so differences between guardrails are not differences between the worlds they met.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tqdm.std import tqdm  # plain text bars: no ipywidgets needed in the book

from reprobook.profiles import Config, resolve_profile
from reprobook.safety.bandit import BanditSpec, all_hypotheses
from reprobook.safety.experiments import (
    TIE_BREAKS,
    EpisodeOutcomes,
    OverestimationResult,
    run_guarded_episodes,
    run_overestimation,
)

ALPHA_FREE = ("cheating", "posterior", "iid")
# Seed offsets keep the random streams of different purposes apart (bandits of Figure 1, its
# action and reward noise, and the tightness study), whatever the chapter's seed.
NOISE_SEED_BASE = 1_000_003
TIGHTNESS_SEED_OFFSET = 500_009
PAPER_ALPHAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-2, 3e-2, 0.1, 0.3, 1.0]
PAPER_HARM_THRESHOLDS = [1e-3, 1e-2, 1e-1]
# The official tightness script (run_tightness_experiment.py @ a14fdc9) adds 1e-3 and 3e-3.
TIGHTNESS_ALPHAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
# Fixed settings of the paper's code (run_non_iid_experiment.py defaults), shared by all profiles.
PAPER_SETTINGS = dict(
    n_arms=10, n_features=10, k=2, reward_std=1.0, beta=0.5, episode_length=25, tie_break="official"
)
PROFILES = {
    "smoke": dict(  # CI: one C, three alphas, a few hundred episodes; still all five guardrails
        n_episodes=300, n_seeds=1, harm_thresholds=[0.1], alphas=[1e-4, 1e-2, 1.0],
        tightness_episodes=1000, tightness_alphas=list(TIGHTNESS_ALPHAS), **PAPER_SETTINGS,
    ),
    "full": dict(  # the paper's grid: 3 C x 9 alphas, 10,000 episodes per cell, 3 seeds
        n_episodes=10_000, n_seeds=3, harm_thresholds=list(PAPER_HARM_THRESHOLDS),
        alphas=list(PAPER_ALPHAS), tightness_episodes=10_000,
        tightness_alphas=list(TIGHTNESS_ALPHAS), **PAPER_SETTINGS,
    ),
}  # fmt: skip
CONFIG_CHECKS = {
    "n_episodes": (lambda n: n >= 2, "an integer >= 2"),
    "n_seeds": (lambda n: n >= 1, "a positive integer"),
    "tightness_episodes": (lambda n: n >= 2, "an integer >= 2"),
    "harm_thresholds": (
        lambda cs: len(cs) > 0 and all(0 < c <= 1 for c in cs),
        "a non-empty list of values in (0, 1]",
    ),
    "alphas": (
        lambda al: len(al) > 0 and all(0 <= a <= 1 for a in al),
        "a non-empty list of values in [0, 1]",
    ),
    "tie_break": (lambda t: t in TIE_BREAKS, "'official', 'random' or 'index'"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    return resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)


def c_key(harm_threshold: float) -> str:
    return f"C={harm_threshold:g}"


def alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def _pool(outcomes: Sequence[EpisodeOutcomes]) -> EpisodeOutcomes:
    return EpisodeOutcomes(
        *(
            np.concatenate([getattr(o, f) for o in outcomes])
            for f in EpisodeOutcomes.__annotations__
        )
    )


def guardrail_grid(
    spec: BanditSpec,
    threshold: float,
    harm_thresholds: Sequence[float],
    alphas: Sequence[float],
    n_episodes: int,
    seeds: Sequence[int],
    beta: float = 0.5,
    episode_length: int = 25,
    tie_break: str = "official",
    include_alpha_free: bool = True,
    progress: bool = True,
) -> tuple[dict, dict]:
    """Run every guardrail on every (C, alpha) cell for each seed; pool the episodes over seeds.

    Returns ``(metrics, timing)``: metrics[``none``] and metrics[``C=…``][guardrail] (for
    ``non-iid``: [alpha]) hold ``EpisodeOutcomes.summary()``; timing has steps and seconds.
    ``include_alpha_free=False`` runs only the non-i.i.d. cells (for a tie-break comparison).
    """
    if not seeds:
        raise ValueError("seeds must not be empty")
    hypotheses = all_hypotheses(spec)
    cells = []
    if include_alpha_free:
        cells += [("none", None, None)]
        cells += [(g, c, None) for c in harm_thresholds for g in ALPHA_FREE]
    cells += [("non-iid", c, a) for c in harm_thresholds for a in alphas]
    pooled: dict[tuple, list[EpisodeOutcomes]] = {cell: [] for cell in cells}
    started, steps = time.perf_counter(), 0
    bar = tqdm(total=len(cells) * len(seeds), desc="guarded runs", disable=not progress,
               mininterval=10)  # fmt: skip
    for seed in seeds:
        for number, (guardrail, c, alpha) in enumerate(cells):
            outcome = run_guarded_episodes(
                spec, hypotheses, threshold, guardrail, n_episodes,
                bandit_seed=seed, noise_seed=NOISE_SEED_BASE * (seed + 1) + number,
                harm_threshold=c, alpha=alpha, beta=beta, episode_length=episode_length,
                tie_break=tie_break,
            )  # fmt: skip
            pooled[(guardrail, c, alpha)].append(outcome)
            steps += int(outcome.steps.sum())
            bar.update()
    bar.close()
    seconds = time.perf_counter() - started
    metrics: dict = {}
    if include_alpha_free:
        metrics["none"] = _pool(pooled[("none", None, None)]).summary(episode_length)
    for c in harm_thresholds:
        row: dict = {}
        if include_alpha_free:
            row = {g: _pool(pooled[(g, c, None)]).summary(episode_length) for g in ALPHA_FREE}
        row["non-iid"] = {
            alpha_key(a): _pool(pooled[("non-iid", c, a)]).summary(episode_length) for a in alphas
        }
        metrics[c_key(c)] = row
    return metrics, {"episode_steps": steps, "seconds": seconds}


def overestimation_study(
    spec: BanditSpec,
    threshold: float,
    alphas: Sequence[float],
    n_episodes: int,
    seeds: Sequence[int],
    priors: Sequence[str] = ("correct", "truth-excluded", "optimistic"),
    episode_length: int = 25,
    tie_break: str = "official",
    progress: bool = True,
) -> dict[str, list[dict[str, float]]]:
    """Figure 2 and the negative control: per prior, one row of overestimation rates per alpha.

    Every prior sees the same bandits and rewards for a given seed (the uniform agent's actions
    do not depend on beliefs), so the priors are compared on identical data.
    """
    if not seeds:
        raise ValueError("seeds must not be empty")
    hypotheses = all_hypotheses(spec)
    out = {}
    bar = tqdm(total=len(priors) * len(seeds), desc="tightness runs", disable=not progress,
               mininterval=10)  # fmt: skip
    for prior in priors:
        runs: list[OverestimationResult] = []
        for seed in seeds:
            runs.append(
                run_overestimation(
                    spec,
                    hypotheses,
                    threshold,
                    list(alphas),
                    n_episodes,
                    seed=seed + TIGHTNESS_SEED_OFFSET,
                    episode_length=episode_length,
                    prior=prior,
                    tie_break=tie_break,
                )  # fmt: skip
            )
            bar.update()
        counts = np.array([r.fifty_fifty_count for r in runs], dtype=float)
        pooled = OverestimationResult(
            alphas=list(alphas),
            frequency=np.concatenate([r.frequency for r in runs], axis=1),
            truth_kept=np.concatenate([r.truth_kept for r in runs], axis=1),
            always_over=np.concatenate([r.always_over for r in runs], axis=1),
            fifty_fifty_estimate=np.average(
                [r.fifty_fifty_estimate for r in runs], axis=0, weights=np.maximum(counts, 1e-12)
            ),
            fifty_fifty_count=int(counts.sum()),
        )
        out[prior] = pooled.summary(spec.n_hypotheses)
    bar.close()
    return out


def harm_thresholds_in(grid: dict) -> list[float]:
    """The thresholds C of a guardrail grid, ascending."""
    return sorted(float(k[2:]) for k in grid if k.startswith("C="))


def alphas_in(grid: dict) -> list[float]:
    """The alphas of the non-i.i.d. guardrail in a guardrail grid, ascending."""
    return sorted(float(a) for a in grid[c_key(harm_thresholds_in(grid)[0])]["non-iid"])
