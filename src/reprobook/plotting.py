"""One plotting style for the whole book, and small helpers every chapter uses."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

PALETTE = "colorblind"


def use_book_style() -> None:
    """The book's one style: seaborn's whitegrid with the colorblind palette, fonts of at least
    9 pt at a figure's own size, and tables shown whole (pandas truncates cells at 50 characters
    by default, which cut p-values and verdict words out of the comparison tables)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
            "legend.title_fontsize": 9,
            "figure.titlesize": 12,
            "figure.constrained_layout.use": True,
        }
    )
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", None)


def colors(n: int) -> list:
    """``n`` colours of the book's palette."""
    return sns.color_palette(PALETTE, n)


def errorbar_line(
    ax: plt.Axes,
    x: Sequence[float],
    mean: Sequence[float],
    err: Sequence[float],
    label: str,
    color=None,
    marker: str = "o",
) -> None:
    """A line with a shaded band of ``mean ± err`` (the book uses err = 2·SEM)."""
    x, mean, err = (np.asarray(v, dtype=float) for v in (x, mean, err))
    if not (x.shape == mean.shape == err.shape):
        raise ValueError(
            f"x, mean and err must have one shape, got {x.shape}, {mean.shape}, {err.shape}"
        )
    ax.plot(x, mean, marker=marker, label=label, color=color)
    ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=ax.lines[-1].get_color())


def band_hline(ax: plt.Axes, mean: float, err: float, label: str, color=None, style="--") -> None:
    """A horizontal line with a shaded ±err band: an α-free baseline on a plot against α."""
    line = ax.axhline(mean, linestyle=style, label=label, color=color)
    ax.axhspan(mean - err, mean + err, alpha=0.12, color=line.get_color())
