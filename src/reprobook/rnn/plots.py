"""The chapter's figures, drawn only from metrics (a run's or the committed full run's)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook import plotting
from reprobook.rnn.study import speedup

LABELS = {
    "mingru/parallel": "minGRU, parallel (log-space scan)",
    "mingru/chunked": "minGRU, chunked scan",
    "mingru/sequential": "minGRU, step loop",
    "minlstm/parallel": "minLSTM, parallel (log-space scan)",
    "minlstm/chunked": "minLSTM, chunked scan",
    "minlstm/sequential": "minLSTM, step loop",
    "gru/step": "GRU, step loop (plain torch)",
    "lstm/step": "LSTM, step loop (plain torch)",
    "gru/torch": "nn.GRU (fused kernel)",
    "lstm/torch": "nn.LSTM (fused kernel)",
}
_STYLE = {"parallel": "-", "chunked": "--", "sequential": ":", "step": "-.", "torch": (0, (1, 4))}


def _lengths(curve: dict) -> list[int]:
    return sorted(int(t) for t in curve)


def plot_speed(speed: dict, paper_speedups: dict[int, dict[str, float]]) -> plt.Figure:
    """Left: seconds per training step vs T. Right: speedup over the traditional step loop,
    with the paper's GPU speedups (``{T: {cell: x}}``) marked for reference."""
    timings = speed["timings"]
    fig, (ax_time, ax_up) = plt.subplots(1, 2, figsize=(12, 4.5))
    palette = dict(zip(("mingru", "minlstm", "gru", "lstm"), plotting.colors(4), strict=True))
    for variant, curve in timings.items():
        kind, how = variant.split("/")
        ts = _lengths(curve)
        ax_time.plot(ts, [curve[str(t)]["seconds"] * 1e3 for t in ts], marker="o", ms=3,
                     color=palette[kind], linestyle=_STYLE[how], label=LABELS[variant])  # fmt: skip
    ax_time.set(xscale="log", yscale="log", xlabel="sequence length T",
                ylabel="ms per training step (fwd + bwd)")  # fmt: skip
    ax_time.legend(fontsize=7, ncol=2)
    for cell, base in (("mingru", "gru"), ("minlstm", "lstm")):
        for mode in ("parallel", "chunked"):
            if f"{cell}/{mode}" not in timings or f"{base}/step" not in timings:
                continue
            curve = speedup(speed, f"{base}/step", f"{cell}/{mode}")
            ts = _lengths(curve)
            label = f"{LABELS[f'{cell}/{mode}']} vs {base.upper()} step loop"
            ax_up.plot(ts, [curve[str(t)] for t in ts], marker="o", ms=3, color=palette[cell],
                       linestyle=_STYLE[mode], label=label)  # fmt: skip
    for t, per_cell in paper_speedups.items():
        for cell, value in per_cell.items():
            label = f"paper, {cell} (T4 GPU, secondary)" if t == max(paper_speedups) else None
            ax_up.scatter([t], [value], marker="*", s=120, color=palette[cell], edgecolor="black",
                          zorder=5, label=label)  # fmt: skip
    ax_up.axhline(1.0, color="grey", lw=0.8)
    ax_up.set(xscale="log", yscale="log", xlabel="sequence length T",
              ylabel="speedup (× faster than the step loop)")  # fmt: skip
    ax_up.legend(fontsize=7)
    fig.suptitle(f"One training step, batch {speed['batch']}, hidden {speed['hidden']}, "
                 f"on {speed['device']}", y=1.02)  # fmt: skip
    return fig


COMMUNITY_LABELS = {
    "ours/chunked": "ours, chunked scan",
    "ours/parallel": "ours, log-space scan",
    "ours/sequential": "ours, step loop",
    "community/parallel": "minGRU-pytorch, log-space scan",
    "community/sequential": "minGRU-pytorch, step loop",
}


