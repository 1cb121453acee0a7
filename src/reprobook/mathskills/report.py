"""ch04's reading of its metrics: the claims, the findings beside the paper's, tables and the
numbers of the prose (see ``reprobook.report.ChapterReport``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from reprobook import anchors, report
from reprobook.mathskills.law import bootstrap_exponent, fit_exponent
from reprobook.mathskills.pipeline import STAGES
from reprobook.mathskills.study import KINDS, METRICS_VERSION

__all__ = ["METRICS_VERSION"]

REQUIRED_KEYS = ("runs", "settings", "skills", "claims")
ALPHA = 0.05
PAPER_CLAIM = (
    "Questions that combine two skills are much harder than single-skill ones for every model: "
    "accuracy on MATH² is about the square of accuracy on MATH (Y ≈ X²), as if each skill "
    "succeeded independently, and such questions make better in-context examples"
)
KIND_WORDS = {
    "sequential": "pairs (the second skill reads the first's answer)",
    "parallel": "control: both skills read the same number",
    "three_step": "control: an extra composition step",
}
ARM_WORDS = {
    "base": "practised numbers only",
    "single": "+ N single-skill questions",
    "composed": "+ N composed questions (2N steps)",
    "single_equal_steps": "+ 2N single-skill questions (2N steps)",
}
CLAIMS = {
    "sanity": "every accuracy lies in [0, 1], every solver beats chance on single-skill "
    "questions, and every kept question passed every stage (sanity)",
    "pairs_harder": "every solver scores lower on pairs than on single-skill questions "
    f"(one-sided two-proportion z-test p < {ALPHA:g} per solver)",
    "exponent_near_two": "the exponent a of Y = X^a, fitted across solvers on pairs, has a 95 % "
    "bootstrap interval that contains 2",
    "correlated_below_two": "when both skills read the same number, the interval of a lies below 2",
    "extra_step_above_two": "with an extra composition step, the interval of a lies above 2",
    "composed_help_singles": "adding N composed questions raises single-skill accuracy more than "
    f"adding N single-skill questions (one-sided paired t-test over seeds p < {ALPHA:g} and every "
    "seed)",
    "composed_beat_equal_steps": "adding N composed questions (2N worked steps) raises "
    "single-skill accuracy more than adding 2N single-skill questions (same test; reported)",
    "luck_free_near_two": "without luck (pair accuracy taken as the first step's accuracy times "
    "the second step's on its true input), the interval of a contains 2 (reported)",
    "steps_independent": "for every solver, the second step's accuracy on the first step's true "
    "answers is within 0.05 of the same skills' accuracy on uniform inputs (the independence "
    "behind Y = X²; reported)",
}
HEADLINE_CLAIMS = ("pairs_harder", "exponent_near_two", "correlated_below_two",
                   "extra_step_above_two", "composed_help_singles")  # fmt: skip
KEY_ANCHOR = "law"
NOT_CHECKED = "not checked (needs the full profile)"


def solvers(metrics: dict) -> list[dict]:
    return [s for run in metrics["runs"] for s in run["solvers"]]


def exponent(metrics: dict, kind: str) -> tuple[float, float, float]:
    """(a, lower, upper) across every solver of every seed, for one kind of question."""
    rows = solvers(metrics)
    run = metrics["runs"][0]
    return bootstrap_exponent(
        [s["x"] for s in rows], [s["y"][kind] for s in rows], run["n_singles"],
        run["n_pairs"][kind], metrics["settings"]["n_boot"], 0,
    )  # fmt: skip


def luck_free_exponent(metrics: dict) -> tuple[float, float, float]:
    """(a, lower, upper) for Y without luck: first step right x second step right on the true
    intermediate answer, per solver (what the product of skill accuracies predicts)."""
    rows = solvers(metrics)
    run = metrics["runs"][0]
    y = [s["chain"]["first_step"] * s["chain"]["second_step_on_answers"] for s in rows]
    return bootstrap_exponent(
        [s["x"] for s in rows], y, run["n_singles"], run["n_pairs"]["sequential"],
        metrics["settings"]["n_boot"], 0,
    )  # fmt: skip


def _z_lower(y: float, n_y: int, x: float, n_x: int) -> float:
    """One-sided p that the pair accuracy y is lower than the single accuracy x."""
    pooled = (y * n_y + x * n_x) / (n_y + n_x)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n_y + 1 / n_x))
    return float(stats.norm.cdf((y - x) / se))


def arm_comparison(metrics: dict, better: str, worse: str) -> report.Paired:
    """worse - better, single-skill accuracy, over seeds (negative: ``better`` helps more)."""
    return report.paired([r["extra"][worse]["x"] for r in metrics["runs"]],
                         [r["extra"][better]["x"] for r in metrics["runs"]])  # fmt: skip


def _holds_lower(p: report.Paired) -> bool:
    return bool(p.n >= 2 and p.p_lower is not None and p.p_lower < ALPHA
                and all(d < 0 for d in p.diffs))  # fmt: skip


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``)."""
    rows = solvers(metrics)
    n_skills = len(metrics["skills"])
    chance = 1 / 100
    sanity = all(
        0 <= s["x"] <= 1 and all(0 <= v <= 1 for v in s["y"].values()) and s["x"] > chance
        for s in rows
    ) and all(
        y["revalidated"] == r["n_pairs"][k] for r in metrics["runs"] for k, y in r["yields"].items()
    )
    run = metrics["runs"][0]
    claims = {
        "sanity": sanity and n_skills >= 2,
        "pairs_harder": all(
            _z_lower(s["y"]["sequential"], run["n_pairs"]["sequential"], s["x"], run["n_singles"])
            < ALPHA
            for s in rows
        ),
    }
    a = {kind: exponent(metrics, kind) for kind in KINDS}
    claims["exponent_near_two"] = a["sequential"][1] <= 2 <= a["sequential"][2]
    claims["correlated_below_two"] = a["parallel"][2] < 2
    claims["extra_step_above_two"] = a["three_step"][1] > 2
    _, lo, hi = luck_free_exponent(metrics)
    claims["luck_free_near_two"] = lo <= 2 <= hi
    claims["steps_independent"] = max(_independence_gaps(metrics)) <= 0.05
    if len(metrics["runs"]) >= 2:
        claims["composed_help_singles"] = _holds_lower(
            arm_comparison(metrics, "composed", "single")
        )
        claims["composed_beat_equal_steps"] = _holds_lower(
            arm_comparison(metrics, "composed", "single_equal_steps")
        )
    return claims


