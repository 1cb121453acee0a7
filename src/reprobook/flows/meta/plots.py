"""Chapter 8's figures, drawn only from metrics (a run's or the committed full run's)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook import plotting
from reprobook.flows.meta.report import per_seed

METHOD_ORDER = ("identity", "fm", "cgfm", "mfm")
SHORT_SPLITS = {"train": "training", "val": "held-out\n(validation)", "test": "held-out\n(test)",
                "replicates": "replicates"}  # fmt: skip


def method_colors() -> dict[str, tuple]:
    """One colour per method (the identity map included), the same in every figure."""
    return dict(zip(METHOD_ORDER, plotting.colors(len(METHOD_ORDER)), strict=True))


def plot_letter_examples(pops) -> plt.Figure:
    """Source (noisy) and target points of a few letter populations, side by side."""
    fig, axes = plt.subplots(1, 2 * len(pops), figsize=(1.6 * 2 * len(pops), 1.9))
    for i, pop in enumerate(pops):
        panels = (("source", pop.x0), ("target", pop.x1))
        for ax, (title, pts) in zip(axes[2 * i : 2 * i + 2], panels, strict=True):
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, linewidths=0, color="0.25")
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{pop.name}: {title}", fontsize=9)
    return fig


def plot_populations(metrics: dict, task: str) -> plt.Figure:
    """Held-out populations of the first seed: the source, each method's prediction (the source
    transported by its learned flow) and the target, one row per population."""
    shown = metrics["tasks"][task]["shown"]
    columns = [("source x₀", shown["x0"])]
    columns += [(metrics["labels"][m], shown["predicted"][m]) for m in metrics["methods"]]
    columns.append(("target x₁", shown["x1"]))
    n_rows = len(shown["names"])
    fig, axes = plt.subplots(n_rows, len(columns), figsize=(1.45 * len(columns), 1.55 * n_rows),
                             squeeze=False)  # fmt: skip
    colors = method_colors()
    for row, name in enumerate(shown["names"]):
        target = np.asarray(shown["x1"][row])
        every = np.concatenate([np.asarray(points[row]) for _, points in columns])
        low, high = np.percentile(every, 0.5, axis=0), np.percentile(every, 99.5, axis=0)
        centre, half = (low + high) / 2, (high - low).max() / 2 + 0.2  # one square box per row
        for col, (title, points) in enumerate(columns):
            ax = axes[row, col]
            pts = np.asarray(points[row])
            method = next((m for m in metrics["methods"] if metrics["labels"][m] == title), None)
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, linewidths=0,
                       color=colors[method] if method else "0.25")  # fmt: skip
            if method:  # the target, faint, for reference
                ax.scatter(target[:, 0], target[:, 1], s=1, linewidths=0, color="0.8", zorder=0)
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - half, centre[1] + half)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(f"{task}: held-out populations, seed {metrics['seeds'][0]} (grey: the target)",
                 fontsize=10)  # fmt: skip
    return fig


def plot_w2(metrics: dict) -> plt.Figure:
    """W2 per method on every evaluation split of every task: mean over seeds (bar) and each
    seed (dots); lower is better, the identity map is the floor to beat."""
    tasks = list(metrics["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 2.9), squeeze=False)
    methods = ["identity", *metrics["methods"]]
    colors = method_colors()
    width = 0.8 / len(methods)
    for ax, task in zip(axes[0], tasks, strict=True):
        splits = metrics["tasks"][task]["splits"]
        for i, method in enumerate(methods):
            x = np.arange(len(splits)) + (i - (len(methods) - 1) / 2) * width
            values = [per_seed(metrics, task, s, "w2", method) for s in splits]
            ax.bar(x, [np.mean(v) for v in values], width, color=colors[method],
                   label=metrics["labels"][method])  # fmt: skip
            for xi, v in zip(x, values, strict=True):
                ax.scatter(np.full(len(v), xi), v, s=6, color="black", zorder=3)
        ax.set_xticks(np.arange(len(splits)))
        ax.set_xticklabels([SHORT_SPLITS[s] for s in splits], fontsize=8)
        ax.set_title(task)
    axes[0, 0].set_ylabel("W2 to the target (lower is better)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(methods), fontsize=8)
    return fig


def plot_training_loss(metrics: dict) -> plt.Figure:
    """The flow-matching loss of each method (mean every 50 field steps), every seed."""
    tasks = list(metrics["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 2.6), squeeze=False)
    colors = method_colors()
    for ax, task in zip(axes[0], tasks, strict=True):
        for method, rows in metrics["tasks"][task]["runs"].items():
            for k, row in enumerate(rows):
                steps = 50 * np.arange(1, len(row["losses"]) + 1)
                ax.plot(steps, row["losses"], color=colors[method], alpha=0.8, linewidth=1,
                        label=metrics["labels"][method] if k == 0 else None)  # fmt: skip
        ax.set_xlabel("field step")
        ax.set_ylabel("flow-matching loss")
        ax.set_title(task)
    axes[0, 0].legend(fontsize=8)
    return fig
