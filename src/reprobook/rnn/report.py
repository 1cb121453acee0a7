"""ch01's reading of its metrics: the claims, the findings beside the paper's, the notes.

Pure functions of the metrics that ``reprobook.rnn.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from reprobook.rnn import study

METRICS_VERSION = 3  # 2: the stable scan, float32 error by length; 3: the community package
REQUIRED_KEYS = (
    "equivalence", "float32_by_length", "speed", "speed_ratios_512", "speed_community",
    "selective_copy", "char_lm", "claims",
)  # fmt: skip
COMMUNITY_GOAL = 1.5  # our best mode against the package's best, at T >= COMMUNITY_GOAL_FROM
COMMUNITY_GOAL_FROM = 512
PAPER_CLAIM = (
    "stripped of every gate's dependence on the previous hidden state, minGRU and minLSTM are "
    "linear recurrences that train in parallel with a scan, many times faster than a classic "
    "GRU or LSTM and more so as sequences grow; stacked, they copy selectively and model "
    "characters as well as a Transformer"
)
CLAIMS = {
    "modes_agree_float64": "the log-space, stable and chunked scans give the step loop's states, "
    "within 1e-5 in float64 (Experiment 1)",
    "modes_agree_float32": "the same within 1e-3 in float32 (sanity)",
    "log_space_error_grows_float32": "in float32 the log-space scan's relative error grows with "
    "T: at the longest T it is at least sqrt(T_max / T_min) times its error at the shortest "
    "(Experiment 1; descriptive, reported)",
    "stable_error_flat_float32": "in float32 the stable (re-centred) scan's relative error at "
    "the longest T is at most twice its error at the shortest, plus 1e-6 (Experiment 1)",
    "parallel_faster_than_sequential_512": "at T = 512 the log-space scan trains faster than "
    "the min-cell's own step loop, for both cells (Experiment 2; asserted on a GPU only)",
    "chunked_faster_than_sequential_512": "at T = 512 the chunked scan trains faster than the "
    "step loop, for both cells (our CPU addition; reported, not asserted)",
    "ours_faster_than_community": "our minGRU in its best mode is faster than the community "
    "package's (minGRU-pytorch) in its best mode, in training and inference, at every batch "
    "and T timed (Experiment 2; one run on a CPU: reported, not asserted)",
    "ours_faster_1_5x_community_512": "our minGRU in its best mode is at least 1.5 times as fast "
    "as the community package's in its best mode, in training and inference, at every batch "
    "and every T >= 512 timed (our goal on 2 CPU cores; reported, not asserted)",
    "parallel_speedup_grows_with_length": "the log-space scan's speedup over the min-cell and "
    "the classic step loops is larger at the longest T than at the shortest (asserted on a GPU "
    "only)",
    "deeper_copies_better": "the deepest model copies more accurately than one layer, in every "
    "seed, for every cell (Experiment 3)",
    "depth_beats_width": "the deepest model copies more accurately than one layer widened to "
    "its parameter count, in every seed, for every cell (Experiment 3)",
}
HEADLINE_CLAIMS = (
    "modes_agree_float64", "parallel_faster_than_sequential_512",
    "parallel_speedup_grows_with_length", "deeper_copies_better", "depth_beats_width",
)  # fmt: skip
KEY_ANCHOR = "speedup_512"


def check_claims(metrics: dict) -> dict[str, bool]:
    """Every claim the chapter tests, true or false, from the metrics alone."""
    claims: dict[str, bool] = {}
    eq = metrics["equivalence"]
    claims["modes_agree_float64"] = all(
        max(v.values()) <= 1e-5 for k, v in eq.items() if "/float64/" in k
    )
    claims["modes_agree_float32"] = all(
        max(v.values()) <= 1e-3 for k, v in eq.items() if "/float32/" in k
    )
    growth = metrics["float32_by_length"]
    lengths = sorted(growth["parallel"], key=int)
    if len(lengths) > 1:
        shortest, longest = lengths[0], lengths[-1]
        ratio = math.sqrt(int(longest) / int(shortest))
        claims["log_space_error_grows_float32"] = (
            growth["parallel"][longest] >= ratio * growth["parallel"][shortest]
        )
        claims["stable_error_flat_float32"] = (
            growth["stable"][longest] <= 2 * growth["stable"][shortest] + 1e-6
        )
    ups = study.speedup_table(metrics["speed"])
    ratios_512 = metrics["speed_ratios_512"]
    claims["parallel_faster_than_sequential_512"] = all(
        ratios_512[f"{c}/parallel vs {c}/sequential"] > 1 for c in study.MIN_CELLS
    )
    claims["chunked_faster_than_sequential_512"] = all(
        ratios_512[f"{c}/chunked vs {c}/sequential"] > 1 for c in study.MIN_CELLS
    )
    grows = []
    for c, base in (("mingru", "gru"), ("minlstm", "lstm")):
        for slow in (f"{c}/sequential", f"{base}/step"):
            curve = ups[f"{c}/parallel vs {slow}"]
            lengths = sorted(curve, key=int)
            grows.append(curve[lengths[-1]] > curve[lengths[0]])
    claims["parallel_speedup_grows_with_length"] = all(grows)
    ratios = study.community_ratios(metrics["speed_community"])
    every = [row["ratio"] for rows in ratios.values() for row in rows.values()]
    from_goal = [row["ratio"] for rows in ratios.values()
                 for t, row in rows.items() if int(t) >= COMMUNITY_GOAL_FROM]  # fmt: skip
    claims["ours_faster_than_community"] = all(r > 1 for r in every)
    claims["ours_faster_1_5x_community_512"] = bool(from_goal) and all(
        r >= COMMUNITY_GOAL for r in from_goal
    )
    copy = metrics["selective_copy"]
    deeper, wider = [], []
    for cell, per_depth in copy["depths"].items():
        depths = sorted(per_depth, key=int)
        deep = per_depth[depths[-1]]["accuracy"]
        deeper.append(_better_every_seed(deep, per_depth[depths[0]]["accuracy"]))
        if cell in copy["wide"]:
            wider.append(_better_every_seed(deep, copy["wide"][cell]["accuracy"]))
    claims["deeper_copies_better"] = all(deeper)
    claims["depth_beats_width"] = bool(wider) and all(wider)
    return claims


def _better_every_seed(high: Sequence[float], low: Sequence[float]) -> bool:
    """``high`` above ``low`` in every seed (the runs are paired by seed)."""
    return len(high) == len(low) > 0 and all(h > lo for h, lo in zip(high, low, strict=True))


def _mean_sd(values: Sequence[float], scale: float = 1.0) -> str:
    values = np.asarray(values, dtype=float) * scale
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f} ({len(values)} seeds)"


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, as text keyed by anchor id, for the paper-vs-miniature table."""
    speed = metrics["speed"]
    where = f"{speed['device']}, batch {speed['batch']}, hidden {speed['hidden']}"
    findings: dict[str, str] = {}
    ups = study.speedup_table(speed)
    for length in ("512", "4096"):
        parts = []
        for c, base in (("mingru", "gru"), ("minlstm", "lstm")):
            for mode in ("parallel", "chunked"):
                value = ups[f"{c}/{mode} vs {base}/step"].get(length)
                if value is not None:
                    parts.append(f"{c} {mode}: {value:.2f}×")
        findings[f"speedup_{length}"] = (
            f"{'; '.join(parts)} vs our GRU/LSTM step loop ({where})" if parts
            else f"not timed at T = {length} in this run"
        )  # fmt: skip
    timings = speed["timings"]
    t_max = max(timings["mingru/parallel"], key=int)
    memory = timings["mingru/parallel"][t_max]["activation_bytes"] / max(
        timings["gru/step"][t_max]["activation_bytes"], 1
    )
    findings["memory"] = (
        f"minGRU parallel keeps {memory:.2f}× the activation memory of the GRU step loop "
        f"at T = {t_max} ({where})"
    )
    copy = metrics["selective_copy"]
    for depth in ("1", "2", "3"):
        parts = [f"{cell} {_mean_sd(per_depth[depth]['accuracy'], 100)}"
                 for cell, per_depth in copy["depths"].items() if depth in per_depth]  # fmt: skip
        if parts:
            findings[f"copy_{depth}_layers"] = "; ".join(parts) + " % per-token accuracy"
    if copy["wide"]:
        wide = "; ".join(f"{cell} {_mean_sd(run['accuracy'], 100)}"
                         for cell, run in copy["wide"].items())  # fmt: skip
        wide = f"one layer widened to the deepest model's size: {wide} % per-token accuracy"
        findings["copy_1_layers"] = "; ".join(
            part for part in (findings.get("copy_1_layers"), wide) if part
        )
    lm = metrics["char_lm"]["models"]
    parts = [f"{kind} {np.mean(m['test_loss']):.3f}" for kind, m in lm.items()]
    findings["char_lm"] = (
        f"test loss (nats/char, mean of {len(next(iter(lm.values()))['test_loss'])} seeds): "
        + ", ".join(parts) + f"; on {metrics['char_lm']['corpus']['source']}, not Shakespeare"
    )  # fmt: skip
    return findings


