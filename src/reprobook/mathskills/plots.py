"""ch04's figures, drawn from the metrics (so committed artefacts re-plot)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook.mathskills.report import exponent, solvers
from reprobook.mathskills.study import KINDS
from reprobook.plotting import colors

SHORT = {"sequential": "pairs: one answer feeds the next", "parallel": "control: the same number",
         "three_step": "control: an extra step"}  # fmt: skip
ARM_TICKS = {
    "base": "practised\nnumbers only",
    "single": "+ N single",
    "composed": "+ N composed\n(2N steps)",
    "single_equal_steps": "+ 2N single\n(2N steps)",
}


def plot_law(metrics: dict) -> plt.Figure:
    """Y against X for every solver (mean over seeds, labelled by its budget and updates), with
    Y = X² and the fitted Y = X^a, one panel per kind of composed question."""
    rows = solvers(metrics)
    keys = sorted({(s["size"], s["updates"]) for s in rows})
    palette = colors(len(keys))
    fig, axes = plt.subplots(1, len(KINDS), figsize=(9.0, 3.3), sharey=True)
    grid = np.linspace(0.01, 1, 100)
    for ax, kind in zip(axes, KINDS, strict=True):
        for color, key in zip(palette, keys, strict=True):
            these = [s for s in rows if (s["size"], s["updates"]) == key]
            x = np.mean([s["x"] for s in these])
            y = np.mean([s["y"][kind] for s in these])
            ax.scatter([s["x"] for s in these], [s["y"][kind] for s in these], s=10,
                       color=color, alpha=0.4)  # fmt: skip
            ax.scatter([x], [y], s=28, color=color, edgecolor="k", linewidth=0.5)
            ax.annotate(f"{key[0]}/{key[1] // 1000}k", (x, y), fontsize=6,
                        xytext=(3, -6), textcoords="offset points")  # fmt: skip
        a, lo, hi = exponent(metrics, kind)
        ax.plot(grid, grid**2, "k--", lw=1, label="Y = X²")
        ax.plot(grid, grid**a, color="0.4", lw=1, label=f"Y = X^{a:.2f}")
        ax.fill_between(grid, grid**lo, grid**hi, color="0.85", zorder=0)
        ax.plot(grid, grid, color="0.7", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("X: single-skill accuracy")
        ax.set_title(SHORT[kind], fontsize="small")
        ax.legend(fontsize="x-small", frameon=False, loc="upper left")
    axes[0].set_ylabel("Y: accuracy on composed questions")
    return fig


def plot_extra(metrics: dict) -> plt.Figure:
    """Single-skill and pair accuracy after each kind of added training data (mean ± s.e.)."""
    runs = metrics["runs"]
    arms = list(runs[0]["extra"])
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    palette = colors(2)
    for k, (key, words) in enumerate((("x", "single-skill questions"), ("y", "pairs"))):
        values = np.array([[r["extra"][a][key] for a in arms] for r in runs])
        err = values.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else 0 * values[0]
        ax.bar(np.arange(len(arms)) + (k - 0.5) * 0.38, values.mean(0), 0.38, yerr=err,
               capsize=2, color=palette[k], label=words)  # fmt: skip
    ax.set_xticks(range(len(arms)), [ARM_TICKS[a] for a in arms], fontsize="small")
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize="small", ncol=2, loc="lower center",
              bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    return fig
