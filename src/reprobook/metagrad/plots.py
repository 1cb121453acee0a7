"""Chapter 3's figures, drawn only from metrics (a run's or the committed full run's)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from reprobook import plotting
from reprobook.metagrad.study import ARM_LABELS, ARMS, HEADLINE, TARGET_LABELS
from reprobook.metagrad.targets import TARGET_67, picture_from_text

Y_LABELS = {
    "pixel_accuracy": 'pixel accuracy of the decoded "67"',
    "head_norm": "Δ‖W_head‖ (trained − pretrained)",
}
SMOOTHING = 10  # outer steps in the rolling mean of the per-batch curves


def _arm_colors() -> dict[str, tuple]:
    return dict(zip(ARMS, plotting.colors(len(ARMS)), strict=True))


def _by_target_arm(runs: list[dict]) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = {}
    for run in runs:
        out.setdefault(run["target"], {}).setdefault(run["arm"], []).append(run)
    return out


def _offset(run: dict, key: str) -> float:
    return run["initial_head_norm"] if key == "head_norm" else 0.0


def _rolling(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_learning_curves(runs: list[dict]) -> plt.Figure:
    """Per target (columns): held-out evaluations (top, mean +- SE over seeds) and the metric of
    each training batch (bottom, rolling mean over 10 outer steps, mean over seeds).

    Every curve scores rollouts through the AdamW inner loop; the dashed line scores the SGD
    arm's held-out rollouts through its own SGD inner loop. The head's norm is drawn as its
    change from each seed's pretrained head, with the reference of every weight moved lr x M
    towards 0."""
    grouped = _by_target_arm(runs)
    palette = _arm_colors()
    fig, axes = plt.subplots(2, len(grouped), figsize=(5.6 * len(grouped), 6.4), squeeze=False)
    for col, (target, per_arm) in enumerate(grouped.items()):
        key = HEADLINE[target]
        top, bottom = axes[0, col], axes[1, col]
        for arm, per_seed in per_arm.items():
            steps = np.asarray([e["step"] for e in per_seed[0]["eval"]], dtype=float)
            offsets = np.asarray([_offset(r, key) for r in per_seed])[:, None]
            values = np.asarray([[e[key] for e in r["eval"]] for r in per_seed]) - offsets
            se = (
                values.std(0, ddof=1) / np.sqrt(len(values))
                if len(values) > 1
                else np.zeros(values.shape[1])
            )
            plotting.errorbar_line(
                top, steps, values.mean(0), se, ARM_LABELS[arm], palette[arm], marker="."
            )
            if arm == "sgd":  # the same rollouts, scored through the SGD inner loop
                own = np.asarray([[e["sgd"][key] for e in r["eval"]] for r in per_seed]) - offsets
                top.plot(
                    steps, own.mean(0), color=palette[arm], linestyle="--",
                    label=f"{ARM_LABELS[arm]}, scored through SGD",
                )  # fmt: skip
            batch = (np.asarray([r["train"][key] for r in per_seed]) - offsets).mean(0)
            smooth = _rolling(batch, SMOOTHING)
            x = np.arange(len(smooth)) + (len(batch) - len(smooth)) + 1
            bottom.plot(x, smooth, color=palette[arm], label=ARM_LABELS[arm])
        n_seeds = len(next(iter(per_arm.values())))
        band = f"mean ± SE over {n_seeds} seeds" if n_seeds > 1 else "one seed"
        top.set_title(f"{TARGET_LABELS[target]}: held-out rollouts ({band})")
        bottom.set_title(f"{TARGET_LABELS[target]}: each training batch (rolling mean)")
        for ax in (top, bottom):
            ax.set_xlabel("outer (GRPO) step")
            ax.set_ylabel(Y_LABELS[key])
            if key == "pixel_accuracy":
                ax.axhline(0.5, color="grey", linestyle=":", label="chance (0.5)")
                ax.set_ylim(0.3, 1.02)
            else:
                runs_here = [r for rs in per_arm.values() for r in rs]
                floor = np.mean([r["head_norm_floor"] - r["initial_head_norm"] for r in runs_here])
                ax.axhline(
                    floor, color="grey", linestyle=":", label="AdamW: every weight moved lr·M to 0"
                )
    legend: dict[str, object] = {}  # one legend for all panels, below them
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    ncol = 2 if len(grouped) == 1 else 3
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=ncol)
    return fig


def _accuracy(picture: np.ndarray) -> float:
    return float((picture == np.asarray(TARGET_67)).mean())


def plot_pictures(runs: list[dict], n_columns: int = 5) -> plt.Figure:
    """The "67" decoded from the trained head, sign(P - P0), at several outer steps.

    First seed, first held-out batch; one row per arm, the target picture on the left. White
    is +1, black is -1 (a pixel that did not move would be grey)."""
    per_arm = _by_target_arm(runs).get("sixseven")
    if not per_arm:
        raise ValueError('no run of the "67" target to draw')
    first_seed = min(r["seed"] for rs in per_arm.values() for r in rs)
    chosen = {arm: next(r for r in rs if r["seed"] == first_seed) for arm, rs in per_arm.items()}
    evals = next(iter(chosen.values()))["eval"]
    picks = np.unique(
        np.linspace(0, len(evals) - 1, min(n_columns, len(evals))).round().astype(int)
    )
    fig, axes = plt.subplots(
        len(chosen), len(picks) + 1, figsize=(1.55 * (len(picks) + 1), 1.6 * len(chosen) + 0.4),
        squeeze=False,
    )  # fmt: skip
    for row, (arm, run) in enumerate(chosen.items()):
        axes[row, 0].imshow(np.asarray(TARGET_67), cmap="gray", vmin=-1, vmax=1)
        axes[row, 0].set_title("target", fontsize=8)
        axes[row, 0].set_ylabel(arm, fontsize=9)
        for col, index in enumerate(picks, start=1):
            evaluation = run["eval"][index]
            ax = axes[row, col]
            picture = picture_from_text(evaluation["picture"]).numpy()
            ax.imshow(picture, cmap="gray", vmin=-1, vmax=1)
            acc = _accuracy(picture)
            ax.set_title(f"step {evaluation['step']}: {acc:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(
        f'Decoded "67" (sign of the change of head.weight.T[:6, :7]); seed {first_seed}',
        fontsize=10,
    )
    return fig


def plot_attribution(cost: dict) -> plt.Figure:
    """Exact tau against the leave-one-out effect Phi(1) - Phi(1 - e_i), one dot per example."""
    tau, loo = np.asarray(cost["tau"]), np.asarray(cost["leave_one_out"])
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    ax.scatter(tau, loo, s=14, alpha=0.8)
    low, high = min(tau.min(), loo.min()), max(tau.max(), loo.max())
    ax.plot([low, high], [low, high], color="grey", linestyle=":", label="y = x")
    ax.set_xlabel("τ_i: exact metagradient dΦ/dw_i")
    ax.set_ylabel("Φ(all) − Φ(example i weighted 0)")
    ax.set_title(
        f"{cost['n_examples']} rollouts: Spearman {cost['spearman_tau_loo']:.2f}, "
        f"same sign {100 * cost['sign_agreement_tau_loo']:.0f} %"
    )
    ax.legend(loc="upper left")
    return fig


def plot_gradient_check(gradient: dict) -> plt.Figure:
    """Cosine of DPG's gradient with the true one against the sample size, one panel per inner
    loop, one line per M (band: mean ± 2 SE over draws)."""
    loops = list(dict.fromkeys(r["loop"] for r in gradient["rows"]))
    fig, axes = plt.subplots(1, len(loops), figsize=(7.2, 3.4), sharey=True, squeeze=False)
    steps = sorted({r["inner_steps"] for r in gradient["rows"]})
    palette = dict(zip(steps, plotting.colors(len(steps)), strict=True))
    for ax, loop in zip(axes[0], loops, strict=True):
        rows = [r for r in gradient["rows"] if r["loop"] == loop]
        for m in steps:
            cell = sorted((r for r in rows if r["inner_steps"] == m), key=lambda r: r["n"])
            plotting.errorbar_line(
                ax, [r["n"] for r in cell], [r["cosine_mean"] for r in cell],
                [2 * r["cosine_se"] for r in cell], f"M = {m}", color=palette[m],
            )  # fmt: skip
        ax.set_xscale("log")
        ax.axhline(1.0, color="grey", linestyle=":")
        ax.set_xlabel("n: sequences sampled for one estimate")
        ax.set_title(f"inner loop: {rows[0]['optimizer']} (lr {rows[0]['lr']:g})")
    axes[0][0].set_ylabel("cosine(DPG gradient, true gradient)")
    axes[0][-1].legend(loc="lower right")
    return fig
