"""ch06's reading of its metrics: the claims, the findings beside the paper's, notes and tables.

Pure functions of the metrics that ``reprobook.gfn.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import pandas as pd

from reprobook import report
from reprobook.gfn.study import METRICS_VERSION as METRICS_VERSION  # the protocol names it here
from reprobook.gfn.training import ARM_LABELS, ARMS

REQUIRED_KEYS = ("grid", "runs", "aggregate", "map", "claims")
PAPER_CLAIM = (
    "a teacher GFlowNet trained to sample where the student's loss is high gives the student a "
    "curriculum that enhances mode coverage: on the deceptive grid, the teacher-guided student "
    "finds more modes than on-policy and ε-greedy TB at the same number of samples"
)
EVERY_SEED = (
    "in every seed (each seed's arms start from the same student), with the one-sided paired "
    "t-test over seeds reported beside it"
)
CLAIMS = {
    "curves_monotone": "every modes-found curve is non-decreasing and ends at its final count "
    "(sanity)",
    "l1_conventions_agree": "summed L1 = mean L1 × number of terminal states, for every run "
    "(sanity)",
    "equal_samples": "every arm drew the same number of fresh trajectories (sanity)",
    "teacher_beats_tb": "the teacher arm finds more modes than on-policy TB at equal samples, "
    + EVERY_SEED,
    "teacher_beats_tb_eps": "the teacher arm finds more modes than TB + ε-greedy at equal "
    "samples, " + EVERY_SEED,
    "teacher_beats_tb_prt": "the teacher arm finds more modes than TB + PRT buffer at equal "
    "samples, " + EVERY_SEED + " (reported, not asserted)",
    "teacher_beats_tb_prt_at_equal_steps": "the same against TB + PRT buffer at an equal number "
    "of student gradient steps (reported)",
    "student_beats_tb_fresh": "the teacher-guided student itself, sampled afresh after "
    "training, hits more distinct modes than the on-policy TB student, "
    + EVERY_SEED
    + " (reported)",
}
HEADLINE_CLAIMS = (
    "teacher_beats_tb", "teacher_beats_tb_eps", "teacher_beats_tb_prt", "student_beats_tb_fresh",
)  # fmt: skip
KEY_ANCHOR = "main_claim"
NOT_RUN = "not run"


def per_seed(metrics: dict, arm: str, key: str) -> list[float]:
    """One arm's value of ``key`` (``final_modes``, ``eval_modes``, ...) per seed, in seed order."""
    return [r[key] for r in sorted(metrics["runs"][arm], key=lambda r: r["seed"])]


def comparison(metrics: dict, arm: str, key: str = "final_modes") -> report.Paired:
    """The teacher arm against ``arm`` on ``key``, paired by seed (teacher - arm)."""
    return report.paired(per_seed(metrics, "teacher", key), per_seed(metrics, arm, key))


def beats_every_seed(paired: report.Paired) -> bool:
    """The claim's rule: higher in every seed (the t-test is reported, not required)."""
    return paired.wins == paired.n


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics.

    - ``curves_monotone``: every modes-found curve is non-decreasing and ends at its final count
      (sanity);
    - ``l1_conventions_agree``: every run's summed L1 equals its mean L1 times the number of
      terminal states (sanity: the two conventions differ only by that factor);
    - ``equal_samples``: every arm drew the same number of fresh trajectories (PRT's extra
      iterations are replays), so the curves compare like with like;
    - ``teacher_beats_<arm>``: the teacher arm found more modes than that baseline in every
      seed, at the same number of sampled trajectories (paired by seed);
    - ``teacher_beats_tb_prt_at_equal_steps``: the same against PRT at an equal number of the
      student's gradient steps (PRT takes two per sampled batch);
    - ``student_beats_tb_fresh``: among fresh samples of the final students, the teacher-guided
      student hit more distinct modes than on-policy TB's, in every seed.
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
        for arm in (a for a in agg if a != "teacher"):  # teacher_beats_tb, _tb_eps, _tb_prt
            claims[f"teacher_beats_{arm}"] = beats_every_seed(comparison(metrics, arm))
        if "tb_prt" in agg:
            claims["teacher_beats_tb_prt_at_equal_steps"] = beats_every_seed(
                comparison(metrics, "tb_prt", "modes_at_equal_steps")
            )
        if "tb" in agg:
            claims["student_beats_tb_fresh"] = beats_every_seed(
                comparison(metrics, "tb", "eval_modes")
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
            "per seed": report.per_seed(row["final_modes_per_seed"]),
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
            "modes in the student's own batches": f"{row['student_modes']:.1f}",
            "modes in eval samples (per seed)": report.per_seed(row["eval_modes_per_seed"]),
            "ms / iteration": f"{row['ms_per_iteration']:.0f}",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("method")


def _modes(row: dict, total: int) -> str:
    per_seed = report.per_seed(row["final_modes_per_seed"])
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
        f"teacher > {row['label']}: {'yes' if claims.get(f'teacher_beats_{arm}') else 'no'}"
        for arm, row in agg.items()
        if arm != "teacher"
    )
    fresh = ""
    if "student_beats_tb_fresh" in claims:
        fresh = "; the teacher-guided student's own fresh samples > TB's: " + (
            "yes" if claims["student_beats_tb_fresh"] else "no"
        )
    return {
        "main_claim": f"modes found at equal samples, in every seed: {verdicts}{fresh}",
        "grid_setting": setting,
        "grid_modes": modes,
        "grid_l1": "eval L1 (mean over states; sum in brackets): " + l1,
        "reference_run_modes": modes,
        "settings": (
            f"C = {metrics['C']:g}, α = {metrics['alpha']:g}, ε = {metrics['epsilon']:g}, "
            f"batch {metrics['batch_size']}, Adam 1e-3 (log Z 1e-1), clip 1.0"
        ),
    }