# --- tables -----------------------------------------------------------------------------------


def yield_table(metrics: dict) -> pd.DataFrame:
    """Candidates reaching each stage of the pipeline, per kind of question (sum over seeds)."""
    rows = {}
    for kind in KINDS:
        counts = {st: sum(r["yields"][kind][st] for r in metrics["runs"]) for st in STAGES}
        rows[KIND_WORDS[kind]] = {
            st: f"{counts[st]:,} ({100 * counts[st] / counts['sampled']:.0f} %)" for st in STAGES
        }
    frame = pd.DataFrame(rows).T
    frame.columns = ["sampled", "skills not alike", "well-posed", "needs both skills",
                     "rubric majority", "re-validated"]  # fmt: skip
    frame.index.name = "questions"
    return frame


def solver_table(metrics: dict) -> pd.DataFrame:
    """Each solver's single-skill accuracy X and its accuracy on each kind of question, mean
    ± s.e. over seeds."""
    keys = sorted({(s["size"], s["updates"]) for s in solvers(metrics)})
    rows = {}
    for size, updates in keys:
        these = [s for s in solvers(metrics) if (s["size"], s["updates"]) == (size, updates)]
        row = {"X (single skill)": report.fmt_mean_se([s["x"] for s in these])}
        row["X²"] = report.fmt_mean_se([s["x"] ** 2 for s in these])
        for kind in KINDS:
            row[kind.replace("_", " ")] = report.fmt_mean_se([s["y"][kind] for s in these])
        rows[f"{size} numbers, {updates:,} updates"] = row
    frame = pd.DataFrame(rows).T
    frame.index.name = "solver"
    return frame


