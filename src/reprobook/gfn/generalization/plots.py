"""Chapter 5's figures, drawn only from metrics (a run's or the committed full run's)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from reprobook import plotting, report
from reprobook.gfn import stability
from reprobook.gfn.length import grid_log_reward, make_grid
from reprobook.gfn.objectives import LOSSES

# Each objective's place in the book's palette (colorblind): blue, orange, green and pink. The
# palette's fourth colour, vermilion, is hard to tell from its second, orange, so SubTB skips it.
LOSS_PALETTE_INDEX = {"tb": 0, "db": 1, "fldb": 2, "subtb": 4}


def loss_colors() -> dict[str, tuple]:
    """One colour of the book's palette per objective, the same in every figure of the chapter."""
    palette = plotting.colors(max(LOSS_PALETTE_INDEX.values()) + 1)
    return {loss: palette[LOSS_PALETTE_INDEX[loss]] for loss in LOSSES}


def _split_line(ax: plt.Axes, height: int, max_length: int) -> None:
    """The boundary ‖x‖₁ = L + 1/2 between seen (below) and unseen (above) states."""
    x = np.linspace(-0.5, height - 0.5, 50)
    ax.plot(x, max_length + 0.5 - x, color="white", linewidth=1.5, linestyle="--")
    ax.set_xlim(-0.5, height - 0.5)
    ax.set_ylim(-0.5, height - 0.5)


def plot_split_maps(metrics: dict) -> plt.Figure:
    """The first 2-D split: the target R / Z with the seen region (below the dashed line) and
    each objective's exact terminal distribution (first seed), on one log scale."""
    split = next(s for s in metrics["splits"] if s["ndim"] == 2)
    height, max_length = split["height"], split["max_length"]
    log_reward = grid_log_reward(make_grid(2, height, metrics["R0"]))
    target = np.exp(log_reward - log_reward.max())
    panels = [("target R(x) / Z", target / target.sum())]
    for loss in metrics["losses"]:
        terminal = split["runs"][loss][0]["terminal"]
        panels.append((f"{metrics['labels'][loss]} (exact $P_T$)", np.asarray(terminal)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.9))
    floor = panels[0][1].min() / 10  # a decade below the target's smallest probability
    norm = LogNorm(vmin=floor, vmax=max(p.max() for _, p in panels))
    for ax, (title, p) in zip(np.atleast_1d(axes), panels, strict=True):
        image = ax.imshow(
            np.maximum(p, floor).reshape(height, height).T, origin="lower", norm=norm,
            cmap="viridis",
        )  # fmt: skip
        _split_line(ax, height, max_length)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"probability (log; floor {floor:.0e})")
    fig.suptitle(
        f"Seen (‖x‖₁ ≤ {max_length}, below the dashed line) and unseen states: d = 2, "
        f"H = {height}, seed {metrics['seeds'][0]}",
        fontsize=10,
    )
    return fig


def plot_error_by_length(metrics: dict) -> plt.Figure:
    """Implied log-reward RMSE (seen-calibrated Z) at each ‖x‖₁ per objective, one panel per
    split; mean ± s.e. over seeds; the dotted line is L, the longest seen."""
    splits = metrics["splits"]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 3.6), squeeze=False)
    palette = loss_colors()
    for ax, split in zip(axes[0], splits, strict=True):
        for loss, row in split["by_length"].items():
            x, mean, se = (np.asarray(row[k], dtype=float) for k in ("length", "mean", "se"))
            ax.plot(x, mean, color=palette[loss], label=metrics["labels"][loss])
            ax.fill_between(x, mean - se, mean + se, color=palette[loss], alpha=0.2)
        ax.axvline(split["max_length"] + 0.5, color="grey", linestyle=":", label="L (seen ≤ L)")
        ax.set_title(f"d = {split['ndim']}, H = {split['height']}, L = {split['max_length']}")
        ax.set_xlabel("trajectory length − 1 = ‖x‖₁")
        ax.set_ylabel("RMSE of log R̂(x), calibrated Z")
    axes[0][0].legend(loc="upper left", fontsize=8)
    seeds = report.plural(metrics["n_seeds"], "seed")
    fig.suptitle(f"Error of the implied log-reward by length ({seeds})")
    return fig


def plot_stability(metrics: dict) -> plt.Figure:
    """Exact TV between TB-optimal trajectory distributions for R and R' against
    ‖log R − log R'‖∞, per perturbation family, under the bound tanh(ε/2)."""
    curve = metrics["stability"]
    eps = np.asarray(curve["eps"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fine = np.linspace(0, eps.max(), 200)
    ax.plot(fine, stability.tv_bound(fine), color="black", label="bound tanh(ε/2)")
    ax.plot(fine, stability.tv_bound(fine / 2), color="black", linestyle=":",
            label="tanh(ε/4): the bound for one-sided tilts")  # fmt: skip
    markers = {"random_signs": "o", "hidden_only": "s", "worst_case": "^"}
    for family, color in zip(stability.FAMILIES, plotting.colors(3), strict=True):
        ax.plot(
            curve[family]["sup_log_ratio"], curve[family]["tv_trajectories"],
            marker=markers[family], linestyle="-", color=color,
            label=stability.FAMILY_LABELS[family].replace("L)", f"{curve['max_length']})"),
        )  # fmt: skip
    ax.set_xlabel("ε = ‖log R − log R′‖∞")
    ax.set_ylabel("TV between trajectory distributions")
    ax.set_title(
        f"Exact stability of TB, uniform $P_B$: d = {curve['ndim']}, H = {curve['height']} "
        f"({curve['n_trajectories']:,} trajectories)",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_training_loss(metrics: dict) -> plt.Figure:
    """Each objective's training loss (mean over windows), first seed, per split (log scale)."""
    splits = metrics["splits"]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 3.2), squeeze=False)
    palette = loss_colors()
    for ax, split in zip(axes[0], splits, strict=True):
        for loss, runs in split["runs"].items():
            history = np.asarray(runs[0]["loss_history"])
            every = runs[0]["iterations"] / max(len(history), 1)
            ax.semilogy((np.arange(len(history)) + 1) * every, history, color=palette[loss],
                        label=metrics["labels"][loss])  # fmt: skip
        ax.set_title(f"d = {split['ndim']}, H = {split['height']}, L = {split['max_length']}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
    axes[0][0].legend(fontsize=8)
    return fig
