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
from reprobook.metagrad.study import ARM_LABELS, TARGET_LABELS

METRICS_VERSION = study.METRICS_VERSION  # the layout of the metrics that study writes
REQUIRED_KEYS = (
    "runs", "summary", "judge", "language", "sgd_grid", "gradient_check", "cost",
    "finite_difference_check", "claims",
)  # fmt: skip
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
    "judge_dpg_pixel_accuracy_rises": "the independent judge (a fresh target fine-tuned by "
    "torch's AdamW for many more steps on fresh rollouts) reads a “67” pixel accuracy from "
    "DPG's final generator at least 0.25 above the pretrained generator's, in every seed",
    "adam_beats_sgd_tuned_sixseven": "“67”: DPG through AdamW ends better than the SGD arm "
    "through its own SGD inner loop at the best learning rate of the grid, in every seed",
    "dpg_gradient_agrees_sgd": "on the enumerable problem, DPG's gradient through the SGD inner "
    "loop points along the true gradient (cosine >= 0.9, lower end of mean - 2 SE, at the "
    "chapter's M and the largest sample)",
    "dpg_gradient_agrees_adamw": "the same through the AdamW inner loop",
    "limit_gradient_is_exact": "DPG's formula at the population weights equals the true "
    "gradient (relative error <= 1e-8; sanity of the check)",
}
GRADIENT_COSINE = 0.9


def _comparison_claims() -> dict[str, str]:
    """What each ``dpg_beats_<arm>_<target>`` and ``adam_beats_sgd_inner_loop_<target>`` says."""
    out = {}
    for target, name in (("sixseven", "“67”"), ("l2_norm", "ℓ²")):
        for arm, label in (("naive", "the naive reward"), ("sgd", "the SGD arm"),
                           ("random", "random rewards")):  # fmt: skip
            out[f"dpg_beats_{arm}_{target}"] = (
                f"{name}: DPG ends better than {label} in every seed, both arms' rollouts "
                "scored through AdamW"
            )
            out[f"judge_dpg_beats_{arm}_{target}"] = (
                f"{name}: by the independent judge, DPG's final data beat {label}'s in every seed"
            )
        out[f"adam_beats_sgd_inner_loop_{target}"] = (
            f"{name}: DPG through AdamW ends better than the SGD arm through its own SGD inner "
            "loop at the profile's SGD lr, in every seed (each pipeline with its own optimizer)"
        )
    return out


CLAIMS |= _comparison_claims()
HEADLINE_CLAIMS = (
    "dpg_pixel_accuracy_rises", "judge_dpg_pixel_accuracy_rises", "dpg_beats_random_l2_norm",
    "dpg_beats_naive_sixseven", "adam_beats_sgd_tuned_sixseven",
)  # fmt: skip
KEY_ANCHOR = "sixseven_result"
NOT_RUN = "not run"