_MODE_NAMES = {"chunked": "chunked", "parallel": "log-space", "sequential": "step loop"}


def community_table(community: dict) -> pd.DataFrame:
    """How many times faster our best mode ran than the package's best, per phase, batch and T,
    with the modes that were best (ours / the package's)."""
    rows = {}
    for key, per_length in study.community_ratios(community).items():
        phase, batch = key.split("/")
        rows[f"{phase}, batch {batch}"] = {
            f"T = {int(t):,}": f"{row['ratio']:.2f}× ({_MODE_NAMES[row['ours_best']]} / "
            f"{_MODE_NAMES[row['community_best']]})"
            for t, row in per_length.items()
        }
    return pd.DataFrame(rows).T


def _community_summary(community: dict) -> dict[str, str]:
    ratios = study.community_ratios(community)
    every = [row["ratio"] for rows in ratios.values() for row in rows.values()]
    goal = [row["ratio"] for rows in ratios.values()
            for t, row in rows.items() if int(t) >= COMMUNITY_GOAL_FROM]  # fmt: skip
    met = sum(r >= COMMUNITY_GOAL for r in goal)
    return {
        "community_package": community["package"],
        "community_goal": f"{COMMUNITY_GOAL}×",
        "community_range": f"{min(every):.2f}× to {max(every):.2f}×",
        "community_faster_points": f"{sum(r > 1 for r in every)} of {len(every)}",
        "community_goal_points": f"{met} of {len(goal)}" if goal else "none (no T >= 512 timed)",
        "community_goal_range": f"{min(goal):.2f}× to {max(goal):.2f}×" if goal else "not timed",
    }


