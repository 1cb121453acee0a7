"""ch06's reading of its metrics: the claims, the findings beside the paper's, notes and tables.

Pure functions of the metrics that ``reprobook.gfn.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import pandas as pd

from reprobook import report
from reprobook.gfn.study import METRICS_VERSION as METRICS_VERSION  # the protocol names it here
from reprobook.gfn.training import ARMS

REQUIRED_KEYS = ("grid", "runs", "aggregate", "map", "claims")
PAPER_CLAIM = (
    "a teacher GFlowNet trained to sample where the student's loss is high gives the student a "
    "curriculum that enhances mode coverage: on the deceptive grid, the teacher-guided student "
    "finds at least as many modes as on-policy and ε-greedy TB at the same number of samples"
)
CLAIMS = {
    "curves_monotone": "every modes-found curve is non-decreasing and ends at its final count "
    "(sanity)",
    "l1_conventions_agree": "summed L1 = mean L1 × number of terminal states, for every run "
    "(sanity)",
    "equal_samples": "every arm drew the same number of fresh trajectories (sanity)",
    "teacher_ge_tb": "the teacher finds at least as many modes as on-policy TB, mean over seeds, "
    "at equal samples",
    "teacher_ge_tb_eps": "the teacher finds at least as many modes as TB + ε-greedy, at equal "
    "samples",
    "teacher_ge_tb_prt": "the teacher finds at least as many modes as TB + PRT buffer, at equal "
    "samples (reported, not asserted)",
    "teacher_ge_every_baseline": "the teacher finds at least as many modes as every baseline run, "
    "at equal samples (the strongest reading of the claim; reported)",
    "teacher_gt_every_baseline": "the teacher finds strictly more modes than every baseline run "
    "(reported)",
    "teacher_ge_every_baseline_at_equal_steps": "at an equal number of student gradient steps, "
    "the teacher finds at least as many modes as every baseline run (reported)",
}
HEADLINE_CLAIMS = ("teacher_ge_tb", "teacher_ge_tb_eps", "teacher_ge_tb_prt")
KEY_ANCHOR = "main_claim"
NOT_RUN = "not run"


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics.

    - ``curves_monotone``: every modes-found curve is non-decreasing and ends at its final count
      (sanity);
    - ``l1_conventions_agree``: every run's summed L1 equals its mean L1 times the number of
      terminal states (sanity: the two conventions differ only by that factor);
    - ``equal_samples``: every arm drew the same number of fresh trajectories (PRT's extra
      iterations are replays), so the curves compare like with like;
    - ``teacher_ge_<arm>``: the teacher's modes found, averaged over seeds, are >= that
      baseline's, at the same number of sampled trajectories;
    - ``teacher_ge_every_baseline``: ... >= every baseline arm's (the strongest reading);
    - ``teacher_gt_every_baseline``: strictly more than every baseline (reported);
    - ``teacher_ge_every_baseline_at_equal_steps``: the same at an equal number of the
      student's gradient steps (PRT takes two per sampled batch; reported).
    """
    runs, agg = metrics["runs"], metrics["aggregate"]
    n_states = metrics["grid"]["n_terminal_states"]
    claims = {
        "curves_monotone": all(
            all(b >= a for a, b in zip(r["modes_found"], r["modes_found"][1:], strict=False))
            and r["modes_found"][-1] == r["final_modes"]
            for per_seed in runs.values()
            for r in per_seed
        ),
        "l1_conventions_agree": all(
            math.isclose(r[w]["sum"], r[w]["mean"] * n_states, rel_tol=1e-9)
            for per_seed in runs.values()
            for r in per_seed
            for w in ("eval_l1", "train_l1")
        ),
        "equal_samples": len({row["samples"] for row in agg.values()}) == 1,
    }
    if "teacher" in agg:
        baselines = [a for a in agg if a != "teacher"]
        teacher = agg["teacher"]["final_modes"]
        for arm in baselines:  # teacher_ge_tb, teacher_ge_tb_eps, teacher_ge_tb_prt
            claims[f"teacher_ge_{arm}"] = teacher >= agg[arm]["final_modes"]
        if baselines:
            steps = agg["teacher"]["modes_at_equal_steps"]
            claims["teacher_ge_every_baseline_at_equal_steps"] = all(
                steps >= agg[a]["modes_at_equal_steps"] for a in baselines
            )
            claims["teacher_ge_every_baseline"] = all(
                teacher >= agg[a]["final_modes"] for a in baselines
            )
            claims["teacher_gt_every_baseline"] = all(
                teacher > agg[a]["final_modes"] for a in baselines
            )
    return claims


