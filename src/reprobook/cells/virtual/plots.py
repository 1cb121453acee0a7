"""Chapter 9's figures: the capability map (a diagram), and figures drawn only from metrics."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

from reprobook import plotting
from reprobook.cells.virtual.report import METRIC_WORDS, curve


def model_colors(models) -> dict[str, tuple]:
    return dict(zip(models, plotting.colors(len(models)), strict=True))


def plot_capability_map() -> plt.Figure:
    """The virtual cell's three capabilities as this chapter makes them concrete (a diagram)."""
    boxes = [
        ("cell state\n(expression)", "PBMC cells;\nsimulated screen"),
        ("universal\nrepresentation", "PCA, autoencoder"),
        ("decoder\n(virtual instrument)", "cell type from the\nrepresentation"),
        ("manipulator\n(in silico experiment)", "perturbation models:\nadditive ... graph prior"),
    ]
    fig, ax = plt.subplots(figsize=(7.2, 1.9))
    ax.set_xlim(0, 4)
    ax.set_ylim(0, 1)
    ax.axis("off")
    for i, (title, note) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((i + 0.08, 0.35), 0.84, 0.55, boxstyle="round,pad=0.02",
                                    facecolor=plotting.colors(4)[i], alpha=0.25))  # fmt: skip
        ax.text(i + 0.5, 0.62, title, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(i + 0.5, 0.15, note, ha="center", va="center", fontsize=8)
        if i < len(boxes) - 1:
            ax.annotate("", xy=(i + 1.1, 0.62), xytext=(i + 0.9, 0.62),
                        arrowprops={"arrowstyle": "-|>", "lw": 1.8, "color": "0.2"})  # fmt: skip
    return fig


def plot_representation(metrics: dict) -> plt.Figure:
    """The PBMC cells on the dataset's own UMAP, by cell type, and each representation's decoder
    accuracy (folds as dots) against the majority class."""
    rep = metrics["representation"]
    umap, labels = np.asarray(rep["umap"]), np.asarray(rep["labels"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.4, 3.1), width_ratios=[1.3, 1])
    kinds = sorted(set(labels))
    palette = plt.get_cmap("tab20")(np.linspace(0, 1, 20))[:: max(1, 20 // len(kinds))]
    for kind, color in zip(kinds, palette, strict=False):
        sel = labels == kind
        ax1.scatter(umap[sel, 0], umap[sel, 1], s=4, color=color, label=kind, linewidths=0)
    ax1.set_xticks([])
    ax1.set_yticks([])
    ax1.set_title("PBMC cells (the dataset's UMAP)", fontsize=10)
    ax1.legend(fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    names = list(rep["accuracy"])
    for i, name in enumerate(names):
        acc = rep["accuracy"][name]
        ax2.bar(i, np.mean(acc), color=plotting.colors(len(names))[i], alpha=0.8)
        ax2.scatter(np.full(len(acc), i), acc, s=8, color="black", zorder=3)
    ax2.axhline(rep["majority"], linestyle="--", color="0.4", label="majority class")
    ax2.set_xticks(range(len(names)))
    ax2.set_xticklabels([n.replace(" ", "\n") for n in names], fontsize=8)
    ax2.set_ylabel("cell-type accuracy (5-fold CV)")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=8)
    return fig


def plot_curves(metrics: dict) -> plt.Figure:
    """L2, Pearson-Δ and interaction AUC of every model along ε (every training double), mean ±
    2 s.e. over seeds × splits."""
    colors = model_colors(metrics["models"])
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.9))
    for ax, metric in zip(axes, METRIC_WORDS, strict=True):
        for model in metrics["models"]:
            c = curve(metrics, model, metric)
            plotting.errorbar_line(ax, c["x"], c["mean"], 2 * np.asarray(c["se"]),
                                   metrics["labels"][model], colors[model])  # fmt: skip
        ax.set_xlabel("epistasis ε")
        ax.set_title(METRIC_WORDS[metric], fontsize=10)
    axes[0].set_ylabel("unseen doubles")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    return fig


def plot_data_size(metrics: dict) -> plt.Figure:
    """L2 of every model against the fraction of training doubles used, at the lowest ε."""
    colors = model_colors(metrics["models"])
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for model in metrics["models"]:
        c = curve(metrics, model, "l2", over="fraction")
        plotting.errorbar_line(ax, c["x"], c["mean"], 2 * np.asarray(c["se"]),
                               metrics["labels"][model], colors[model])  # fmt: skip
    ax.set_xlabel("fraction of the training doubles used")
    ax.set_ylabel("L2 on unseen doubles (lower is better)")
    ax.set_title(f"ε = {metrics['epsilons'][0]:g}", fontsize=10)
    ax.legend(fontsize=7)
    return fig
