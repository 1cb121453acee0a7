"""ch12's figures: scenes with their true and predicted masks (this run's), scores per domain and
the data-size sweep (from the metrics, so committed artefacts re-plot)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from reprobook.plotting import colors
from reprobook.vision.objects.report import DOMAIN_LABELS, SCORE_LABELS, SCORES, sweep_sizes
from reprobook.vision.objects.study import ARMS, EVAL_DOMAINS
from reprobook.vision.scenes import ZERO_SHOT_DOMAINS, make_scenes

MASK_COLOURS = ListedColormap(plt.get_cmap("tab10").colors)
SHOWN_MODELS = (("diverse", "dinosaur"), ("diverse", "dinosaur_topk"), ("diverse", "ft_dinosaur"))
SHORT = {"dinosaur": "DINOSAUR", "dinosaur_topk": "FT, frozen", "ft_dinosaur": "FT-DINOSAUR"}


def _tight(fig: plt.Figure) -> None:
    """Image grids: the book style's constrained layout with little padding."""
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(w_pad=0.01, h_pad=0.01, wspace=0.0, hspace=0.0)
    else:
        fig.tight_layout(pad=0.2)


def plot_masks(shown: dict, scene: int = 0) -> plt.Figure:
    """One scene per evaluation domain (rows): the image, the true instances and the decoder's
    masks of the three models trained on the diverse domain (colours are arbitrary per panel)."""
    domains = list(shown["scenes"])
    cols = 2 + len(SHOWN_MODELS)
    fig, axes = plt.subplots(len(domains), cols, figsize=(1.15 * cols, 1.15 * len(domains)))
    for r, domain in enumerate(domains):
        panels = [shown["scenes"][domain][scene].permute(1, 2, 0), shown["truth"][domain][scene]]
        panels += [shown[key][domain][scene] for key in SHOWN_MODELS]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if c == 0:
                ax.imshow(panel.numpy())
            else:
                ax.imshow(
                    torch.as_tensor(panel).numpy() % 10,
                    cmap=MASK_COLOURS,
                    vmin=0,
                    vmax=9,
                    interpolation="nearest",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(
                    ["image", "truth", *(SHORT[m] for _, m in SHOWN_MODELS)][c], fontsize="small"
                )
            if c == 0:
                ax.set_ylabel(DOMAIN_LABELS[domain], fontsize="small")
    _tight(fig)
    return fig


def plot_scores(metrics: dict) -> plt.Figure:
    """FG-ARI and mBO per evaluation domain and model (mean over seeds, seeds as dots)."""
    arms = list(ARMS)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0), sharey=True)
    width = 0.8 / len(arms)
    for ax, score in zip(axes, SCORES, strict=True):
        for i, ((train, name), colour) in enumerate(zip(arms, colors(len(arms)), strict=True)):
            per_seed = np.array(
                [
                    [run["arms"][f"{train}/{name}"]["scores"][d][score] for d in EVAL_DOMAINS]
                    for run in metrics["runs"]
                ]
            )
            x = np.arange(len(EVAL_DOMAINS)) + (i - (len(arms) - 1) / 2) * width
            ax.bar(
                x, per_seed.mean(0), width, color=colour, label=f"{train}: {ARMS[(train, name)]}"
            )
            for row in per_seed:
                ax.plot(x, row, ".", color="black", markersize=2)
        ax.set_xticks(np.arange(len(EVAL_DOMAINS)))
        ax.set_xticklabels(
            [DOMAIN_LABELS[d] for d in EVAL_DOMAINS], rotation=40, ha="right", fontsize="small"
        )
        ax.set_title(SCORE_LABELS[score])
    axes[0].set_ylabel("score (mean over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside upper center", ncol=2, fontsize="x-small", frameon=False
    )
    return fig


def plot_sweep(metrics: dict) -> plt.Figure:
    """Zero-shot FG-ARI and mBO (mean over the zero-shot domains) against training scenes, mean
    ± s.e. over seeds."""
    sizes = sweep_sizes(metrics)
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for score, colour in zip(SCORES, colors(2), strict=True):
        per_seed = np.array(
            [
                [
                    np.mean([run["sweep"][s]["scores"][d][score] for d in ZERO_SHOT_DOMAINS])
                    for s in sizes
                ]
                for run in metrics["runs"]
            ]
        )
        mean = per_seed.mean(0)
        se = per_seed.std(0, ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1 else 0 * mean
        x = [int(s) for s in sizes]
        ax.errorbar(
            x,
            mean,
            yerr=se,
            marker="o",
            color=colour,
            label=f"zero-shot {SCORE_LABELS[score]}",
            capsize=3,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training scenes (diverse domain)")
    ax.set_ylabel("score")
    ax.legend(frameon=False, fontsize="small")
    return fig


def plot_domains(size: int, seed: int, n: int = 4) -> plt.Figure:
    """``n`` scenes of every domain (rows), drawn with ``seed`` (not the training scenes)."""
    domains = list(EVAL_DOMAINS)
    fig, axes = plt.subplots(len(domains), n, figsize=(0.95 * n, 0.95 * len(domains)))
    for r, domain in enumerate(domains):
        images, _ = make_scenes(domain, n, size, seed + 30_000)
        for c in range(n):
            axes[r, c].imshow(images[c].permute(1, 2, 0).numpy())
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(DOMAIN_LABELS[domain], fontsize="x-small")
    _tight(fig)
    return fig


def plot_pretraining(facts: dict) -> plt.Figure:
    """The self-distillation losses of the ViT's pre-training (means of equal windows)."""
    fig, ax = plt.subplots(figsize=(5.0, 2.6))
    for key, label, colour in zip(
        ("dino_loss", "ibot_loss"), ("DINO (CLS)", "iBOT (masked patches)"), colors(2), strict=True
    ):
        ax.plot(np.linspace(0, 1, len(facts[key])), facts[key], color=colour, label=label)
    ax.set_xlabel("share of pre-training")
    ax.set_ylabel("cross-entropy")
    ax.legend(frameon=False, fontsize="small")
    return fig
