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
    n_arms=10, n_features=10, k=2, reward_std=1.0, beta=0.5, episode_length=25, tie_break="random"
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
    "tie_break": (lambda t: t in ("random", "index"), "'random' or 'index'"),
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
    tie_break: str = "random",
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
    tie_break: str = "random",
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


def _series(grid: dict, c: float) -> dict[str, dict]:
    """Every guarded configuration at threshold C, by a readable name."""
    row = grid[c_key(c)]
    out = {g: row[g] for g in ALPHA_FREE}
    out.update({f"non-iid alpha={a}": s for a, s in row["non-iid"].items()})
    return out


def _meets_guarantee(row: dict, key: str) -> bool:
    """row[key] is not significantly (by more than 3 SE) below the row's guarantee."""
    return row[key] >= row["guarantee"] - 3 * row[f"{key}_se"]


def _significantly_above(a: dict, b: dict, key: str) -> bool:
    """a[key] exceeds b[key] by more than the two 2·SEM bars together."""
    return a[key] - b[key] > a[f"{key}_2sem"] + b[f"{key}_2sem"]


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's qualitative claims, each computed from the metrics.

    Figure 1 (guarded Boltzmann agent):

    - ``none_most_deaths``: with no guardrail the death rate is the highest of all, at every C
      (our sanity check: the paper's Figure 1 does not plot the "none" guardrail).
    - ``non_iid_deaths_rise_with_alpha``: at every C, the non-i.i.d. guardrail dies
      significantly more at the largest alpha than at the smallest.
    - ``cheating_safer_per_action``: per action taken, the guardrail that knows the true harm
      dies no more often than the posterior-predictive one, at every C.
    - ``cheating_fewer_deaths_per_episode``: the same per episode (reported, not asserted: the
      posterior guardrail can avoid harm by refusing to act at all).
    - With several C: ``deaths_fall_with_c``: no guardrail's death rate rises significantly when
      C falls; ``alpha_free_tradeoff``: for cheating, posterior and i.i.d., deaths *and* reward
      are significantly lower at the smallest C than at the largest.

    Figure 2 (tightness; "significantly below" means by more than 3 SE), correct prior:

    - ``truth_kept_bound``: the share of episodes in which tau_true stayed in M_alpha at every
      step (the theorem's event) is not below max(0, 1 - 1024·alpha).
    - ``bound_holds_all_steps``: nor is the share overestimated at every step (implied by it).
    - ``bound_holds``: nor is the per-step overestimation frequency (the paper's plotted metric).
      For alpha >= 1/1024 the guarantee is 0 and these hold trivially.

    Negative control: ``wrong_prior_breaks_bound``: under the optimistic wrong prior, the share
    overestimated at every step is significantly below the guarantee at some alpha.
    """
    grid, study = metrics["guarded"], metrics["overestimation"]
    cs = harm_thresholds_in(grid)
    alphas = [alpha_key(a) for a in alphas_in(grid)]
    row = {c: grid[c_key(c)] for c in cs}
    claims = {
        "none_most_deaths": all(
            grid["none"]["deaths"] > max(s["deaths"] for s in _series(grid, c).values()) for c in cs
        ),
        "non_iid_deaths_rise_with_alpha": len(alphas) > 1
        and all(
            _significantly_above(
                row[c]["non-iid"][alphas[-1]], row[c]["non-iid"][alphas[0]], "deaths"
            )
            for c in cs
        ),  # fmt: skip
        "cheating_safer_per_action": all(
            row[c]["cheating"]["deaths_per_action"] <= row[c]["posterior"]["deaths_per_action"]
            for c in cs
        ),
        "cheating_fewer_deaths_per_episode": all(
            row[c]["cheating"]["deaths"] <= row[c]["posterior"]["deaths"] for c in cs
        ),
    }
    if len(cs) > 1:
        claims["deaths_fall_with_c"] = all(
            not _significantly_above(low[name], high[name], "deaths")
            for small, large in zip(cs[:-1], cs[1:], strict=True)
            for low, high in [(_series(grid, small), _series(grid, large))]
            for name in low
        )
        claims["alpha_free_tradeoff"] = all(
            _significantly_above(row[cs[-1]][g], row[cs[0]][g], key)
            for g in ALPHA_FREE
            for key in ("deaths", "reward")
        )
    correct = study["correct"]
    for claim, key in (
        ("truth_kept_bound", "truth_kept"),
        ("bound_holds_all_steps", "always_over"),
        ("bound_holds", "frequency"),
    ):
        claims[claim] = all(_meets_guarantee(r, key) for r in correct)
    claims["wrong_prior_breaks_bound"] = any(
        not _meets_guarantee(r, "always_over") for r in study["optimistic"]
    )
    return claims


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this book's run found, in words, keyed by the ids of the chapter's anchors."""
    grid, study = metrics["guarded"], metrics["overestimation"]
    cs = harm_thresholds_in(grid)
    n_ep, n_seeds = metrics["n_episodes"], metrics["n_seeds"]
    findings = {
        "setting": f"same set-up; {n_ep:,} episodes × {n_seeds} seed(s) per configuration",
        "threshold": f"{metrics['threshold']:g}, drawn the same way",
    }
    worst = max(max(s["deaths"] for s in _series(grid, c).values()) for c in cs)
    findings["none_most_deaths"] = (
        f"none: {_pct(grid['none']['deaths'])} deaths; the most of any guardrail at any C is "
        f"{_pct(worst)}"
    )
    post = [grid[c_key(c)]["posterior"] for c in cs]
    findings["tradeoff"] = "posterior guardrail, C = " + ", ".join(f"{c:g}" for c in cs) + (
        ": deaths " + " / ".join(_pct(p["deaths"]) for p in post)
        + ", reward " + " / ".join(f"{p['reward']:.1f}" for p in post)
    )  # fmt: skip
    parts = []
    for c in cs:
        ch, po = grid[c_key(c)]["cheating"], grid[c_key(c)]["posterior"]
        parts.append(
            f"C={c:g}: per episode {_pct(ch['deaths'])} vs {_pct(po['deaths'])}, per action "
            f"{ch['deaths_per_action']:.2g} vs {po['deaths_per_action']:.2g} "
            f"(posterior stops {_pct(po['stopped'])} of episodes)"
        )
    findings["cheating_vs_posterior"] = "cheating vs posterior: " + "; ".join(parts)
    correct = study["correct"]
    live = [r for r in correct if r["guarantee"] > 0]  # alpha >= 1/1024: the bound is 0, vacuous
    held = sum(_meets_guarantee(r, "truth_kept") for r in live)
    first = correct[0]
    findings["overestimation_bound"] = (
        f"tau_true kept in M_alpha at every step: at or above the guarantee at {held} of the "
        f"{len(live)} alphas where it is not 0; e.g. alpha={first['alpha']:g}: kept "
        f"{first['truth_kept']:.4f}, per-step frequency {first['frequency']:.4f}, guarantee "
        f"{first['guarantee']:.4f}"
    )
    findings["fifty_fifty"] = (
        f"{correct[0]['fifty_fifty_estimate']:.2f} at alpha={correct[0]['alpha']:g}, "
        f"{correct[-1]['fifty_fifty_estimate']:.2f} at alpha={correct[-1]['alpha']:g}"
    )
    opt, excl = study["optimistic"][0], study["truth-excluded"][0]
    broken = [
        f"{r['alpha']:g}" for r in study["optimistic"] if not _meets_guarantee(r, "always_over")
    ]
    findings["prior_assumption"] = (
        f"optimistic wrong prior: every-step overestimation below the guarantee at alpha = "
        f"{', '.join(broken) or 'none'} (e.g. {opt['always_over']:.3f} vs {opt['guarantee']:.3f} "
        f"at alpha={opt['alpha']:g}); truth excluded only: truth never in M_alpha, yet "
        f"{excl['always_over']:.3f}, because theories that match the truth on the arms pulled "
        "stay plausible"
    )
    return findings


def per_episode_note(metrics: dict) -> str:
    """Markdown on the per-episode death rates of the cheating vs the posterior guardrail.

    Per episode, the guardrail that knows the true harm can die more often than the posterior
    one, because the posterior guardrail also avoids harm by refusing to act at all; this note
    says, from the numbers, at which C that happens beyond the error bars.
    """
    grid = metrics["guarded"]
    lines = []
    for c in harm_thresholds_in(grid):
        ch, po = grid[c_key(c)]["cheating"], grid[c_key(c)]["posterior"]
        if _significantly_above(ch, po, "deaths"):
            lines.append(
                f"- At C = {c:g}, the cheating guardrail dies in **{100 * ch['deaths']:.2f} %** "
                f"(±{100 * ch['deaths_2sem']:.2f}) of episodes and the posterior guardrail in "
                f"**{100 * po['deaths']:.2f} %** (±{100 * po['deaths_2sem']:.2f}). The posterior "
                f"guardrail rejects every arm and stops in {100 * po['stopped']:.0f} % of "
                f"episodes, earning a reward of {po['reward']:.1f} against {ch['reward']:.1f}. "
                f"Per action taken, the cheating guardrail is safer: "
                f"{ch['deaths_per_action']:.2g} against {po['deaths_per_action']:.2g} "
                "deaths per action."
            )
    if not lines:
        return (
            "**Cheating vs posterior, per episode.** At no C does the cheating guardrail have "
            "significantly more deaths per episode than the posterior guardrail (beyond the two "
            "2·SEM bars)."
        )
    return (
        "**Cheating vs posterior, per episode.** At some C, the guardrail that knows the true "
        "harm has significantly *more* deaths per episode than the posterior one, so the reading "
        "'cheating is safest per episode' does not hold here:\n" + "\n".join(lines)
    )


def tie_break_note(metrics: dict) -> str:
    """Markdown: how much the non-i.i.d. guardrail's death rate moves with the tie-break rule."""
    main, other = metrics["guarded"], metrics["guarded_other_ties"]
    rule, other_rule = metrics["tie_break"], other["tie_break"]
    gaps = [
        (abs(a["deaths"] - b["deaths"]), c, alpha, a, b)
        for c in harm_thresholds_in(main)
        for alpha, a in main[c_key(c)]["non-iid"].items()
        for b in [other["grid"][c_key(c)]["non-iid"][alpha]]
    ]
    gap, c, alpha, a, b = max(gaps)
    return (
        f"**Tie-breaking in M_alpha.** The largest gap is at C = {c:g}, alpha = {alpha}: "
        f"the non-i.i.d. guardrail dies in {100 * a['deaths']:.1f} % of episodes with {rule} "
        f"tie-breaking and {100 * b['deaths']:.1f} % with {other_rule} tie-breaking "
        f"(reward {a['reward']:.1f} vs {b['reward']:.1f}; the {other_rule} run uses one seed)."
    )


def can_read(metrics: dict) -> bool:
    """Whether this version of the code can read ``metrics`` (artefacts of an older version may
    lack keys); the chapter then shows its own run instead of crashing."""
    try:
        check_claims(metrics)
        miniature_findings(metrics)
        per_episode_note(metrics)
        tie_break_note(metrics)
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    return True