def check_claims(metrics: dict, min_rise: float = 0.25) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics alone (over seeds).

    - ``tau_matches_finite_differences``: exact tau within 1e-4 (relative) of central finite
      differences, float64 (sanity of the method);
    - ``metagradient_within_5x``: all tau of a batch cost <= 5 inner training runs;
    - ``metagradient_cheaper_than_loo``: ... and less than leave-one-out retraining;
    - ``dpg_pixel_accuracy_rises``: DPG's "67" pixel accuracy ends at least ``min_rise`` above
      where it started (0.5 is chance: 0.25 is half-way to 1);
    - ``dpg_norm_falls``: DPG's trained head norm ends below where it started;
    - ``dpg_beats_<arm>_<target>``: DPG's end is better than that arm's in every seed (paired
      by seed), both arms' rollouts scored through the AdamW inner loop;
    - ``adam_beats_sgd_inner_loop_<target>``: DPG scored through AdamW beats the SGD arm scored
      through its own SGD inner loop in every seed (each pipeline with its own optimizer);
    - ``judge_*``: the same readings by the independent judge (its rise: at least ``min_rise``
      in every seed);
    - ``adam_beats_sgd_tuned_sixseven``: ... against SGD at the grid's best learning rate;
    - ``dpg_gradient_agrees_*`` and ``limit_gradient_is_exact``: Experiment 5's check.
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
            if arm == "dpg" or "dpg_minus" not in cell:
                continue
            claims[f"dpg_beats_{arm}_{target}"] = _every_seed(cell)
            if "own_minus" in cell:
                claims[f"adam_beats_sgd_inner_loop_{target}"] = _every_seed(cell, "own_minus")
    for target, per_arm in metrics.get("judge", {}).items():
        dpg = per_arm.get("dpg")
        if dpg is None:
            continue
        if target == "sixseven":
            claims["judge_dpg_pixel_accuracy_rises"] = all(c >= min_rise for c in dpg["change"])
        for arm, cell in per_arm.items():
            if arm != "dpg" and "dpg_minus" in cell:
                claims[f"judge_dpg_beats_{arm}_{target}"] = _every_seed(cell)
    grid = metrics.get("sgd_grid") or {}
    if grid:
        claims["adam_beats_sgd_tuned_sixseven"] = grid["dpg_minus_best_better"] == len(
            grid["dpg_minus_best"]
        )
    gradient = metrics.get("gradient_check")
    if gradient:
        claims["limit_gradient_is_exact"] = gradient["limit_relative_error"] <= 1e-8
        for loop in ("sgd", "adamw"):
            row = gradient_headline_row(gradient, loop)
            if row is not None:
                low = row["cosine_mean"] - 2 * row["cosine_se"]
                claims[f"dpg_gradient_agrees_{loop}"] = low >= GRADIENT_COSINE
    return claims


def _every_seed(cell: dict, name: str = "dpg_minus") -> bool:
    """DPG better than the arm in every seed (paired by seed)."""
    return cell[f"{name}_better"] == len(cell[name])


def gradient_row(gradient: dict, loop: str, steps: int | None) -> dict | None:
    """The largest sample's cell of ``loop`` at ``steps`` inner steps (None if not studied)."""
    rows = [r for r in gradient["rows"] if r["loop"] == loop and r["inner_steps"] == steps]
    return max(rows, key=lambda r: r["n"]) if rows else None


