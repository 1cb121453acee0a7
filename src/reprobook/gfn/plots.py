"""Chapter 6's figures, drawn only from metrics (a run's or the committed full run's)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from reprobook import plotting
from reprobook.gfn.grid import mode_coordinates
from reprobook.gfn.training import ARM_LABELS, ARMS


def _arm_colors() -> dict[str, tuple]:
    return dict(zip(ARMS, plotting.colors(len(ARMS)), strict=True))


def plot_mode_discovery(runs: dict[str, list[dict]], n_mode_states: int) -> plt.Figure:
    """Distinct mode states found against trajectories sampled: mean over seeds (line), and the
    range over seeds (band)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = _arm_colors()
    for arm, per_seed in runs.items():
        x = np.asarray(per_seed[0]["samples"], dtype=float)
        found = np.asarray([r["modes_found"] for r in per_seed], dtype=float)
        ax.plot(x, found.mean(0), color=palette[arm], label=ARM_LABELS[arm])
        if len(per_seed) > 1:
            ax.fill_between(x, found.min(0), found.max(0), color=palette[arm], alpha=0.15)
    ax.axhline(n_mode_states, color="grey", linestyle=":", label=f"all {n_mode_states} mode states")
    ax.set_xlabel("trajectories sampled (fresh, not replayed)")
    ax.set_ylabel("distinct mode states found")
    n_seeds = len(next(iter(runs.values())))
    band = f" (mean; band: min to max over {n_seeds} seeds)" if n_seeds > 1 else ""
    ax.set_title(f"Mode discovery on the deceptive grid{band}")
    ax.legend(loc="upper left")
    return fig


def plot_sample_map(sample_map: dict) -> plt.Figure:
    """Target distribution and each arm's training samples on the 2-D grid, on one log scale;
    crosses mark the mode states."""
    height = sample_map["height"]
    arms = list(sample_map["arms"])
    panels = [("target p(x) ∝ R(x)", np.asarray(sample_map["target"]))]
    for arm in arms:
        counts = np.asarray(sample_map["arms"][arm]["counts"], dtype=float)
        found = sample_map["arms"][arm]["final_modes"]
        total = sample_map["arms"][arm]["n_mode_states"]
        panels.append((f"{ARM_LABELS[arm]}\n{found}/{total} modes", counts / counts.sum()))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 3.4))
    floor = 1e-5
    norm = LogNorm(vmin=floor, vmax=max(p.max() for _, p in panels))
    coords = mode_coordinates(height)
    mx, my = np.meshgrid(coords, coords)
    for ax, (title, density) in zip(np.atleast_1d(axes), panels, strict=True):
        image = ax.imshow(np.maximum(density, floor).T, origin="lower", norm=norm, cmap="viridis")
        ax.scatter(mx.ravel(), my.ravel(), marker="x", s=12, color="red", linewidths=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label="share of samples (log; floor 1e-5)")
    fig.suptitle(
        f"Where each method samples: d = 2, H = {height}, {sample_map['iterations']} iterations, "
        f"seed {sample_map['seed']}"
    )
    return fig