def results_table(agg: dict[str, dict], grid: dict) -> pd.DataFrame:
    """Modes found and both L1 conventions per arm, mean ± standard error over seeds."""
    rows = []
    for row in agg.values():
        rows.append({
            "method": row["label"],
            f"modes found (of {grid['n_mode_states']})": (
                f"{row['final_modes']:.1f} ± {row['final_modes_se']:.1f}"
            ),
            "per seed": "/".join(str(m) for m in row["final_modes_per_seed"]),
            "samples to find all (per seed)": "/".join(
                "—" if n is None else f"{n:,}" for n in row["samples_to_all_modes_per_seed"]
            ),
            "eval L1, mean (×1e-5)": (
                f"{row['eval_l1_mean'] * 1e5:.3f} ± {row['eval_l1_mean_se'] * 1e5:.3f}"
            ),
            "eval L1, sum": f"{row['eval_l1_sum']:.3f} ± {row['eval_l1_sum_se']:.3f}",
            "train L1, mean (×1e-5)": f"{row['train_l1_mean'] * 1e5:.3f}",
            "train L1, sum": f"{row['train_l1_sum']:.3f}",
            "modes at equal student steps": f"{row['modes_at_equal_steps']:.1f}",
            "modes in eval samples": f"{row['eval_modes']:.1f}",
            "ms / iteration": f"{row['ms_per_iteration']:.0f}",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("method")


def _modes(row: dict, total: int) -> str:
    per_seed = "/".join(str(m) for m in row["final_modes_per_seed"])
    return f"{row['final_modes']:.1f} of {total} (seeds: {per_seed})"


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this book's run found, in words, keyed by the ids of the chapter's anchors."""
    grid, agg = metrics["grid"], metrics["aggregate"]
    total = grid["n_mode_states"]
    setting = (
        f"torchgfn HyperGrid d = {grid['ndim']}, H = {grid['height']}, official float64 reward "
        f"({total} mode states); {metrics['n_iterations']} iterations × batch "
        f"{metrics['batch_size']} "
        f"({next(iter(agg.values()))['samples']:,} sampled trajectories) per arm, "
        f"{report.plural(metrics['n_seeds'], 'seed')}"
    )
    modes = "; ".join(f"{row['label']} {_modes(row, total)}" for row in agg.values())
    l1 = "; ".join(
        f"{row['label']} {row['eval_l1_mean'] * 1e5:.3f}e-5 (sum {row['eval_l1_sum']:.3f})"
        for row in agg.values()
    )
    claims = metrics["claims"]
    verdicts = "; ".join(
        f"teacher ≥ {row['label']}: {'yes' if claims.get(f'teacher_ge_{arm}') else 'no'}"
        for arm, row in agg.items()
        if arm != "teacher"
    )
    return {
        "main_claim": f"modes found at equal samples, mean over seeds: {verdicts}",
        "grid_setting": setting,
        "grid_modes": modes,
        "grid_l1": "eval L1 (mean over states; sum in brackets): " + l1,
        "reference_run_modes": modes,
        "reference_run_l1": l1,
        "settings": (
            f"C = {metrics['C']:g}, α = {metrics['alpha']:g}, ε = {metrics['epsilon']:g}, "
            f"batch {metrics['batch_size']}, Adam 1e-3 (log Z 1e-1), clip 1.0"
        ),
    }


def reading_notes(metrics: dict) -> str:
    """Markdown describing the run from its numbers (no number is typed by hand)."""
    agg, grid, claims = metrics["aggregate"], metrics["grid"], metrics["claims"]
    total = grid["n_mode_states"]
    lines = []
    if "teacher" in agg:
        t = agg["teacher"]
        for arm, row in agg.items():
            if arm == "teacher":
                continue
            gap = t["final_modes"] - row["final_modes"]
            se = math.hypot(t["final_modes_se"], row["final_modes_se"])
            spread = (
                f"± {se:.1f} standard error over {row['n_seeds']} seeds"
                if row["n_seeds"] > 1
                else "one seed, so no error bar"
            )
            line = (
                f"- Teacher vs {row['label']}: {t['final_modes']:.1f} against "
                f"{row['final_modes']:.1f} of {total} mode states (difference {gap:+.1f}, "
                f"{spread})"
            )
            if row["modes_at_equal_steps"] != row["final_modes"]:
                line += (
                    f"; after as many student gradient steps as the teacher's student took, "
                    f"{row['label']} had found {row['modes_at_equal_steps']:.1f}"
                )
            lines.append(line + ".")
        n_eval = f"{metrics['eval_samples']:,}" if "eval_samples" in metrics else "the"
        fresh = ", ".join(f"{r['label']} {r['eval_modes']:.1f}" for r in agg.values())
        lines.append(
            f"- Distinct modes among {n_eval} fresh samples of each "
            f"final student (what it has learned to sample, not what training visited): {fresh}."
        )
    head = (
        "**Mode discovery**, at an equal number of sampled trajectories. The strongest reading "
        "of the claim (teacher ≥ every baseline, mean over seeds) "
        + ("**holds**" if claims.get("teacher_ge_every_baseline") else "**does not hold**")
        + " in this run; strictly more than every baseline: "
        + ("**yes**" if claims.get("teacher_gt_every_baseline") else "**no**")
        + "."
    )
    best_l1 = min(agg.values(), key=lambda r: r["eval_l1_mean"])
    l1 = (
        f"**Distribution fit.** The lowest eval L1 is {best_l1['label']}'s "
        f"({best_l1['eval_l1_mean']:.3g} mean over {grid['n_terminal_states']:,} terminal states). "
        + "Eval L1 of every arm: "
        + ", ".join(
            f"{r['label']} {r['eval_l1_mean']:.3g}"
            + (f" ± {r['eval_l1_mean_se']:.1g}" if r["n_seeds"] > 1 else "")
            for r in agg.values()
        )
        + ". Differences smaller than the standard errors are not differences"
        + (" (one seed here: no error bars)." if best_l1["n_seeds"] == 1 else ".")
    )
    return "\n".join([head, *lines, "", l1])


def _arms_teacher_first(agg: dict) -> list[str]:
    return sorted(agg, key=lambda arm: arm != "teacher")


def key_number(metrics: dict) -> str:
    """Modes found per arm at equal samples, the teacher first."""
    agg = metrics["aggregate"]
    first = next(iter(agg.values()))
    modes = ", ".join(
        f"{agg[arm]['label']} {report.fmt_mean_se(agg[arm]['final_modes_per_seed'], 1)}"
        for arm in _arms_teacher_first(agg)
    )
    spread = f"mean ± SE over {first['n_seeds']} seeds" if first["n_seeds"] > 1 else "one seed"
    return (
        f"modes found of {metrics['grid']['n_mode_states']} at {first['samples']:,} samples per "
        f"arm ({spread}): {modes}"
    )


def prose_numbers(metrics: dict) -> dict[str, str]:
    """The numbers the chapter's prose discusses, formatted (an arm the run lacks: "not run")."""
    grid, agg = metrics["grid"], metrics["aggregate"]
    first = next(iter(agg.values()))
    lowest = min(agg.values(), key=lambda r: r["eval_l1_mean"])
    highest = max(agg.values(), key=lambda r: r["eval_l1_mean"])
    numbers = {
        "n_seeds": str(metrics["n_seeds"]),
        "n_iterations": f"{metrics['n_iterations']:,}",
        "samples_per_arm": f"{first['samples']:,}",
        "eval_samples": f"{metrics['eval_samples']:,}",
        "grid_ndim": str(grid["ndim"]),
        "grid_height": str(grid["height"]),
        "n_mode_states": str(grid["n_mode_states"]),
        "torchgfn_n_mode_states": str(grid["torchgfn_n_mode_states"]),
        "n_terminal_states": f"{grid['n_terminal_states']:,}",
        "extra_mass_vs_modes": report.pct(
            grid["torchgfn_extra_terminal_mass"] / grid["target_mass_on_modes"], 0
        ),
        "eval_l1_lowest": f"{lowest['label']} {lowest['eval_l1_mean'] * 1e5:.3f}e-5",
        "eval_l1_highest": f"{highest['label']} {highest['eval_l1_mean'] * 1e5:.3f}e-5",
    }
    for arm in ARMS:
        row = agg.get(arm)
        numbers[f"modes_{arm}"] = (
            report.fmt_mean_se(row["final_modes_per_seed"], 1) if row else NOT_RUN
        )
        numbers[f"modes_equal_steps_{arm}"] = (
            f"{row['modes_at_equal_steps']:.1f}" if row else NOT_RUN
        )
        numbers[f"eval_modes_{arm}"] = f"{row['eval_modes']:.1f}" if row else NOT_RUN
    return numbers