def _teacher_lines(metrics: dict) -> list[str]:
    agg, total = metrics["aggregate"], metrics["grid"]["n_mode_states"]
    t = agg["teacher"]
    lines = []
    for arm, row in agg.items():
        if arm == "teacher":
            continue
        line = (
            f"- Teacher vs {row['label']}: {t['final_modes']:.1f} against "
            f"{row['final_modes']:.1f} of {total} mode states; teacher − {row['label']}, paired "
            f"by seed: {comparison(metrics, arm).higher_text(1, 'more')}"
        )
        if row["modes_at_equal_steps"] != row["final_modes"]:
            line += (
                f". After as many student gradient steps as the teacher's student took, "
                f"{row['label']} had found {row['modes_at_equal_steps']:.1f} "
                f"(teacher − {row['label']}: "
                f"{comparison(metrics, arm, 'modes_at_equal_steps').higher_text(1, 'more')})"
            )
        lines.append(line + ".")
    return lines


def _student_lines(metrics: dict) -> list[str]:
    agg, claims = metrics["aggregate"], metrics["claims"]
    t = agg["teacher"]
    n_eval = f"{metrics['eval_samples']:,}" if "eval_samples" in metrics else "the"
    fresh = ", ".join(f"{r['label']} {r['eval_modes']:.1f}" for r in agg.values())
    lines = [
        f"- **What the students learned to sample.** Distinct modes among {n_eval} fresh "
        f"samples of each final student (mean over seeds): {fresh}."
    ]
    if "tb" not in agg:
        return lines
    lines.append(
        "- The teacher-guided student against TB's, paired by seed: "
        + comparison(metrics, "tb", "eval_modes").higher_text(1, "more")
        + ". Of the teacher arm's "
        + f"{t['final_modes']:.1f} modes found in training, its student's own batches "
        + f"found {t['student_modes']:.1f}; the rest came only from the teacher's samples."
    )
    if claims.get("student_beats_tb_fresh"):
        lines.append(
            "- So the student itself has learned to reach more modes than on-policy TB: the "
            "curriculum reached the amortized sampler, which is the paper's story."
        )
    else:
        lines.append(
            "- So the teacher's extra modes did not become the student's: the sampler the method "
            "delivers does not, in this run, cover more modes than on-policy TB's. The paper "
            "counts modes over every trajectory drawn in training, the teacher's included; by "
            "that count the method is ahead, by what its student samples afterwards it is not."
        )
    return lines


