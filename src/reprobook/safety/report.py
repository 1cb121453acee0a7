"""ch10's reading of its metrics: the claims, the findings beside the paper's, the notes.

Pure functions of the metrics that ``reprobook.safety.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import pandas as pd

from reprobook import report, results
from reprobook.safety.study import ALPHA_FREE, alpha_key, alphas_in, c_key, harm_thresholds_in

METRICS_VERSION = 2  # 2: the tie-break sensitivity holds a list of rules
REQUIRED_KEYS = (
    "threshold", "n_episodes", "n_seeds", "guarded", "tie_break", "guarded_other_ties",
    "overestimation", "claims",
)  # fmt: skip
PAPER_CLAIM = (
    "a guardrail that rejects an action when the harm probability under the most pessimistic "
    "plausible theory exceeds C trades reward for safety, and without the i.i.d. assumption its "
    "estimate bounds the true harm at every step with probability at least "
    "1 − α / P(τ_true)"
)
CLAIMS = {
    "none_most_deaths": "with no guardrail, deaths are the highest at every C (sanity)",
    "non_iid_deaths_rise_with_alpha": "the non-i.i.d. guardrail dies significantly more at the "
    "largest alpha than at the smallest, at every C",
    "cheating_safer_per_action": "per action, the guardrail that knows the true harm dies no "
    "more than the posterior one",
    "cheating_fewer_deaths_per_episode": "per episode, the same (reported, not asserted)",
    "deaths_fall_with_c": "no guardrail dies significantly more at a smaller C",
    "alpha_free_tradeoff": "cheating, posterior and i.i.d. guardrails: deaths and reward both "
    "significantly lower at the smallest C than at the largest (Figure 1)",
    "truth_kept_bound": "τ_true stays in M_alpha at every step at least 1 − 1024 α of the time "
    "(the theorem's event, Figure 2)",
    "bound_holds_all_steps": "the estimate is at least the true harm at every step as often",
    "bound_holds": "the per-step overestimation frequency is as high (the paper's plotted metric)",
    "wrong_prior_breaks_bound": "negative control: an optimistic wrong prior falls below the "
    "guarantee",
    "matches_official_code": "at C = 0.1, every death rate of the official code's seven runs is "
    "matched within 2 standard errors of the difference, both counted by the official rule "
    "(reported)",
}
HEADLINE_CLAIMS = (
    "alpha_free_tradeoff", "deaths_fall_with_c", "non_iid_deaths_rise_with_alpha",
    "truth_kept_bound", "bound_holds",
)  # fmt: skip
KEY_ANCHOR = "overestimation_bound"


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
    if "official_code" in metrics and c_key(metrics["official_code"]["harm_threshold"]) in grid:
        claims["matches_official_code"] = all(abs(r["z"]) < 2 for r in official_comparison(metrics))
    return claims


def _pct(x: float) -> str:
    return f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this book's run found, in words, keyed by the ids of the chapter's anchors."""
    grid, study = metrics["guarded"], metrics["overestimation"]
    cs = harm_thresholds_in(grid)
    n_ep, n_seeds = metrics["n_episodes"], metrics["n_seeds"]
    findings = {
        "setting": (
            f"same set-up; {n_ep:,} episodes × {report.plural(n_seeds, 'seed')} per configuration"
        ),
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


def _other_ties(metrics: dict) -> list[dict]:
    """The tie-break sensitivity runs: a list of {tie_break, n_seeds, grid} (one dict in older
    metrics)."""
    others = metrics["guarded_other_ties"]
    return others if isinstance(others, list) else [others]


def tie_break_note(metrics: dict) -> str:
    """Markdown: how much the non-i.i.d. guardrail's death rate moves with the tie-break rule."""
    main, rule = metrics["guarded"], metrics["tie_break"]
    sentences = []
    for other in _other_ties(metrics):
        other_rule = other["tie_break"]
        gaps = [
            (abs(a["deaths"] - b["deaths"]), c, alpha, a, b)
            for c in harm_thresholds_in(main)
            for alpha, a in main[c_key(c)]["non-iid"].items()
            for b in [other["grid"][c_key(c)]["non-iid"][alpha]]
        ]
        gap, c, alpha, a, b = max(gaps)
        sentences.append(
            f"Against {other_rule} tie-breaking, the largest gap is at C = {c:g}, alpha = {alpha}: "
            f"the non-i.i.d. guardrail dies in {100 * a['deaths']:.1f} % of episodes with {rule} "
            f"tie-breaking and {100 * b['deaths']:.1f} % with {other_rule} tie-breaking "
            f"(reward {a['reward']:.1f} vs {b['reward']:.1f}; the {other_rule} run uses one seed)."
        )
    return "**Tie-breaking in M_alpha.** " + " ".join(sentences)


def _live(metrics: dict) -> list[dict]:
    """Rows of the correct-prior study where the guarantee is above 0 (alpha < 1/1024)."""
    return [r for r in metrics["overestimation"]["correct"] if r["guarantee"] > 0]


def key_number(metrics: dict) -> str:
    live = _live(metrics)
    held = sum(_meets_guarantee(r, "truth_kept") for r in live)
    row = live[0]
    return (
        f"τ_true kept in M_α at every step at or above 1 − 1024 α at {held} of {len(live)} α; "
        f"at α = {row['alpha']:g}: {row['truth_kept']:.4f} vs {row['guarantee']:.4f}"
    )


def prose_numbers(metrics: dict) -> dict[str, str]:
    """The numbers the chapter's prose discusses, formatted."""
    grid, study = metrics["guarded"], metrics["overestimation"]
    live = _live(metrics)
    row = live[0]
    margin = row["truth_kept"] - row["guarantee"]
    opt = study["optimistic"]
    broken = [f"{r['alpha']:g}" for r in opt if not _meets_guarantee(r, "always_over")]
    cs = harm_thresholds_in(grid)
    post_lo, post_hi = grid[c_key(cs[0])]["posterior"], grid[c_key(cs[-1])]["posterior"]
    return {
        "n_episodes": f"{metrics['n_episodes']:,}",
        "n_seeds": str(metrics["n_seeds"]),
        "threshold": f"{metrics['threshold']:g}",
        "smallest_alpha": f"{row['alpha']:g}",
        "margin_smallest_alpha": f"{100 * margin:.2f} percentage points",
        "n_live_alphas": str(len(live)),
        "optimistic_broken_alphas": ", ".join(broken) or "none",
        "posterior_deaths_low_c": report.pct(post_lo["deaths"], 2),
        "posterior_deaths_high_c": report.pct(post_hi["deaths"], 2),
        "posterior_reward_low_c": f"{post_lo['reward']:.2f}",
        "posterior_reward_high_c": f"{post_hi['reward']:.2f}",
        "low_c": f"{cs[0]:g}",
        "high_c": f"{cs[-1]:g}",
        "none_deaths": report.pct(grid["none"]["deaths"]),
        "fifty_fifty_small_alpha": f"{study['correct'][0]['fifty_fifty_estimate']:.2f}",
        "other_ties_rule": " and ".join(o["tie_break"] for o in _other_ties(metrics)),
        "official_commit": metrics.get("official_code", {}).get("commit", "(not recorded)"),
        "official_episodes": f"{metrics.get('official_code', {}).get('n_episodes', 0):,}",
        "official_c": f"{metrics.get('official_code', {}).get('harm_threshold', float('nan')):g}",
    }


# --- against the official code --------------------------------------------------------------

load_official_code = results.load_official_code  # the chapter calls it by this name

OFFICIAL_ROWS = (("none", None), ("cheating", None), ("posterior", None), ("iid", None),
                 ("non-iid", 1e-4), ("non-iid", 1e-2), ("non-iid", 1.0))  # fmt: skip


def official_comparison(metrics: dict) -> list[dict]:
    """This run's death rates against the official code's (``metrics["official_code"]``, run
    by its own scripts at one C), both counted by the official rule (an explosion on the last
    step is no death), with the z-score of the difference (binomial standard errors; this run's
    episodes pooled over seeds)."""
    official = metrics["official_code"]
    c = official["harm_threshold"]
    n_ours = metrics["n_episodes"] * metrics["n_seeds"]
    rows = []
    for (guardrail, alpha), theirs in zip(OFFICIAL_ROWS, official["rows"], strict=True):
        if theirs["guardrail"] != guardrail or theirs.get("alpha") != alpha:
            raise ValueError(f"official rows out of order at {guardrail}, alpha = {alpha}")
        if guardrail == "none":
            cell = metrics["guarded"]["none"]
        elif alpha is None:
            cell = metrics["guarded"][c_key(c)][guardrail]
        else:
            cell = metrics["guarded"][c_key(c)]["non-iid"][alpha_key(alpha)]
        ours = cell["deaths"] - cell["deaths_on_last_step"]
        p, n = theirs["deaths"], official["n_episodes"]
        se = math.sqrt(p * (1 - p) / n + ours * (1 - ours) / n_ours)
        rows.append({"guardrail": guardrail if alpha is None else f"non-i.i.d. α = {alpha:g}",
                     "official": p, "official_2se": 2 * math.sqrt(p * (1 - p) / n),
                     "here": ours, "here_2se": 2 * math.sqrt(ours * (1 - ours) / n_ours),
                     "z": (ours - p) / se if se > 0 else 0.0})  # fmt: skip
    return rows


def official_table(metrics: dict) -> pd.DataFrame:
    """The comparison with the official code as a table."""
    rows = [
        {
            "guardrail": r["guardrail"],
            "official code": f"{r['official']:.3f} ± {r['official_2se']:.3f}",
            "here": f"{r['here']:.3f} ± {r['here_2se']:.3f}",
            "z (here − official)": f"{r['z']:+.1f}",
        }
        for r in official_comparison(metrics)
    ]
    return pd.DataFrame(rows).set_index("guardrail")