def plot_community(community: dict) -> plt.Figure:
    """Milliseconds per training step and per inference pass of our minGRU and the community
    package's, in every mode, against T: one panel per phase and batch."""
    timings = community["timings"]
    batches = list(next(iter(timings.values())))
    fig, axes = plt.subplots(len(timings), len(batches), figsize=(11, 3.6 * len(timings)),
                             squeeze=False)  # fmt: skip
    colours = dict(zip(("chunked", "parallel", "sequential"), plotting.colors(3), strict=True))
    for row, (phase, per_batch) in enumerate(timings.items()):
        for col, batch in enumerate(batches):
            ax = axes[row][col]
            for variant, curve in per_batch[batch].items():
                side, mode = variant.split("/")
                ts = _lengths(curve)
                ax.plot(ts, [curve[str(t)] * 1e3 for t in ts], color=colours[mode],
                        marker="o" if side == "ours" else "s", ms=3,
                        linestyle="-" if side == "ours" else "--",
                        label=COMMUNITY_LABELS[variant])  # fmt: skip
            ax.set(xscale="log", yscale="log", xlabel="sequence length T",
                   ylabel=f"ms per {'training step' if phase == 'training' else 'forward pass'}",
                   title=f"{phase}, batch {batch}")  # fmt: skip
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Our minGRU against {community['package']} (hidden {community['hidden']}, "
                 f"{community['device']})", y=1.04)  # fmt: skip
    return fig


def plot_memory(speed: dict) -> plt.Figure:
    """Activation memory kept for the backward pass, per variant, against T."""
    timings = speed["timings"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    palette = dict(zip(("mingru", "minlstm", "gru", "lstm"), plotting.colors(4), strict=True))
    for variant, curve in timings.items():
        kind, how = variant.split("/")
        ts = _lengths(curve)
        ax.plot(ts, [curve[str(t)]["activation_bytes"] / 2**20 for t in ts], marker="o", ms=3,
                color=palette[kind], linestyle=_STYLE[how], label=LABELS[variant])  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="sequence length T",
           ylabel="activation memory (MiB)",
           title="Tensors saved for the backward pass")  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def plot_copy(copy: dict) -> plt.Figure:
    """Selective-copy accuracy against depth: mean over seeds, every seed as a dot; one layer
    widened to the deepest model's size as a diamond at depth 1."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    per_cell = copy["depths"]
    for (cell, per_depth), color in zip(per_cell.items(), plotting.colors(len(per_cell)),
                                        strict=True):  # fmt: skip
        depths = sorted(per_depth, key=int)
        means = [100 * np.mean(per_depth[d]["accuracy"]) for d in depths]
        ax.plot([int(d) for d in depths], means, marker="o", color=color, label=cell)
        for d in depths:
            accs = 100 * np.asarray(per_depth[d]["accuracy"])
            ax.scatter([int(d)] * len(accs), accs, color=color, alpha=0.4, s=14)
        if cell in copy["wide"]:
            accs = 100 * np.asarray(copy["wide"][cell]["accuracy"])
            ax.scatter([1] * len(accs), accs, color=color, marker="D", s=22, alpha=0.5)
            ax.scatter([1], [accs.mean()], color=color, marker="D", s=60, edgecolor="black",
                       label=f"{cell}, one layer as large as the deepest")  # fmt: skip
    ax.set(xlabel="layers", ylabel="per-token accuracy (%)", ylim=(0, 101),
           title="Selective copying: accuracy against depth")  # fmt: skip
    ax.set_xticks(sorted({int(d) for per in per_cell.values() for d in per}))
    ax.axhline(100 / 14, color="grey", lw=0.8, ls=":", label="chance (1 in 14 token values)")
    ax.legend(fontsize=8)
    return fig


def plot_char_lm(lm: dict) -> plt.Figure:
    """Validation loss against training step for each model (mean over seeds, band = range)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    runs = lm["models"]
    for (kind, run), color in zip(runs.items(), plotting.colors(len(runs)), strict=True):
        curves = np.asarray(run["val_loss"], dtype=float)
        steps = run["val_steps"]
        ax.plot(steps, curves.mean(0), marker="o", ms=3, color=color,
                label=f"{kind} ({run['params'] / 1e3:.0f}k params)")  # fmt: skip
        if len(curves) > 1:
            ax.fill_between(steps, curves.min(0), curves.max(0), color=color, alpha=0.2)
    ax.set(xlabel="training step", ylabel="validation loss (nats per character)",
           title="Character language model")  # fmt: skip
    ax.legend()
    return fig
