"""Chapter 2's figures, drawn only from the metrics."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook import plotting
from reprobook.lm.compositionality.report import CONDITION_WORDS, curve, final, runs_of

STYLES = {"coherent": "-", "shuffled": "--", "shuffled_period_last": ":"}
SHORT = {
    "coherent": "coherent",
    "shuffled": "shuffled",
    "shuffled_period_last": "shuffled, period last",
}


def _layers(
    metrics: dict, size: str, step: str, condition: str, k: int, estimator: str
) -> np.ndarray:
    """``[seeds, layers]`` values."""
    return np.array([r["checkpoints"][step]["id"][condition][str(k)][estimator]
                     for r in runs_of(metrics, size)])  # fmt: skip


def plot_id_by_layer(metrics: dict, size: str | None = None) -> plt.Figure:
    """TwoNN I_d and PCA d by layer at the end of training, per k, for each kind of sentence
    (mean over seeds)."""
    size = size or metrics["sizes"][-1]
    step = final(metrics)
    colors = plotting.colors(len(metrics["couplings"]))
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0))
    names = ("TwoNN $I_d$", "PCA $d$ (99 %)")
    for ax, estimator, name in zip(axes, ("twonn", "pca"), names, strict=True):
        for condition, style in STYLES.items():
            for color, k, factors in zip(
                colors, metrics["couplings"], metrics["factors"], strict=True
            ):
                values = _layers(metrics, size, step, condition, k, estimator).mean(0)
                label = f"k = {k} ({factors} factors)" if condition == "coherent" else None
                ax.plot(np.arange(1, len(values) + 1), values, style, color=color, marker="o",
                        ms=3, label=label)  # fmt: skip
        ax.set_xlabel("layer")
        ax.set_ylabel(name)
        ax.set_xticks(np.arange(1, len(values) + 1))
    for condition, style in STYLES.items():
        axes[1].plot([], [], style, color="0.3", label=CONDITION_WORDS[condition])
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{size}, step {step}: last-token states", fontsize=9)
    fig.tight_layout()
    return fig


def _x(steps: list[int]) -> np.ndarray:
    return np.asarray(steps, dtype=float)


def plot_lifetime(metrics: dict) -> plt.Figure:
    """Along training: the spread I_d(k = 1) - I_d(k = 4) at the last layer for each kind of
    sentence (top), and the grammar competence on coherent k = 4 sentences (bottom); mean ± s.e.
    over seeds."""
    sizes = metrics["sizes"]
    fig, axes = plt.subplots(2, len(sizes), figsize=(7.2, 4.6), sharex=True, squeeze=False)
    colors = plotting.colors(3)
    for j, size in enumerate(sizes):
        top, bottom = axes[0, j], axes[1, j]
        for color, condition in zip(colors, STYLES, strict=True):
            c = curve(metrics, size, condition)
            mean, se = np.array(c["mean"]), np.array(c["se"])
            top.plot(_x(c["steps"]), mean, STYLES[condition], color=color, marker="o", ms=3,
                     label=CONDITION_WORDS[condition])  # fmt: skip
            top.fill_between(_x(c["steps"]), mean - se, mean + se, color=color, alpha=0.2)
        top.axhline(0, color="0.5", lw=0.8)
        top.set_title(size, fontsize=9)
        for quantity, label, color in (("category", "right slot", colors[0]),
                                       ("tied", "tied word exact", colors[1])):  # fmt: skip
            c = curve(metrics, size, "coherent", quantity)
            bottom.plot(_x(c["steps"]), c["mean"], color=color, marker="o", ms=3, label=label)
        bottom.set_xscale("symlog", linthresh=1)
        bottom.set_xlabel("training step")
        bottom.set_ylim(-0.05, 1.05)
    axes[0, 0].set_ylabel("$I_d(k{=}1) - I_d(k{=}4)$\n(TwoNN, last layer)")
    axes[1, 0].set_ylabel("next-word accuracy\n(coherent, k = 4)")
    axes[0, -1].legend(fontsize=7)
    axes[1, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_surface(metrics: dict, size: str | None = None) -> plt.Figure:
    """The whole surface: TwoNN I_d by layer and checkpoint, for k = 1 and k = 4 and each kind of
    sentence (mean over seeds; one colour scale)."""
    size = size or metrics["sizes"][-1]
    steps = [str(s) for s in metrics["steps"]]
    grids = {(k, c): np.array([_layers(metrics, size, s, c, k, "twonn").mean(0) for s in steps]).T
             for k in (1, 4) for c in STYLES}  # fmt: skip
    vmax = max(g.max() for g in grids.values())
    fig, axes = plt.subplots(2, 3, figsize=(7.2, 3.8), sharex=True, sharey=True)
    for (k, condition), grid in grids.items():
        ax = axes[0 if k == 1 else 1, list(STYLES).index(condition)]
        image = ax.imshow(grid, aspect="auto", origin="lower", vmin=0, vmax=vmax, cmap="viridis")
        if k == 1:
            ax.set_title(SHORT[condition], fontsize=8)
        ax.set_xticks(range(len(steps)), steps, rotation=90, fontsize=6)
        ax.set_yticks(range(grid.shape[0]), [str(i + 1) for i in range(grid.shape[0])])
    for ax in axes[1]:
        ax.set_xlabel("training step")
    for ax, k in zip(axes[:, 0], (1, 4), strict=True):
        ax.set_ylabel(f"k = {k}\nlayer")
    fig.colorbar(image, ax=axes, label="TwoNN $I_d$", shrink=0.8)
    fig.suptitle(size, fontsize=9)
    return fig


def plot_lengths(metrics: dict) -> plt.Figure:
    """The sentence-length ablation: TwoNN I_d (last layer) and PCA d (mean of layers) of
    coherent k = 1 sentences by their number of content words, per size."""
    lengths = metrics["settings"]["lengths"]
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6))
    for color, size in zip(plotting.colors(len(metrics["sizes"])), metrics["sizes"], strict=True):
        runs = runs_of(metrics, size)
        twonn = [np.mean([r["lengths"][str(n)]["twonn"][-1] for r in runs]) for n in lengths]
        pca = [np.mean([np.mean(r["lengths"][str(n)]["pca"]) for r in runs]) for n in lengths]
        axes[0].plot(lengths, twonn, "o-", color=color, label=size)
        axes[1].plot(lengths, pca, "o-", color=color, label=size)
    axes[0].set_ylabel("TwoNN $I_d$ (last layer)")
    axes[1].set_ylabel("PCA $d$ (mean of layers)")
    for ax in axes:
        ax.set_xlabel("content words (k = 1)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
