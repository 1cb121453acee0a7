"""One plotting style for the whole book, and small helpers every chapter uses."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

PALETTE = "colorblind"


def use_book_style() -> None:
    """Seaborn's whitegrid with the colorblind palette, sized for a book page."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 8,
            "figure.constrained_layout.use": True,
        }
    )


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