def paper_speedups(anchor_map: dict) -> dict[int, dict[str, float]]:
    """The paper's speedups ``{T: {cell: x}}`` from the anchors' ``value`` fields, for plots."""
    return {
        int(anchor_id.removeprefix("speedup_")): dict(anchor.value)
        for anchor_id, anchor in anchor_map.items()
        if anchor_id.startswith("speedup_") and anchor.value
    }


def reading_notes(metrics: dict) -> str:
    """The chapter's reading of a run, as Markdown, every statement computed from ``metrics``."""
    claims = metrics["claims"]
    speed = metrics["speed"]
    ups = study.speedup_table(speed)
    lengths = sorted(next(iter(ups.values())), key=int)
    t_min, t_max = lengths[0], lengths[-1]
    lines = [f"**Reading the results** (speed measured on {speed['device']}):", ""]
    for c in study.MIN_CELLS:
        log_seq = ups[f"{c}/parallel vs {c}/sequential"]
        chunk_seq = ups[f"{c}/chunked vs {c}/sequential"]
        lines.append(
            f"- **{c}.** Against its own step loop, the log-space scan is "
            f"{log_seq[t_min]:.2f}× as fast at T = {t_min} and {log_seq[t_max]:.2f}× at "
            f"T = {t_max}; the chunked scan {chunk_seq[t_min]:.2f}× and {chunk_seq[t_max]:.2f}×."
        )
    grows = claims["parallel_speedup_grows_with_length"]
    lines.append(
        "- **Growth with T.** The log-space scan's speedup "
        + ("grows" if grows else "does **not** grow")
        + f" from T = {t_min} to T = {t_max} against both the min-cell and the classic step loops."
        + ("" if grows else " The paper's growing speedup is not reproduced on this device.")
    )
    timings = speed["timings"]
    memory = timings["mingru/parallel"][t_max]["activation_bytes"] / max(
        timings["gru/step"][t_max]["activation_bytes"], 1
    )
    lines.append(
        f"- **Memory.** At T = {t_max} the log-space minGRU keeps {memory:.2f}× the activation "
        "memory of the GRU step loop."
    )
    summary = _community_summary(metrics["speed_community"])
    goal = (
        f"at T >= {COMMUNITY_GOAL_FROM}, {summary['community_goal_range']}, reaching our goal of "
        f"{COMMUNITY_GOAL}× at {summary['community_goal_points']} points"
        if summary["community_goal_range"] != "not timed"
        else f"no T >= {COMMUNITY_GOAL_FROM} was timed in this run"
    )
    lines.append(
        f"- **Against {summary['community_package']}.** Our minGRU in its best mode ran "
        f"{summary['community_range']} as fast as the package's best mode, faster at "
        f"{summary['community_faster_points']} points (phase, batch, length); {goal}."
    )
    copy = metrics["selective_copy"]
    parts = []
    for cell, per_depth in copy["depths"].items():
        depths = sorted(per_depth, key=int)
        accs = ", ".join(
            f"{d} layer{'s' if d != '1' else ''} {100 * np.mean(per_depth[d]['accuracy']):.1f} %"
            for d in depths
        )
        if cell in copy["wide"]:
            wide = copy["wide"][cell]
            accs += (f", one layer of width {wide['d_model']} ({wide['params']:,} parameters) "
                     f"{100 * np.mean(wide['accuracy']):.1f} %")  # fmt: skip
        parts.append(f"{cell}: {accs}")
    text = (
        "- **Selective copying** (mean over seeds). "
        + "; ".join(parts)
        + ". The deepest model copies "
        + (
            "better than one layer in every seed"
            if claims["deeper_copies_better"]
            else "**not** better than one layer in every seed"
        )  # fmt: skip
        + "."
    )
    if copy["wide"]:
        text += (" It copies " + ("better" if claims["depth_beats_width"] else "**not** better")
                 + " than one layer of its size in every seed.")  # fmt: skip
    lines.append(text)
    lm = metrics["char_lm"]["models"]
    losses = {kind: float(np.mean(m["test_loss"])) for kind, m in lm.items()}
    best = min(losses, key=losses.get)
    text = ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
    lines.append(f"- **Language model.** Test loss {text}; the lowest is {best}.")
    if "transformer" in losses:
        for c in study.MIN_CELLS:
            if c in losses:
                gap = losses[c] - losses["transformer"]
                lines.append(f"  - {c} minus Transformer: {gap:+.3f} nats per character.")
    return "\n".join(lines)


