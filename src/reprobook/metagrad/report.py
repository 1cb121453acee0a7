"""ch03's reading of its metrics: the claims, the tables, the findings beside the paper's, the
notes and the numbers the prose discusses.

Pure functions of the metrics that ``reprobook.metagrad.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.metagrad import study
from reprobook.metagrad.study import ARM_LABELS, TARGET_LABELS, better

METRICS_VERSION = study.METRICS_VERSION  # the layout of the metrics that study writes
REQUIRED_KEYS = ("runs", "summary", "cost", "finite_difference_check", "claims")
PAPER_CLAIM = (
    "using only supervised fine-tuning on examples written by a generator trained with exact "
    "metagradient rewards (Dataset Policy Gradient), a target model's LM head can be made to "
    "embed a QR code and the pattern “67”, and to have a lower ℓ² norm"
)
CLAIMS = {
    "tau_matches_finite_differences": "the exact rewards τ agree with central finite "
    "differences to 1e-4 (relative, float64; sanity of the method)",
    "metagradient_within_5x": "all τ of a batch cost at most 5 inner training runs",
    "metagradient_cheaper_than_loo": "all τ of a batch cost less than leave-one-out retraining",
    "dpg_pixel_accuracy_rises": "DPG raises the held-out “67” pixel accuracy by at least 0.25 "
    "(half-way from chance to 1)",
    "dpg_norm_falls": "DPG lowers the held-out norm of the target's head",
}


def _comparison_claims() -> dict[str, str]:
    """What each ``dpg_beats_<arm>_<target>`` and ``adam_beats_sgd_inner_loop_<target>`` says."""
    out = {}
    for target, name in (("sixseven", "“67”"), ("l2_norm", "ℓ²")):
        for arm, label in (("naive", "the naive reward"), ("sgd", "the SGD arm"),
                           ("random", "random rewards")):  # fmt: skip
            out[f"dpg_beats_{arm}_{target}"] = (
                f"{name}: DPG ends better than {label}, both arms' rollouts scored through AdamW"
            )
        out[f"adam_beats_sgd_inner_loop_{target}"] = (
            f"{name}: DPG through AdamW ends better than the SGD arm through its own SGD inner "
            "loop (each pipeline with its own optimizer)"
        )
    return out


CLAIMS |= _comparison_claims()
HEADLINE_CLAIMS = (
    "dpg_pixel_accuracy_rises", "dpg_norm_falls", "dpg_beats_naive_sixseven",
    "adam_beats_sgd_inner_loop_sixseven",
)  # fmt: skip
KEY_ANCHOR = "sixseven_result"
NOT_RUN = "not run"


def check_claims(metrics: dict, min_rise: float = 0.25) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics alone (means over seeds).

    - ``tau_matches_finite_differences``: exact tau within 1e-4 (relative) of central finite
      differences, float64 (sanity of the method);
    - ``metagradient_within_5x``: all tau of a batch cost <= 5 inner training runs;
    - ``metagradient_cheaper_than_loo``: ... and less than leave-one-out retraining;
    - ``dpg_pixel_accuracy_rises``: DPG's "67" pixel accuracy ends at least ``min_rise`` above
      where it started (0.5 is chance: 0.25 is half-way to 1);
    - ``dpg_norm_falls``: DPG's trained head norm ends below where it started;
    - ``dpg_beats_<arm>_<target>``: DPG's end is better than that arm's, both arms' rollouts
      scored through the AdamW inner loop;
    - ``adam_beats_sgd_inner_loop_<target>``: DPG scored through AdamW beats the SGD arm scored
      through its own SGD inner loop (each pipeline with its own optimizer).
    """
    fd, cost, summary = metrics["finite_difference_check"], metrics["cost"], metrics["summary"]
    claims = {
        "tau_matches_finite_differences": fd["max_rel_error"] <= 1e-4,
        "metagradient_within_5x": cost["metagradient_over_inner"] <= 5.0,
        "metagradient_cheaper_than_loo": cost["metagradient_s"] < cost["leave_one_out_s"],
    }
    for target, per_arm in summary.items():
        if "dpg" not in per_arm:
            continue
        dpg = per_arm["dpg"]
        if target == "sixseven":
            claims["dpg_pixel_accuracy_rises"] = dpg["end_mean"] - dpg["start_mean"] >= min_rise
        else:
            claims["dpg_norm_falls"] = dpg["end_mean"] < dpg["start_mean"]
        for arm, cell in per_arm.items():
            if arm == "dpg":
                continue
            claims[f"dpg_beats_{arm}_{target}"] = better(
                dpg["metric"], dpg["end_mean"], cell["end_mean"]
            )
            if arm == "sgd":
                claims[f"adam_beats_sgd_inner_loop_{target}"] = better(
                    dpg["metric"], dpg["end_mean"], cell["end_sgd_mean"]
                )
    return claims