def gradient_headline_row(gradient: dict, loop: str) -> dict | None:
    """The cell the gradient claims read: the chapter's own M (``chapter_steps``) and the
    largest sample; None when that M was not in the study."""
    return gradient_row(gradient, loop, gradient.get("chapter_steps"))


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
                "end, per seed": report.per_seed(cell["end"], 3),
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
    judge = metrics.get("judge", {}).get("sixseven", {}).get("dpg")
    if judge is not None and "sixseven_result" in found:
        found["sixseven_result"] += (
            f"; the independent judge reads {_pm(judge, 'start')} → {_pm(judge, 'end')}"
        )
    grid = metrics.get("sgd_grid") or {}
    if grid and "adam_vs_sgd" in found:
        found["adam_vs_sgd"] += (
            f"; against SGD at the best rate of the grid ({grid['best_lr']:g}): DPG − SGD "
            f"{_paired(grid, 'dpg_minus_best')}"
        )
    gradient = metrics.get("gradient_check")
    if gradient:
        parts = []
        for loop in ("sgd", "adamw"):
            row = gradient_headline_row(gradient, loop)
            if row is not None:
                parts.append(
                    f"{loop} {row['cosine_mean']:.2f} ± {row['cosine_se']:.2f} (M = "
                    f"{row['inner_steps']}, n = {row['n']:,})"
                )
        found["theorem_3_1"] = (
            f"cosine of DPG's gradient with the true one on an enumerable problem "
            f"({gradient['n_sequences']} sequences, tabular generator): " + "; ".join(parts)
        )
    language = metrics.get("language", {})
    if language:
        found["kl_and_language"] = "KL 0 here too; held-out rollouts' chain NLL, " + (
            "; ".join(
                f"{'67' if t == 'sixseven' else 'ℓ²'} DPG {_pm(c['dpg'], 'start')} → "
                f"{_pm(c['dpg'], 'end')}"
                for t, c in language.items() if "dpg" in c
            )
            + f" nats per token (the language's own text: {entropy_rate(metrics):.2f})"
        )  # fmt: skip
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
            verdict = (
                "better in every seed"
                if claims.get(f"dpg_beats_{arm}_{target}")
                else "not better in every seed"
            )
            lines.append(
                f"  - against {ARM_LABELS[arm]}: {_pm(cell, 'end')}; DPG is {verdict} "
                f"(DPG − this arm {_paired(cell)})."
            )
            if "own_minus" in cell:
                own = (
                    "better in every seed"
                    if claims.get(f"adam_beats_sgd_inner_loop_{target}")
                    else "not better in every seed"
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
    return "\n".join(lines + evidence_notes(metrics))


def evidence_notes(metrics: dict) -> list[str]:
    """Notes on the judge, the language, the SGD grid and the gradient check, from numbers."""
    claims, lines = metrics["claims"], []
    judge = metrics.get("judge", {})
    if "sixseven" in judge and "dpg" in judge["sixseven"]:
        dpg = judge["sixseven"]["dpg"]
        held = (
            "in every seed" if claims.get("judge_dpg_pixel_accuracy_rises") else "not in every seed"
        )
        lines.append(
            f"- **The independent judge** reads DPG's “67” from {_pm(dpg, 'start')} (pretrained "
            f"generator) to {_pm(dpg, 'end')} (final generator): higher {held}."
        )
    for target, per_arm in judge.items():
        for arm, cell in per_arm.items():
            if arm != "dpg" and "dpg_minus" in cell:
                lines.append(
                    f"  - judge, {TARGET_LABELS[target]}, against {ARM_LABELS[arm]}: "
                    f"DPG − this arm {_paired(cell)}."
                )
    rate = entropy_rate(metrics)
    for target, per_arm in metrics.get("language", {}).items():
        parts = ", ".join(
            f"{arm} {_pm(cell, 'start')} → {_pm(cell, 'end')}" for arm, cell in per_arm.items()
        )
        lines.append(
            f"- **Still the language?** On {TARGET_LABELS[target]}, the held-out rollouts' NLL "
            f"under the true chain (nats per token; the language's own text: {rate:.2f}), start "
            f"→ end: {parts}."
        )
    grid = metrics.get("sgd_grid") or {}
    if grid:
        lines.append(
            f"- **SGD's learning rate**: of {', '.join(grid['per_lr'])}, {grid['best_lr']:g} gave "
            f"the SGD arm its best “67” through its own loop; DPG through AdamW minus it: "
            f"{_paired(grid, 'dpg_minus_best')}."
        )
    gradient = metrics.get("gradient_check")
    if gradient:
        for loop in ("sgd", "adamw"):
            row = gradient_headline_row(gradient, loop)
            if row is None:
                continue
            verdict = "holds" if claims.get(f"dpg_gradient_agrees_{loop}") else "does not hold"
            lines.append(
                f"- **Gradient check, {loop}**: at M = {row['inner_steps']} and n = {row['n']:,}, "
                f"cosine {row['cosine_mean']:.2f} ± {row['cosine_se']:.2f} with the true "
                f"gradient (the ≥ {GRADIENT_COSINE} claim {verdict})."
            )
    return lines


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
    return _versus_in(metrics["summary"], target, arm, name)


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
    out |= _new_evidence_numbers(metrics)
    return out


def _cell_text(table: dict, target: str, arm: str, which: str) -> str:
    cell = table.get(target, {}).get(arm)
    return _pm(cell, which) if cell is not None and which in cell else NOT_RUN


def _new_evidence_numbers(metrics: dict) -> dict[str, str]:
    """Prose numbers of the judge, the language check, the SGD grid and the gradient check."""
    judge, language = metrics.get("judge", {}), metrics.get("language", {})
    out = {
        "judge_steps": str(metrics["settings"].get("judge_steps", NOT_RUN)),
        "judge_rollouts": NOT_RUN,
        "entropy_rate": f"{entropy_rate(metrics):.2f}",
    }
    s = metrics["settings"]
    if "judge_steps" in s:
        per_step = s["n_prompts"] * s["n_rollouts"] // s["inner_steps"]
        out["judge_rollouts"] = f"{s['judge_steps'] * per_step:,}"
    for key, target in (("67", "sixseven"), ("l2", "l2_norm")):
        for which in ("start", "end", "change"):
            out[f"judge_dpg_{key}_{which}"] = _cell_text(judge, target, "dpg", which)
            out[f"chain_nll_dpg_{key}_{which}"] = _cell_text(language, target, "dpg", which)
        for which in ("start", "end"):
            out[f"rare_dpg_{key}_{which}"] = _cell_text(language, target, "dpg", f"rare_{which}")
        for arm in ("naive", "random"):
            out[f"judge_dpg_minus_{arm}_{key}"] = _versus_in(judge, target, arm)
        out[f"chain_nll_random_{key}_end"] = _cell_text(language, target, "random", "end")
    grid = metrics.get("sgd_grid") or {}
    out["sgd_lr_grid"] = ", ".join(grid["per_lr"]) if grid else NOT_RUN
    out["sgd_best_lr"] = f"{grid['best_lr']:g}" if grid else NOT_RUN
    out["dpg_minus_sgd_best_67"] = _paired(grid, "dpg_minus_best") if grid else NOT_RUN
    gradient = metrics.get("gradient_check")
    for loop in ("sgd", "adamw"):
        row = gradient_headline_row(gradient, loop) if gradient else None
        out[f"gradient_cosine_{loop}"] = (
            f"{row['cosine_mean']:.2f} ± {row['cosine_se']:.2f}" if row else NOT_RUN
        )
        out[f"gradient_cell_{loop}"] = (
            f"M = {row['inner_steps']}, n = {row['n']:,}" if row else NOT_RUN
        )
    out["gradient_sequences"] = f"{gradient['n_sequences']}" if gradient else NOT_RUN
    for loop in ("sgd", "adamw"):
        row = None
        if gradient:
            row = gradient_row(gradient, loop, min(r["inner_steps"] for r in gradient["rows"]))
        out[f"gradient_{loop}_fewest_steps"] = (
            f"cosine {row['cosine_mean']:.2f} ± {row['cosine_se']:.2f} at M = "
            f"{row['inner_steps']}, n = {row['n']:,}" if row else NOT_RUN
        )  # fmt: skip
    out["gradient_problem"] = (
        f"all {gradient['n_sequences']} sequences of {gradient['length']} tokens from "
        f"{gradient['vocab']}, and a float64 TinyGPT of width {gradient['d_model']} as the target"
        if gradient else NOT_RUN
    )  # fmt: skip
    out["gradient_draws"] = (
        f"{gradient['draws']} draws on each of {report.plural(gradient['problems'], 'problem')}"
        if gradient else NOT_RUN
    )  # fmt: skip
    kept = [r["samples"]["end"] for r in metrics.get("runs", []) if "samples" in r]
    out["samples_shown"] = str(len(kept[0])) if kept else NOT_RUN
    return out


def _versus_in(table: dict, target: str, arm: str, name: str = "dpg_minus") -> str:
    cell = table.get(target, {}).get(arm)
    return _paired(cell, name) if cell is not None and name in cell else NOT_RUN


# --- the independent judge, the language, the SGD grid, the gradient check ----------------

TOKEN_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tokens_text(tokens: list[int]) -> str:
    """Tokens as one letter each (a = 0, ..., z = 25, 0 = 26, ...): a rollout fits one line."""
    if any(not 0 <= t < len(TOKEN_LETTERS) for t in tokens):
        raise ValueError(f"tokens must be in [0, {len(TOKEN_LETTERS)}) to be shown as letters")
    return "".join(TOKEN_LETTERS[t] for t in tokens)


def judge_table(metrics: dict) -> pd.DataFrame:
    """The judge's reading of each target's metric per arm, start to end, DPG - arm paired."""
    rows = []
    for target, per_arm in metrics["judge"].items():
        for arm, cell in per_arm.items():
            rows.append({
                "target": TARGET_LABELS[target], "arm": ARM_LABELS[arm],
                "judged": cell["metric"].replace("_", " "),
                "pretrained generator": _pm(cell, "start"), "final generator": _pm(cell, "end"),
                "change (paired)": _pm(cell, "change"),
                "DPG − this arm (paired)": _paired(cell) if "dpg_minus" in cell else "—",
                "end, per seed": report.per_seed(cell["end"], 3),
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["target", "arm"])


def language_table(metrics: dict) -> pd.DataFrame:
    """Held-out rollouts' NLL under the true chain per arm, start and end (nats per token), and
    the share of their transitions that the chain takes with probability below 1e-3."""
    rows = []
    for target, per_arm in metrics["language"].items():
        for arm, cell in per_arm.items():
            rows.append({
                "target": TARGET_LABELS[target], "arm": ARM_LABELS[arm],
                "NLL at step 0": _pm(cell, "start"), "NLL at the end": _pm(cell, "end"),
                "change (paired)": _pm(cell, "change"),
                "NLL end, per seed": report.per_seed(cell["end"], 3),
                "rare transitions at step 0": _pm(cell, "rare_start"),
                "rare transitions at the end": _pm(cell, "rare_end"),
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["target", "arm"])


def entropy_rate(metrics: dict) -> float:
    """The language's entropy rate (nats per token), mean over seeds: the NLL of its own text."""
    return float(np.mean([f["language_entropy_rate"] for f in metrics["setups"].values()]))


def samples_table(metrics: dict, target: str, seed: int | None = None) -> pd.DataFrame:
    """Held-out rollouts of the pretrained and final generators of each arm, as letters."""
    runs = [r for r in metrics["runs"] if r["target"] == target and "samples" in r]
    if not runs:
        raise ValueError(f"no run of target {target!r} kept samples")
    seed = runs[0]["seed"] if seed is None else seed
    runs = [r for r in runs if r["seed"] == seed]
    if not runs:
        raise ValueError(f"no run of seed {seed} kept samples for target {target!r}")
    rows = [("pretrained", s) for s in runs[0]["samples"]["start"]]
    rows += [(ARM_LABELS[r["arm"]], s) for r in runs for s in r["samples"]["end"]]
    return pd.DataFrame(
        [
            {
                "generator": who,
                "prompt": tokens_text(s["prompt"]),
                "rollout": tokens_text(s["completion"]),
                "NLL under the chain": f"{s['chain_nll']:.2f}",
            }
            for who, s in rows
        ]  # fmt: skip
    ).set_index("generator")


def sgd_grid_table(metrics: dict) -> pd.DataFrame:
    """The SGD arm on "67" at each inner learning rate, against DPG (paired at the best)."""
    grid = metrics["sgd_grid"]
    rows = []
    for key, cell in grid["per_lr"].items():
        rows.append({
            "SGD inner lr": key, "through its own SGD loop": _pm(cell, "own"),
            "through AdamW": _pm(cell, "adamw"), "own, per seed": report.per_seed(cell["own"], 3),
            "best": "✓" if cell["lr"] == grid["best_lr"] else "",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("SGD inner lr")


def gradient_table(metrics: dict) -> pd.DataFrame:
    """DPG's gradient against the true one, per inner loop and M (rows) and n (columns): cosine
    mean ± SE over draws, and the median relative error |estimate − true| / |true|."""
    gradient = metrics["gradient_check"]
    table: dict = {}
    for r in gradient["rows"]:
        label = (
            f"{r['optimizer']} (lr {r['lr']:g}), M = {r['inner_steps']} "
            f"(|true gradient| {r['true_gradient_norm']:.1e})"
        )
        table.setdefault(label, {})[f"n = {r['n']:,}"] = (
            f"cos {r['cosine_mean']:.2f} ± {r['cosine_se']:.2f}; "
            f"rel. error {r['relative_error_median']:.2f}"
        )
    return pd.DataFrame(table).T