def key_number(metrics: dict) -> str:
    """The log-space minGRU's training speed at T = 512 against the GRU step loop."""
    ratio = metrics["speed_ratios_512"]["mingru/parallel vs gru/step"]
    return (
        f"minGRU log-space scan trains {_times(ratio)} as fast as the GRU step loop at T = 512 "
        f"({metrics['speed']['device']})"
    )


def _times(x: float) -> str:
    return "not timed" if math.isnan(x) else f"{x:.2f}×"


def _exp(x: float) -> str:
    return f"{x:.0e}".replace("e-0", "e-")


def _accuracies(copy: dict, pick) -> str:
    """``cell 93.1 %`` for each cell, at the depth that ``pick`` (min or max) chooses."""
    parts = []
    for cell, per_depth in copy["depths"].items():
        depth = pick(per_depth, key=int)
        parts.append(f"{cell} {100 * np.mean(per_depth[depth]['accuracy']):.1f} %")
    return ", ".join(parts)


def prose_numbers(metrics: dict) -> dict[str, str]:
    """The numbers the chapter's prose discusses, formatted."""
    eq = metrics["equivalence"]
    worst = {
        (dtype, mode): max(v[mode] for k, v in eq.items() if f"/{dtype}/" in k)
        for dtype in ("float64", "float32")
        for mode in ("parallel", "chunked", "stable")
    }
    speed, ratios = metrics["speed"], metrics["speed_ratios_512"]
    copy = metrics["selective_copy"]
    lm = metrics["char_lm"]
    losses = {kind: float(np.mean(m["test_loss"])) for kind, m in lm["models"].items()}
    params = [m["params"] for m in lm["models"].values()]
    gaps = [
        f"{c} {losses[c] - losses['transformer']:+.3f}"
        for c in study.MIN_CELLS
        if c in losses and "transformer" in losses
    ]
    numbers = {
        "eq_float64_worst": _exp(max(worst["float64", m] for m in study.FLOAT32_MODES)),
        "eq_float32_parallel": _exp(worst["float32", "parallel"]),
        "eq_float32_chunked": _exp(worst["float32", "chunked"]),
        "eq_float32_stable": _exp(worst["float32", "stable"]),
        **_growth_numbers(metrics["float32_by_length"]),
        **_community_summary(metrics["speed_community"]),
        "speed_device": speed["device"],
        "speed_batch": str(speed["batch"]),
        "speed_hidden": str(speed["hidden"]),
        "tensor_mib_512": f"{speed['batch'] * 512 * speed['hidden'] * 4 / 2**20:g} MiB",
        "mingru_parallel_vs_gru_step_512": _times(ratios["mingru/parallel vs gru/step"]),
        "copy_shallowest": _accuracies(copy, min),
        "copy_deepest": _accuracies(copy, max),
        "copy_depths": ", ".join(
            sorted({d for per_depth in copy["depths"].values() for d in per_depth}, key=int)
        ),
        "copy_wide": "; ".join(
            f"{cell} {100 * np.mean(run['accuracy']):.1f} % (width {run['d_model']}, "
            f"{run['params']:,} parameters)"
            for cell, run in copy["wide"].items()
        )
        or "not trained in this run",
        "lm_losses": ", ".join(f"{k} {v:.3f}" for k, v in losses.items()),
        "lm_gap_to_transformer": "; ".join(gaps) or "no Transformer in this run",
        "lm_params": f"{min(params):,} to {max(params):,}",
        "lm_train_chars": f"{lm['corpus']['train_chars']:,}",
        "lm_seeds": str(len(next(iter(lm["models"].values()))["test_loss"])),
    }
    for c in study.MIN_CELLS:
        for mode in ("parallel", "chunked"):
            numbers[f"{c}_{mode}_vs_sequential_512"] = _times(
                ratios[f"{c}/{mode} vs {c}/sequential"]
            )
    return numbers


def _growth_numbers(growth: dict[str, dict[str, float]]) -> dict[str, str]:
    """float32 relative error of each scan at the shortest and the longest T, as prose."""
    out = {}
    for mode, by_length in growth.items():
        lengths = sorted(by_length, key=int)
        out[f"f32_{mode}_range"] = (
            f"{_exp(by_length[lengths[0]])} at T = {lengths[0]} and "
            f"{_exp(by_length[lengths[-1]])} at T = {int(lengths[-1]):,}"
        )
    return out


def float32_table(growth: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Largest relative float32 error of each scan against the float64 step loop, per T."""
    return pd.DataFrame(
        {
            mode: {f"T = {int(t):,}": f"{e:.1e}" for t, e in by_length.items()}
            for mode, by_length in growth.items()
        }  # fmt: skip
    ).T