def chain_table(metrics: dict) -> pd.DataFrame:
    """Per solver (mean over seeds): X², the pair accuracy Y, the first step's accuracy, the
    second step's on the true intermediate answers and on uniform inputs, and the luck of a
    wrong first step."""
    keys = sorted({(s["size"], s["updates"]) for s in solvers(metrics)})
    rows = {}
    for size, updates in keys:
        these = [s for s in solvers(metrics) if (s["size"], s["updates"]) == (size, updates)]

        def mean(f, these=these) -> str:
            return f"{np.mean([f(s) for s in these]):.3f}"

        rows[f"{size} numbers, {updates:,} updates"] = {
            "X²": mean(lambda s: s["x"] ** 2),
            "Y": mean(lambda s: s["y"]["sequential"]),
            "first step right": mean(lambda s: s["chain"]["first_step"]),
            "second step on its true input": mean(lambda s: s["chain"]["second_step_on_answers"]),
            "same skills, uniform inputs": mean(lambda s: s["chain"]["second_skill_uniform"]),
            "right after a wrong first step": mean(lambda s: s["chain"]["luck"]),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "solver"
    return frame


def exponent_table(metrics: dict) -> pd.DataFrame:
    rows = {}
    for kind in KINDS:
        a, lo, hi = exponent(metrics, kind)
        rows[KIND_WORDS[kind]] = {"a": f"{a:.2f}", "95 % interval": f"[{lo:.2f}, {hi:.2f}]",
                                  "contains 2": "yes" if lo <= 2 <= hi else "no"}  # fmt: skip
    a, lo, hi = luck_free_exponent(metrics)
    rows["pairs without luck (first step x second step on its true input)"] = {
        "a": f"{a:.2f}", "95 % interval": f"[{lo:.2f}, {hi:.2f}]",
        "contains 2": "yes" if lo <= 2 <= hi else "no",
    }  # fmt: skip
    frame = pd.DataFrame(rows).T
    frame.index.name = "Y = X^a"
    return frame


def extra_table(metrics: dict) -> pd.DataFrame:
    """Single-skill and pair accuracy after each kind of added training data."""
    rows = {}
    for arm in metrics["runs"][0]["extra"]:
        rows[ARM_WORDS[arm]] = {
            "worked steps": f"{metrics['runs'][0]['extra'][arm]['n_steps']:,}",
            "X (single skill)": report.fmt_mean_se([r["extra"][arm]["x"] for r in metrics["runs"]]),
            "Y (pairs)": report.fmt_mean_se([r["extra"][arm]["y"] for r in metrics["runs"]]),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = f"training data (N = {metrics['settings']['n_extra']})"
    return frame


def skill_table(metrics: dict) -> pd.DataFrame:
    """Per-skill accuracy of the most and the least trained solvers (mean over seeds)."""
    rows = solvers(metrics)
    lo = min(rows, key=lambda s: (s["size"], s["updates"]))
    hi = max(rows, key=lambda s: (s["size"], s["updates"]))
    out = {}
    for name, ref in (("weakest solver", lo), ("strongest solver", hi)):
        same = [s for s in rows if (s["size"], s["updates"]) == (ref["size"], ref["updates"])]
        out[name] = {
            k: f"{np.mean([s['per_skill'][k] for s in same]):.2f}" for k in metrics["skills"]
        }
    frame = pd.DataFrame(out)
    frame.insert(0, "topic", [metrics["topics"][k] for k in frame.index])
    frame.index.name = "skill"
    return frame


def paper_models(chapter: str) -> pd.DataFrame:
    """The per-model accuracies transcribed in ``anchors.yaml``, with the relative drop."""
    data = yaml.safe_load(anchors.anchors_path(chapter).read_text())["models"]
    frame = pd.DataFrame(data["rows"]).set_index("model")
    frame["relative drop (%)"] = (100 * (1 - frame["Y"] / frame["X"])).round(2)
    frame.index.name = f"paper ({data['source']})"
    return frame.rename(columns={"X": "X: MATH (%)", "Y": "Y: MATH² (%)"})


def paper_exponent(chapter: str) -> float:
    """The exponent a of Y = X^a fitted here, the same way as for the solvers, to the paper's
    transcribed per-model accuracies (the paper draws Y = X² and fits nothing)."""
    frame = paper_models(chapter)
    return fit_exponent(frame["X: MATH (%)"] / 100, frame["Y: MATH² (%)"] / 100)


# --- findings and prose -----------------------------------------------------------------------


def _config_means(metrics: dict, f) -> list[float]:
    """f averaged over seeds for each solver configuration (budget, updates)."""
    keys = sorted({(s["size"], s["updates"]) for s in solvers(metrics)})
    return [
        float(np.mean([f(s) for s in solvers(metrics) if (s["size"], s["updates"]) == k]))
        for k in keys
    ]


def _independence_gaps(metrics: dict) -> list[float]:
    """|second step on the true intermediate answers - the same skills on uniform inputs|."""
    return [
        abs(s["chain"]["second_step_on_answers"] - s["chain"]["second_skill_uniform"])
        for s in solvers(metrics)
    ]


def _drops(metrics: dict) -> list[float]:
    return [1 - s["y"]["sequential"] / s["x"] for s in solvers(metrics) if s["x"] > 0]


def miniature_findings(metrics: dict) -> dict[str, str]:
    a, lo, hi = exponent(metrics, "sequential")
    drops = _drops(metrics)
    comp = arm_comparison(metrics, "composed", "single")
    run = metrics["runs"][0]
    yields = run["yields"]["sequential"]
    return {
        "law": f"a = {a:.2f}, 95 % interval [{lo:.2f}, {hi:.2f}] across {len(solvers(metrics))} "
        "trained solvers",
        "smallest_drop": f"smallest relative drop {100 * min(drops):.1f} % (the strongest solver)",
        "largest_drop": f"largest relative drop {100 * max(drops):.1f} % (the weakest solver)",
        "all_lower": "every solver lower on pairs"
        if (metrics.get("claims") or check_claims(metrics)).get("pairs_harder")
        else "not every solver is lower on pairs",
        "icl": "N single minus N composed questions, single-skill accuracy: "
        + comp.lower_text(word="lower"),
        "n_questions": f"{run['n_pairs']['sequential']:,} pairs per seed, written and checked by "
        "code",
        "human_edits": "no human step; "
        f"{100 * yields['revalidated'] / yields['sampled']:.0f} % of sampled pairs survive",
        "n_skills": f"{len(metrics['skills'])} programmatic skills",
    }


def key_number(metrics: dict) -> str:
    a, lo, hi = exponent(metrics, "sequential")
    return f"fitted exponent a = {a:.2f} [{lo:.2f}, {hi:.2f}] in Y = X^a"


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    settings = metrics["settings"]
    claims = metrics.get("claims") or check_claims(metrics)
    out = {
        "n_skills": str(len(metrics["skills"])),
        "n_solvers": str(len(metrics["runs"][0]["solvers"])),
        "n_seeds": str(len(metrics["runs"])),
        "sizes": ", ".join(str(s) for s in settings["sizes"]),
        "checkpoints": ", ".join(f"{c:,}" for c in settings["checkpoints"]),
        "n_pairs": f"{settings['n_pairs']:,}",
        "n_singles": f"{metrics['runs'][0]['n_singles']:,}",
        "n_extra": f"{settings['n_extra']:,}",
        "extra_size": str(settings["extra_size"]),
        "drop_range": f"{100 * min(_drops(metrics)):.0f} % to {100 * max(_drops(metrics)):.0f} %",
        "luck_range": "{:.1f} % to {:.1f} %".format(
            *(100 * f([s["chain"]["luck"] for s in solvers(metrics)]) for f in (np.min, np.max))
        ),
        "weakest_x2": f"{min(_config_means(metrics, lambda s: s['x'] ** 2)):.3f}",
        "solver_exponents": "{:.2f} to {:.2f}".format(
            *(
                f(
                    [
                        math.log(s["y"]["sequential"]) / math.log(s["x"])
                        for s in solvers(metrics)
                        if s["y"]["sequential"] > 0 and 0 < s["x"] < 1
                    ]
                )
                for f in (min, max)
            )
        ),
        "a_luck_free": "{:.2f} [{:.2f}, {:.2f}]".format(*luck_free_exponent(metrics)),
        "independence_gap": "{:.3f} on average, {:.3f} at most".format(
            *(f(_independence_gaps(metrics)) for f in (np.mean, np.max))
        ),
        "three_below_pairs": "{} of {}".format(
            sum(s["y"]["three_step"] < s["y"]["sequential"] for s in solvers(metrics)),
            len(solvers(metrics)),
        ),
        **{f"held_{n}": report.held_text(claims, n, NOT_CHECKED) for n in CLAIMS},
    }
    for kind in KINDS:
        a, lo, hi = exponent(metrics, kind)
        out[f"a_{kind}"] = f"{a:.2f} [{lo:.2f}, {hi:.2f}]"
    if len(metrics["runs"]) >= 2:
        out["diff_single"] = arm_comparison(metrics, "composed", "single").lower_text()
        out["diff_equal"] = arm_comparison(metrics, "composed", "single_equal_steps").lower_text()
    else:
        out["diff_single"] = out["diff_equal"] = "not tested (one seed)"
    return out