def _pm(cell: dict, which: str) -> str:
    text = f"{cell[f'{which}_mean']:.3f}"
    return text + (f" ± {cell[f'{which}_se']:.3f}" if len(cell[which]) > 1 else "")


def _paired(cell: dict, name: str = "dpg_minus") -> str:
    """A paired difference with its p-value and the seeds where DPG is better."""
    n = len(cell[name])
    text = f"{cell[f'{name}_mean']:+.3f}"
    if n > 1:
        text += f" ± {cell[f'{name}_se']:.3f}, paired t-test p = {cell[f'{name}_p']:.2f}"
    return text + f"; DPG better in {cell[f'{name}_better']} of {report.plural(n, 'seed')}"


def summary_table(metrics: dict) -> pd.DataFrame:
    """Start and end of each target's headline metric per arm (mean +- SE over seeds)."""
    rows = []
    for target, per_arm in metrics["summary"].items():
        for arm, cell in per_arm.items():
            rows.append({
                "target": TARGET_LABELS[target],
                "arm": ARM_LABELS[arm],
                "measured": cell["metric"].replace("_", " "),
                "at step 0": _pm(cell, "start"),
                "at the end (AdamW target)": _pm(cell, "end"),
                "at the end (SGD target)": _pm(cell, "end_sgd"),
                "change (paired)": _pm(cell, "change"),
                "DPG − this arm (paired)": _paired(cell) if "dpg_minus" in cell else "—",
                "end, per seed": "/".join(f"{v:.3f}" for v in cell["end"]),
                "minutes per run": f"{np.mean(cell['seconds']) / 60:.1f}",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["target", "arm"])


def cost_table(cost: dict) -> pd.DataFrame:
    """The attribution-cost table: seconds and multiples of one inner training run."""
    rows = [
        ("one inner training run (M steps, no attribution)", cost["inner_run_s"], 1.0),
        ("all τ at once: exact metagradient", cost["metagradient_s"],
         cost["metagradient_over_inner"]),
        (f"leave-one-out: {cost['n_examples']} retrainings", cost["leave_one_out_s"],
         cost["leave_one_out_over_inner"]),
    ]  # fmt: skip
    return pd.DataFrame(
        [(what, f"{s * 1e3:.1f}", f"{x:.1f}×") for what, s, x in rows],
        columns=["what", "ms", "× one inner run"],
    ).set_index("what")


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this book's run found, in words, keyed by the ids of the chapter's anchors."""
    s, summary, cost = metrics["settings"], metrics["summary"], metrics["cost"]
    fd = metrics["finite_difference_check"]
    seeds = len(metrics["seeds"])
    n_batch = s["n_prompts"] * s["n_rollouts"]
    found: dict[str, str] = {
        "method": (
            f"exact τ by torch.func (grad of a function of M grads) through {s['inner_steps']} "
            f"AdamW steps; central finite differences agree to {fd['max_rel_error']:.1e} "
            "(relative, float64, tiny case)"
        ),
        "sixseven_metric": (
            "the same Φ (s = 20), decoded picture and pixel accuracy, on head.weight.T[:6, :7] "
            "of an untied head"
        ),
        "inner_loop": (
            f"TinyGPT target (width {s['target_d_model']}, {s['target_layers']} layer, "
            f"{metrics['setups'][str(metrics['seeds'][0])]['target_parameters']:,} parameters) "
            f"reset to its pretrained weights every outer step; official AdamW settings with lr "
            f"{s['inner_lr']:g}; M = {s['inner_steps']} steps of {n_batch // s['inner_steps']} "
            f"rollouts; SGD control lr {s['sgd_lr']:g}"
        ),
        "generator": (
            f"TinyGPT generator (width {s['generator_d_model']}, {s['generator_layers']} layers) "
            f"pretrained on a synthetic Markov language; {s['n_prompts']} prompts × "
            f"{s['n_rollouts']} rollouts of {s['completion_length']} tokens at temperature "
            f"{s['temperature']:g}; GRPO (clip {s['clip_ratio']:g}, KL 0), "
            f"lr {s['generator_lr']:g}, {s['outer_steps']} outer steps, "
            f"{report.plural(seeds, 'seed')}"
        ),
        "target_model": (
            f"TinyGPT, {metrics['setups'][str(metrics['seeds'][0])]['target_parameters']:,} "
            "parameters"
        ),
        "hardware": "the device and run time of the run shown are under *This run* in the box "
        "at the top of the page",
        "naive_baseline": (
            "the same construction (one rollout per prompt in each group, each group trained "
            "alone with the same per-step batch, groupless advantages), at DPG's inner lr"
        ),
        "attribution_cost": (
            f"all {cost['n_examples']} τ of a batch: {cost['metagradient_over_inner']:.1f}× one "
            f"inner run; leave-one-out: {cost['leave_one_out_over_inner']:.0f}× "
            f"({cost['leave_one_out_over_metagradient']:.0f}× the metagradient); Spearman(τ, "
            f"leave-one-out) = {cost['spearman_tau_loo']:.2f}"
        ),
    }
    main, versus_naive = [], []
    for target, per_arm in summary.items():
        if "dpg" not in per_arm:
            continue
        dpg = per_arm["dpg"]
        name = "67" if target == "sixseven" else "ℓ²"
        main.append(f"{name}: {_pm(dpg, 'start')} → {_pm(dpg, 'end')}")
        if "naive" in per_arm:
            versus_naive.append(
                f"{name}: DPG {_pm(dpg, 'end')} vs naive {_pm(per_arm['naive'], 'end')} "
                f"(DPG − naive {_paired(per_arm['naive'])})"
            )
        if target == "sixseven":
            found["sixseven_result"] = (
                f"DPG ends at {_pm(dpg, 'end')} (per seed "
                f"{'/'.join(f'{v:.2f}' for v in dpg['end'])})"
            )
            found["community_reproduction"] = f"our DPG: {_pm(dpg, 'end')} (different scale)"
            if "sgd" in per_arm:
                sgd = per_arm["sgd"]
                found["adam_vs_sgd"] = (
                    f"67, each target trained by its own inner loop: DPG through AdamW "
                    f"{_pm(dpg, 'end')} vs the SGD arm through SGD {_pm(sgd, 'end_sgd')} "
                    f"(DPG − SGD {_paired(sgd, 'own_minus')}); both scored through AdamW: SGD "
                    f"arm {_pm(sgd, 'end')} (DPG − SGD {_paired(sgd)})"
                )
        else:
            others = ", ".join(
                f"{arm} {_pm(cell, 'change')}" for arm, cell in per_arm.items() if arm != "dpg"
            )
            found["l2_result"] = (
                f"DPG: {_pm(dpg, 'start')} → {_pm(dpg, 'end')} (change {_pm(dpg, 'change')}"
                + (f"; changes of the others: {others}" if others else "")
                + ")"
            )
    if main:
        found["main_claim"] = "held-out, DPG, mean over seeds: " + "; ".join(main)
    if versus_naive:
        found["dpg_vs_naive"] = "; ".join(versus_naive)
    return found


def reading_notes(metrics: dict) -> str:
    """Markdown describing the run from its numbers (no number is typed by hand).

    Comparisons between arms are paired by seed (same language, models and prompts) and
    tested with a paired t-test; with three seeds only large, consistent gaps reach p < 0.05."""
    summary, claims = metrics["summary"], metrics["claims"]
    lines = []
    for target, per_arm in summary.items():
        if "dpg" not in per_arm:
            continue
        dpg = per_arm["dpg"]
        what = "pixel accuracy" if target == "sixseven" else "head norm"
        line = (
            f"- **{TARGET_LABELS[target]}**: DPG moved the held-out {what} from "
            f"{_pm(dpg, 'start')} to {_pm(dpg, 'end')} (change {_pm(dpg, 'change')}, paired)"
        )
        if target == "l2_norm":
            runs = [r for r in metrics["runs"] if r["target"] == target and r["arm"] == "dpg"]
            floor = float(np.mean([r["head_norm_floor"] for r in runs]))
            line += (
                f"; moving every weight by lr × M towards 0 would reach {floor:.3f}, so DPG "
                f"ends {'above' if dpg['end_mean'] > floor else 'at or below'} that reference"
            )
        lines.append(line + ".")
        for arm, cell in per_arm.items():
            if arm == "dpg" or "dpg_minus" not in cell:
                continue
            verdict = "better" if claims.get(f"dpg_beats_{arm}_{target}") else "not better"
            lines.append(
                f"  - against {ARM_LABELS[arm]}: {_pm(cell, 'end')}; DPG is {verdict} on average "
                f"(DPG − this arm {_paired(cell)})."
            )
            if "own_minus" in cell:
                own = (
                    "better" if claims.get(f"adam_beats_sgd_inner_loop_{target}") else "not better"
                )
                lines.append(
                    f"  - the SGD arm scored through its own SGD inner loop reaches "
                    f"{_pm(cell, 'end_sgd')}; DPG through AdamW is {own} "
                    f"(DPG − SGD {_paired(cell, 'own_minus')})."
                )
    cost = metrics["cost"]
    lines.append(
        f"- **Cost**: all {cost['n_examples']} rewards of a batch took "
        f"{cost['metagradient_over_inner']:.1f} inner runs' time "
        f"({'within' if claims['metagradient_within_5x'] else 'over'} the 5× goal); "
        f"leave-one-out took {cost['leave_one_out_over_inner']:.0f}. The median per-step "
        f"gradient of the head patch is {cost['patch_gradient_median']:.1e}, against "
        f"√eps_root = {cost['sqrt_eps_root']:.1e} "
        f"({100 * cost['patch_gradient_share_below_sqrt_eps_root']:.0f} % of the patch below it)."
    )
    return "\n".join(lines)


def _dpg_cell(metrics: dict, target: str) -> dict | None:
    return metrics["summary"].get(target, {}).get("dpg")


def key_number(metrics: dict) -> str:
    """DPG's held-out "67" pixel accuracy, start to end (mean ± SE over seeds)."""
    dpg = _dpg_cell(metrics, "sixseven")
    if dpg is None:
        return "the “67” target was not run with DPG"
    return (
        f"held-out “67” pixel accuracy with DPG {_pm(dpg, 'start')} → {_pm(dpg, 'end')} "
        f"({report.plural(len(dpg['end']), 'seed')})"
    )


def _versus(metrics: dict, target: str, arm: str, name: str = "dpg_minus") -> str:
    cell = metrics["summary"].get(target, {}).get(arm)
    return _paired(cell, name) if cell is not None and name in cell else NOT_RUN


def prose_numbers(metrics: dict) -> dict[str, str]:
    """The numbers the chapter's prose discusses, formatted (the same keys for every run:
    ``not run`` where the run had no such target or arm)."""
    s, cost = metrics["settings"], metrics["cost"]
    facts = metrics["setups"][str(metrics["seeds"][0])]
    batch = s["n_prompts"] * s["n_rollouts"]
    out = {
        "target_parameters": f"{facts['target_parameters']:,}",
        "generator_parameters": f"{facts['generator_parameters']:,}",
        "batch_shape": (
            f"{s['n_prompts']} prompts × {s['n_rollouts']} rollouts of "
            f"{s['completion_length']} tokens"
        ),
        "batch_size": str(batch),
        "group_size": str(s["n_prompts"]),  # a naive group holds one rollout of every prompt
        "outer_steps": str(s["outer_steps"]),
        "inner_steps": str(s["inner_steps"]),
        "inner_lr": f"{s['inner_lr']:g}",
        "sgd_lr": f"{s['sgd_lr']:g}",
        # an AdamW step moves a weight by about lr: 20 |P - P0| <= 20 lr M
        "phi_linear_bound": f"{20 * s['inner_lr'] * s['inner_steps']:.2g}",
        "n_seeds": str(len(metrics["seeds"])),
        "n_examples": str(cost["n_examples"]),
        "patch_gradient_median": f"{cost['patch_gradient_median']:.1e}",
        "sqrt_eps_root": f"{cost['sqrt_eps_root']:.1e}",
        "cost_over_inner": f"{cost['metagradient_over_inner']:.1f}×",
        "loo_over_inner": f"{cost['leave_one_out_over_inner']:.0f}×",
        "spearman_tau_loo": f"{cost['spearman_tau_loo']:.2f}",
        "dpg_minus_naive_67": _versus(metrics, "sixseven", "naive"),
        "dpg_minus_random_67": _versus(metrics, "sixseven", "random"),
        "dpg_minus_sgd_own_67": _versus(metrics, "sixseven", "sgd", "own_minus"),
    }
    dpg67, dpg_l2 = _dpg_cell(metrics, "sixseven"), _dpg_cell(metrics, "l2_norm")
    for key, cell, which in (
        ("dpg67_start", dpg67, "start"), ("dpg67_end", dpg67, "end"),
        ("dpg_l2_start", dpg_l2, "start"), ("dpg_l2_end", dpg_l2, "end"),
        ("dpg_l2_change", dpg_l2, "change"),
    ):  # fmt: skip
        out[key] = _pm(cell, which) if cell is not None else NOT_RUN
    others = metrics["summary"].get("l2_norm", {})
    out["l2_other_changes"] = (
        ", ".join(f"{arm} {_pm(cell, 'change')}" for arm, cell in others.items() if arm != "dpg")
        or NOT_RUN
    )
    return out
