"""The chapter's figures, drawn from the metrics dictionaries (so committed artefacts re-plot)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from reprobook.plotting import band_hline, colors, errorbar_line
from reprobook.safety.study import ALPHA_FREE, alpha_key, c_key, harm_thresholds_in

STYLES = {  # guardrail -> (label, palette index, line style); distinct in colour and in dash
    "none": ("none", 7, ":"),
    "cheating": ("cheating (true harm)", 0, "--"),
    "posterior": ("posterior predictive", 2, "-."),
    "iid": ("i.i.d. bound", 1, (0, (5, 1.5, 1, 1.5, 1, 1.5))),
    "non-iid": ("non-i.i.d. bound", 4, "-"),
}


DEGENERATE = 0.9  # a threshold at which the Bayesian guardrails' median refusal share reaches this


def _degenerate(row: dict) -> str:
    """A title note for a threshold C at which the Bayesian guardrails (posterior, i.i.d. and
    non-i.i.d. at every alpha) nearly always refuse to act, judged by the median of their refusal
    shares (one loose alpha may refuse a little less): their death rates there say little."""
    cells = [row[g] for g in ("posterior", "iid") if g in row]
    cells += list(row.get("non-iid", {}).values())
    stopped = [cell["stopped"] for cell in cells if "stopped" in cell]
    if not stopped or float(np.median(stopped)) < DEGENERATE:
        return ""
    return (  # two short lines: a long one runs into the next panel's title
        f"\ndegenerate: Bayesian guardrails refuse\nin {min(stopped):.0%}-{max(stopped):.0%} "
        "of episodes"
    )


def plot_guardrail_grid(
    grid: dict, harm_thresholds: Sequence[float], alphas: Sequence[float]
) -> plt.Figure:
    """Figure 1 analogue: reward (top) and death rate (bottom) against alpha, one column per C.

    The non-i.i.d. guardrail is a line over alpha; the alpha-free guardrails are horizontal lines.
    Bands are ±2·SEM.
    """
    palette_colors = colors(10)
    palette = {g: palette_colors[i] for g, (_, i, _) in STYLES.items()}
    fig, axes = plt.subplots(2, len(harm_thresholds), figsize=(4.2 * len(harm_thresholds), 6.4),
                             squeeze=False, sharex=True)  # fmt: skip
    for col, c in enumerate(harm_thresholds):
        row = grid[c_key(c)]
        for r, (metric, label) in enumerate((("reward", "mean episode reward"),
                                              ("deaths", "death rate"))):  # fmt: skip
            ax = axes[r, col]
            for g, cell in [("none", grid["none"]), *((g, row[g]) for g in ALPHA_FREE)]:
                name, _, style = STYLES[g]
                band_hline(ax, cell[metric], cell[f"{metric}_2sem"], name, palette[g], style)
            means = [row["non-iid"][alpha_key(a)][metric] for a in alphas]
            errs = [row["non-iid"][alpha_key(a)][f"{metric}_2sem"] for a in alphas]
            errorbar_line(ax, alphas, means, errs, STYLES["non-iid"][0], color=palette["non-iid"])
            ax.set_xscale("log")
            ax.set_ylabel(label)
            if r == 0:
                ax.set_title(f"guardrail threshold C = {c:g}" + _degenerate(row))
            else:
                ax.set_xlabel(r"$\alpha$ (non-i.i.d. bound)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def plot_overestimation(study: dict, n_hypotheses: int) -> plt.Figure:
    """Figure 2 analogue plus the negative control, against alpha, one line per prior.

    Left: per-step frequency with which the non-i.i.d. estimate >= the true harm (the paper's
    metric). Middle: share of episodes where it held at every step, and (dotted, correct prior)
    share where tau_true stayed in M_alpha at every step, the event the theorem bounds. Right:
    mean estimate for arms whose true harm is exactly 1/2. Dashed: 1 - alpha / P(tau_true).
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    palette = colors(len(study))
    for color, (prior, rows) in zip(palette, study.items(), strict=True):
        alphas = [r["alpha"] for r in rows]
        errorbar_line(axes[0], alphas, [r["frequency"] for r in rows],
                      [r["frequency_2sem"] for r in rows], f"{prior} prior", color)  # fmt: skip
        errorbar_line(axes[1], alphas, [r["always_over"] for r in rows],
                      [2 * r["always_over_se"] for r in rows], f"{prior} prior", color)  # fmt: skip
        axes[2].plot(alphas, [r["fifty_fifty_estimate"] for r in rows], marker="o",
                     label=f"{prior} prior", color=color)  # fmt: skip
        if prior == "correct":
            axes[1].plot(alphas, [r["truth_kept"] for r in rows], ":", marker="s", color=color,
                         label=r"$\tau_{true}$ kept in $M_\alpha$ (correct prior)")  # fmt: skip
    theory_alphas = [r["alpha"] for r in next(iter(study.values()))]
    bound = [max(0.0, 1 - n_hypotheses * a) for a in theory_alphas]
    for ax in axes[:2]:
        ax.plot(theory_alphas, bound, "k--", label=r"guarantee $1-\alpha/P(\tau_{true})$")
        ax.set_ylim(-0.02, 1.02)
    axes[2].axhline(0.5, color="k", linestyle="--", label="true harm 0.5")
    axes[0].set_ylabel("per-step overestimation frequency")
    axes[1].set_ylabel("episodes overestimated at every step")
    axes[2].set_ylabel("estimate for arms with true harm 1/2")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(r"$\alpha$")
    axes[0].legend(loc="lower left")
    axes[1].legend(loc="upper right", fontsize=7)
    axes[2].legend(loc="best")
    return fig


def plot_tie_break(main: dict, other: dict | list[dict], labels: Sequence[str]) -> plt.Figure:
    """Non-i.i.d. guardrail deaths against alpha under several tie-break rules (the chapter's
    first, then ``other``: one grid or a list), one panel per C."""
    grids = [main, *(other if isinstance(other, list) else [other])]
    if len(labels) != len(grids):
        raise ValueError(f"need one label per grid ({len(grids)}), got {len(labels)}")
    cs = harm_thresholds_in(main)
    fig, axes = plt.subplots(1, len(cs), figsize=(4.2 * len(cs), 3.4), squeeze=False)
    for ax, c in zip(axes[0], cs, strict=True):
        for grid, label, color in zip(grids, labels, colors(len(grids)), strict=True):
            cells = grid[c_key(c)]["non-iid"]
            alphas = sorted(float(a) for a in cells)
            rows = [cells[alpha_key(a)] for a in alphas]
            errorbar_line(ax, alphas, [s["deaths"] for s in rows],
                          [s["deaths_2sem"] for s in rows], label, color)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel("death rate (non-i.i.d. guardrail)")
        ax.set_title(f"C = {c:g}")
    axes[0, -1].legend(loc="best")
    return fig
