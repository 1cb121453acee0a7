"""Figures of the FPGA chapter."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from reprobook import plotting
from reprobook.fpga.scenes import CLASSES

LABEL_COLORS = ListedColormap(["#9e9e9e", "#5b3f8c", "#1f78b4", "#e31a1c"])


def plot_panels(
    images: torch.Tensor, labels: torch.Tensor, predictions: dict[str, torch.Tensor], n: int = 3
) -> plt.Figure:
    """Rows of scene / label / each model's predicted classes (e.g. float, QAT, C simulation)."""
    n = min(n, len(images))
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(n, columns, figsize=(2.6 * columns, 1.8 * n), squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(images[row].permute(1, 2, 0).clamp(0, 1).numpy())
        axes[row, 1].imshow(
            labels[row].numpy(),
            cmap=LABEL_COLORS,
            vmin=0,
            vmax=len(CLASSES) - 1,
            interpolation="nearest",
        )
        for col, pred in enumerate(predictions.values(), start=2):
            axes[row, col].imshow(
                pred[row].numpy(),
                cmap=LABEL_COLORS,
                vmin=0,
                vmax=len(CLASSES) - 1,
                interpolation="nearest",
            )
    for col, title in enumerate(["scene", "label", *predictions]):
        axes[0, col].set_title(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=LABEL_COLORS(i)) for i in range(len(CLASSES))]
    fig.legend(handles, CLASSES, loc="lower center", ncol=len(CLASSES), bbox_to_anchor=(0.5, -0.06))
    return fig


def plot_miou(models: dict[str, dict]) -> plt.Figure:
    """Test mIoU against filters, one line per precision (float, each bit width)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    kinds = sorted({r["bits"] or 0 for r in models.values()})
    for color, bits in zip(plotting.colors(len(kinds)), kinds, strict=True):
        rows = sorted(
            (r for r in models.values() if (r["bits"] or 0) == bits), key=lambda r: r["filters"]
        )
        ax.plot(
            [r["filters"] for r in rows],
            [r["test"]["miou"] for r in rows],
            marker="o",
            color=color,
            label="float" if bits == 0 else f"{bits}-bit QAT",
        )
    ax.set_xscale("log", base=2)
    filters = sorted({r["filters"] for r in models.values()})
    ax.set_xticks(filters, [str(f) for f in filters])
    ax.set_xlabel("filters per stage")
    ax.set_ylabel("test mIoU (4 classes)")
    ax.legend()
    return fig


def plot_losses(losses: dict[str, list[float]]) -> plt.Figure:
    """Training loss per step of every model (float training, then QAT fine-tuning)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for color, (key, values) in zip(plotting.colors(len(losses)), losses.items(), strict=True):
        values = np.asarray(values)
        window = max(1, len(values) // 30)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=key, color=color)
    ax.set_xlabel("step")
    ax.set_ylabel("weighted cross-entropy (moving average)")
    ax.set_yscale("log")
    ax.legend(ncol=2)
    return fig


_ESTIMATE_KEYS = ("interval_ms", "latency_ms_low", "latency_ms_high")


def plot_estimates(estimates: list[dict], paper_ms: dict[str, float] | None = None) -> plt.Figure:
    """Estimated latency per image against reuse factor (band: one image, from full overlap to
    none; line: streaming interval), with the paper's measured values as horizontal lines.

    Models whose estimates are identical at every reuse factor (the slowest layer sets the
    interval) share one line and one legend entry naming them all, so none hides another."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    curves: dict[tuple, list[str]] = {}
    for model in sorted({e["model"] for e in estimates}):
        rows = sorted(
            (e for e in estimates if e["model"] == model), key=lambda e: e["reuse_factor"]
        )
        key = tuple(
            (e["reuse_factor"], *(float(f"{e[k]:.6g}") for k in _ESTIMATE_KEYS)) for e in rows
        )
        curves.setdefault(key, []).append(model)
    for color, (key, models) in zip(plotting.colors(len(curves)), curves.items(), strict=True):
        rf, interval, low, high = (list(column) for column in zip(*key, strict=True))
        label = ", ".join(models) + (" (estimate, identical)" if len(models) > 1 else " (estimate)")
        ax.plot(rf, interval, marker="o", color=color, label=label)
        ax.fill_between(rf, low, high, color=color, alpha=0.12)
    for (label, value), style in zip((paper_ms or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, color="black", linestyle=style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("reuse factor")
    ax.set_ylabel("ms per image")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