def reading_notes(metrics: dict) -> str:
    """Markdown describing the run from its numbers (no number is typed by hand)."""
    agg, grid = metrics["aggregate"], metrics["grid"]
    lines = []
    if "teacher" in agg:
        lines = _teacher_lines(metrics) + _student_lines(metrics)
    n_seeds = next(iter(agg.values()))["n_seeds"]
    head = (
        "**Mode discovery**, at an equal number of sampled trajectories, each comparison "
        f"paired by seed over {report.plural(n_seeds, 'seed')} (all arms of a seed start from the "
        "same student; a claim holds when the teacher is ahead in every seed)."
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
        numbers[f"student_modes_{arm}"] = f"{row['student_modes']:.1f}" if row else NOT_RUN
    for arm in ARMS[:-1]:  # the teacher against each baseline, paired by seed
        both = "teacher" in agg and arm in agg
        numbers[f"vs_{arm}"] = comparison(metrics, arm).higher_text(1, "more") if both else NOT_RUN
    both = "teacher" in agg and "tb" in agg
    numbers["fresh_vs_tb"] = (
        comparison(metrics, "tb", "eval_modes").higher_text(1, "more") if both else NOT_RUN
    )
    return numbers


# --- against the official code --------------------------------------------------------------


def _modes_cells(per_seed: list[int]) -> dict[str, str]:
    return {
        "modes found, per seed": report.per_seed(per_seed),
        "mean ± SE": report.fmt_mean_se(per_seed, 1),
    }


def official_backward_table(official: dict) -> pd.DataFrame:
    """The official code and ours, each with either uniform backward policy: the teacher arm's
    modes found per seed (``official["backward_study"]``)."""
    study = official["backward_study"]
    rows = [
        {"code": row["code"], "uniform P_B over": row["backward_label"],
         **_modes_cells(row["modes_per_seed"])}
        for row in study["rows"]
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index(["code", "uniform P_B over"])


def official_reference_table(official: dict, metrics: dict) -> pd.DataFrame:
    """Per arm, the official code's runs at the full profile's budget and this run's: modes found
    in training, modes among fresh samples of the final student and its eval L1 (mean over
    terminal states), per seed. This run's rows appear only when it has the same grid and budget."""
    ref = official["reference_runs"]
    fresh = f"modes among {ref['eval_samples']:,} fresh student samples, per seed"
    same = (metrics["grid"]["ndim"], metrics["grid"]["height"], metrics["n_iterations"]) == (
        ref["ndim"],
        ref["height"],
        ref["n_iterations"],
    ) and metrics.get("eval_samples") == ref["eval_samples"]
    rows = []
    for row in ref["rows"]:
        rows.append({
            "method": ARM_LABELS.get(row["arm"], row["arm"]), "code": "official",
            **_modes_cells(row["modes_per_seed"]),
            fresh: report.per_seed(row["fresh_modes_per_seed"]),
            "eval L1, mean (×1e-5)": report.fmt_mean_se(row["eval_l1_mean_per_seed"], 3, 1e5),
        })  # fmt: skip
        ours = metrics["aggregate"].get(row["arm"])
        if same and ours is not None:
            l1 = [r["eval_l1"]["mean"] for r in sorted(metrics["runs"][row["arm"]],
                                                       key=lambda r: r["seed"])]  # fmt: skip
            rows.append({
                "method": ours["label"], "code": "this book",
                **_modes_cells(ours["final_modes_per_seed"]),
                fresh: report.per_seed(ours["eval_modes_per_seed"]),
                "eval L1, mean (×1e-5)": report.fmt_mean_se(l1, 3, 1e5),
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["method", "code"])


def official_notes(official: dict) -> str:
    """What the backward-policy study shows, in words from its numbers."""
    study = official["backward_study"]
    by = {(r["code"], r["backward"]): r["modes_per_seed"] for r in study["rows"]}
    pooled = {
        b: [m for (code, back), ms in by.items() if back == b for m in ms]
        for b in ("official", "valid")
    }
    (m_off, se_off), (m_val, se_val) = (report.mean_se(pooled[b]) for b in ("official", "valid"))
    gap, se = m_off - m_val, math.hypot(se_off, se_val)
    verdict = (
        "more than twice its standard error: the backward policy accounts for the gap"
        if gap > 2 * se
        else "within twice its standard error: seed noise cannot be ruled out"
    )
    return (
        f"Pooled over both codes ({study['n_iterations']:,} iterations, the teacher arm, "
        f"{report.plural(len(pooled['official']), 'run')} each), the official backward policy "
        f"finds {m_off:.1f} ± {se_off:.1f} modes and the valid one {m_val:.1f} ± {se_val:.1f}: "
        f"a difference of {gap:+.1f} ± {se:.1f}, {verdict}. "
        "Per-seed counts do not carry over from one code to the other (the two draw their random "
        "numbers in different orders), so only the means compare."
    )


def official_fresh_table(official: dict) -> pd.DataFrame:
    """Distinct modes among fresh samples of the official code's final students
    (``official["student_fresh_check"]``), the second claim's quantity measured on its code."""
    check = official["student_fresh_check"]
    rows = [
        {"method": ARM_LABELS.get(row["arm"], row["arm"]),
         "modes found in training, per seed": report.per_seed(row["modes_per_seed"]),
         f"modes among {check['eval_samples']:,} fresh student samples, per seed": report.per_seed(
             row["fresh_modes_per_seed"]
         )}
        for row in check["rows"]
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("method")
