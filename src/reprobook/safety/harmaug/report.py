"""ch11's reading of its metrics: the claims, the findings beside the paper's, the tables and the
numbers of the prose (see ``reprobook.report.ChapterReport``).

Comparisons of students are paired over seeds (each seed its own world, teacher, generator,
data and students): with two seeds or more, a one-sided paired t-test p < ALPHA and every seed
agreeing; within each seed, a bootstrap interval over the test examples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from reprobook import anchors, report
from reprobook.safety.harmaug.study import METHODS, METRICS_VERSION, TEST_SETS

__all__ = ["METRICS_VERSION"]

REQUIRED_KEYS = ("runs", "settings", "test_sets", "claims")
ALPHA = 0.05
PAPER_CLAIM = (
    "Distilling a large safety guard into a small one works when the distillation data is "
    "augmented with harmful instructions that an LLM writes once an affirmative prefix is put "
    "in its mouth: the 435M student matches the 8B teacher's F1, beats it in AUPRC, at under "
    "25 % of its cost, and beats other augmentations"
)
METHOD_WORDS = {"teacher": "teacher (all categories)", "no_aug": "student, D only",
                "eda": "student, D + EDA", "prompting": "student, D + prompting (no prefix)",
                "harmaug": "student, D + HarmAug"}  # fmt: skip
SET_WORDS = {
    "prompt_a": "prompt A (like OAI)",
    "prompt_b": "prompt B (like ToxicChat)",
    "pair_a": "pair A (like HarmBench)",
    "pair_b": "pair B (like WildGuardMix)",
}
BASELINES = ("no_aug", "eda", "prompting")
CLAIMS = {
    "sanity": "the teacher agrees with the hidden rule on at least 97 % of every test set, and "
    "every generation attempt is counted once (sanity)",
    "prefix_raises_yield": "in every seed the affirmative prefix raises the share of attempts "
    f"that yield an instruction (one-sided two-proportion z-test p < {ALPHA:g})",
    "prefix_raises_coverage": "in every seed the unsafe instructions made with the prefix cover "
    "more of the categories missing from D than those made without it, at the lowest coverage",
    "beats_baselines_missing": "at the lowest coverage, the HarmAug student's AUPRC on the "
    "categories missing from D (mean of the four test sets) is above no augmentation, EDA and "
    "prompting: in every seed the 95 % bootstrap interval of the difference is above 0, and "
    f"with 2 seeds or more the one-sided paired t-test over seeds gives p < {ALPHA:g}",
    "gain_shrinks_with_coverage": "the AUPRC gain of HarmAug over no augmentation (all "
    "categories, mean of the four test sets) is larger at the lowest coverage of D than at the "
    f"highest (one-sided paired t-test p < {ALPHA:g} and every seed)",
    "approaches_teacher": "at the lowest coverage the HarmAug student closes at least half of "
    "the no-augmentation student's AUPRC gap to the teacher (all categories, mean of the four "
    "test sets) in every seed (reported)",
    "cheaper_than_teacher": "the student costs under 25 % of the teacher's forward FLOPs "
    "(sanity of the set-up: the paper's cost ratio)",
    "student_beats_teacher": "the HarmAug student's AUPRC is at least the teacher's (all "
    "categories, mean of the four test sets) in every seed (reported either way)",
}
HEADLINE_CLAIMS = ("prefix_raises_yield", "prefix_raises_coverage", "beats_baselines_missing",
                   "gain_shrinks_with_coverage")  # fmt: skip
KEY_ANCHOR = "harmaug_auprc_avg"
NOT_CHECKED = "not checked (needs the full profile)"


def coverages(metrics: dict) -> list[str]:
    return sorted(metrics["runs"][0]["coverages"], key=int)


def mean_auprc(run: dict, coverage: str, method: str, subset: str = "all") -> float:
    """AUPRC of a guard, mean of the four test sets, on a subset (all, missing, seen)."""
    tests = run["coverages"][coverage]["methods"][method]["test"]
    return float(np.mean([tests[name][subset]["auprc"] for name in TEST_SETS]))


def mean_f1(run: dict, coverage: str, method: str, subset: str = "all") -> float:
    tests = run["coverages"][coverage]["methods"][method]["test"]
    return float(np.mean([tests[name][subset]["f1"] for name in TEST_SETS]))


def per_seed(metrics: dict, fn, *args) -> list[float]:
    return [fn(run, *args) for run in metrics["runs"]]


def yield_test(summary_with: dict, summary_without: dict) -> float:
    """One-sided p of the two-proportion z-test that the prefix's yield is higher."""
    n1, n2 = summary_with["attempts"], summary_without["attempts"]
    p1, p2 = summary_with["yield"], summary_without["yield"]
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0 if p1 > p2 else 1.0
    return float(stats.norm.sf((p1 - p2) / se))


def missing_covered(run: dict, coverage: str, method: str) -> int:
    return run["coverages"][coverage]["methods"][method]["missing_covered"]


def bootstrap_interval(run: dict, coverage: str, other: str) -> tuple[float, float]:
    diffs = run["coverages"][coverage]["bootstrap"][other]
    return float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def missing_comparison(metrics: dict, other: str) -> report.Paired:
    """other - HarmAug, AUPRC on the missing categories at the lowest coverage, over seeds."""
    low = coverages(metrics)[0]
    return report.paired(per_seed(metrics, mean_auprc, low, other, "missing"),
                         per_seed(metrics, mean_auprc, low, "harmaug", "missing"))  # fmt: skip


def gains(metrics: dict, coverage: str) -> list[float]:
    """HarmAug - no augmentation, AUPRC (all categories, mean of the test sets), per seed."""
    return [
        mean_auprc(r, coverage, "harmaug") - mean_auprc(r, coverage, "no_aug")
        for r in metrics["runs"]
    ]


def gain_comparison(metrics: dict) -> report.Paired:
    """gain at the highest coverage - gain at the lowest, over seeds (negative: it shrinks)."""
    cov = coverages(metrics)
    return report.paired(gains(metrics, cov[-1]), gains(metrics, cov[0]))


def _holds_lower(paired: report.Paired) -> bool:
    return bool(
        paired.n >= 2 and paired.p_lower is not None and paired.p_lower < ALPHA
        and all(d < 0 for d in paired.diffs)
    )  # fmt: skip


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``)."""
    runs = metrics["runs"]
    cov = coverages(metrics)
    low = cov[0]
    sanity = all(
        min(r["teacher_agreement"].values()) >= 0.97
        and all(
            abs(g["yield"] + g["refused"] + g["malformed"] - 1) < 1e-9
            for g in r["generation"].values()
        )
        for r in runs
    )
    claims = {
        "sanity": sanity,
        "prefix_raises_yield": all(
            yield_test(r["generation"]["harmaug"], r["generation"]["prompting"]) < ALPHA
            for r in runs
        ),
        "prefix_raises_coverage": all(
            missing_covered(r, low, "harmaug") > missing_covered(r, low, "prompting") for r in runs
        ),
    }
    if runs[0]["coverages"][low]["bootstrap"]:
        in_seed = all(bootstrap_interval(r, low, other)[0] > 0 for r in runs for other in BASELINES)
        over_seeds = len(runs) < 2 or all(
            _holds_lower(missing_comparison(metrics, other)) for other in BASELINES
        )
        claims["beats_baselines_missing"] = in_seed and over_seeds
    if len(cov) >= 2 and len(runs) >= 2:
        claims["gain_shrinks_with_coverage"] = _holds_lower(gain_comparison(metrics))
    claims["approaches_teacher"] = all(
        mean_auprc(r, low, "teacher") - mean_auprc(r, low, "harmaug")
        <= 0.5 * (mean_auprc(r, low, "teacher") - mean_auprc(r, low, "no_aug"))
        for r in runs
    )
    claims["cheaper_than_teacher"] = all(
        r["cost"]["student_flops"] < 0.25 * r["cost"]["teacher_flops"] for r in runs
    )
    claims["student_beats_teacher"] = all(
        mean_auprc(r, low, "harmaug") >= mean_auprc(r, low, "teacher") for r in runs
    )
    return claims


# --- tables -----------------------------------------------------------------------------------


def _ms(values, digits: int = 3, scale: float = 1.0) -> str:
    return report.fmt_mean_se(values, digits, scale)


def generation_table(metrics: dict) -> pd.DataFrame:
    """Yield and coverage of the generator with and without the affirmative prefix."""
    runs, low = metrics["runs"], coverages(metrics)[0]
    rows = {}
    for method, words in (("prompting", "without the prefix"), ("harmaug", "with the prefix")):
        g = [r["generation"][method] for r in runs]
        rows[words] = {
            "attempts": str(g[0]["attempts"]),
            "yield (%)": _ms([x["yield"] for x in g], 1, 100),
            "refused (%)": _ms([x["refused"] for x in g], 1, 100),
            "malformed (%)": _ms([x["malformed"] for x in g], 1, 100),
            "violating instructions": _ms([x["violating"] for x in g], 0),
            "categories covered (of all)": _ms(
                [sum(c > 0 for c in x["per_category"]) for x in g], 1
            ),
            "missing categories covered": _ms([missing_covered(r, low, method) for r in runs], 1),
            "distinct-2 of the violating": _ms([x["distinct_2"] for x in g], 2),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "generator"
    return frame


def results_table(metrics: dict, coverage: str | None = None, subset: str = "all") -> pd.DataFrame:
    """F1 and AUPRC per test set and method (mean ± s.e. over seeds), the AUPRC chance level
    (the positive rate) in the header, and the averages."""
    runs = metrics["runs"]
    coverage = coverage or coverages(metrics)[0]
    rows = {}
    for method in ("teacher", *METHODS):
        row = {}
        tests = [r["coverages"][coverage]["methods"][method]["test"] for r in runs]
        for name in TEST_SETS:
            cells = [t[name].get(subset) for t in tests]
            if any(c is None for c in cells):
                continue
            column = f"{SET_WORDS[name]}, chance {np.mean([c['chance'] for c in cells]):.2f}"
            row[(column, "F1")] = _ms([c["f1"] for c in cells])
            row[(column, "AUPRC")] = _ms([c["auprc"] for c in cells])
        if all(subset in t[n] for t in tests for n in TEST_SETS):
            row[("average", "F1")] = _ms(per_seed(metrics, mean_f1, coverage, method, subset))
            row[("average", "AUPRC")] = _ms(per_seed(metrics, mean_auprc, coverage, method, subset))
        rows[METHOD_WORDS[method]] = row
    frame = pd.DataFrame(rows).T
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "guard"
    return frame


def augmented_table(metrics: dict) -> pd.DataFrame:
    """What each student's augmentation adds at the lowest coverage (mean ± s.e. over seeds):
    examples, the teacher's unsafe share among them, the missing categories they cover."""
    low = coverages(metrics)[0]
    rows = {}
    for method in METHODS:
        cells = [r["coverages"][low]["methods"][method] for r in metrics["runs"]]
        rows[METHOD_WORDS[method]] = {
            "augmented examples": _ms([c["n_augmented"] for c in cells], 0),
            "unsafe (teacher)": _ms([c["augmented_unsafe_share"] for c in cells], 2),
            "missing categories covered": _ms([c["missing_covered"] for c in cells], 1),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "student"
    return frame


def coverage_table(metrics: dict) -> pd.DataFrame:
    """The knob: AUPRC (all categories, mean of the test sets) by the coverage of D."""
    n = metrics["settings"]["n_categories"]
    rows = {}
    for cov in coverages(metrics):
        rows[f"{cov} of {n}"] = {
            **{
                METHOD_WORDS[m]: _ms(per_seed(metrics, mean_auprc, cov, m))
                for m in ("no_aug", "harmaug", "teacher")
            },  # fmt: skip
            "HarmAug gain": _ms(gains(metrics, cov)),
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "categories with unsafe examples in D"
    return frame


def cost_table(metrics: dict) -> pd.DataFrame:
    """Parameters, forward FLOPs and CPU latency per example of teacher and student."""
    costs = [r["cost"] for r in metrics["runs"]]
    rows = {}
    for key, words, fmt in (("parameters", "parameters", "{:,.0f}"),
                            ("flops", "forward FLOPs per example", "{:,.0f}"),
                            ("latency", "CPU latency per example (µs)", "{:.1f}")):  # fmt: skip
        scale = 1e6 if key == "latency" else 1.0
        t = np.mean([c[f"teacher_{key}"] for c in costs]) * scale
        s = np.mean([c[f"student_{key}"] for c in costs]) * scale
        rows[words] = {"teacher": fmt.format(t), "student": fmt.format(s),
                       "student / teacher": f"{100 * s / t:.1f} %"}  # fmt: skip
    frame = pd.DataFrame(rows).T
    frame.index.name = "cost"
    return frame


def paper_table(chapter: str) -> pd.DataFrame:
    """The paper's Table 1 rows as transcribed in ``anchors.yaml`` (with their source)."""
    data = yaml.safe_load(anchors.anchors_path(chapter).read_text())["table1"]
    frame = pd.DataFrame(data["rows"]).set_index("model")
    frame.index.name = f"paper, F1 ({data['source']})"
    return frame


# --- findings and prose -----------------------------------------------------------------------


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by anchor id."""
    low = coverages(metrics)[0]
    runs = metrics["runs"]
    cost = cost_table(metrics)
    g = {m: [r["generation"][m]["yield"] for r in runs] for m in ("harmaug", "prompting")}
    violating = {
        m: [r["generation"][m]["violating"] / r["generation"][m]["attempts"] for r in runs]
        for m in ("harmaug", "prompting")
    }
    f1 = {m: _ms(per_seed(metrics, mean_f1, low, m)) for m in ("harmaug", "teacher")}
    auprc = {
        m: _ms(per_seed(metrics, mean_auprc, low, m)) for m in ("harmaug", "no_aug", "teacher")
    }
    n = metrics["settings"]["n_categories"]
    return {
        "harmaug_f1_avg": f"HarmAug student, average F1 {f1['harmaug']} (all categories, D "
        f"covering {low} of {n})",
        "teacher_f1_avg": f"teacher {f1['teacher']}",
        "harmaug_auprc_avg": f"HarmAug student {auprc['harmaug']}, no augmentation "
        f"{auprc['no_aug']}",
        "teacher_auprc_avg": f"teacher {auprc['teacher']}",
        "prefix_yield": "violating instructions per attempt: "
        + ", ".join(f"{100 * v:.1f} %" for v in violating["harmaug"])
        + " with the prefix (by seed), "
        + ", ".join(f"{100 * v:.1f} %" for v in violating["prompting"])
        + f" without; well-formed answers {_ms(g['harmaug'], 1, 100)} % and "
        f"{_ms(g['prompting'], 1, 100)} %",
        "cost": f"student / teacher: {cost.loc['forward FLOPs per example', 'student / teacher']} "
        f"of the FLOPs, {cost.loc['CPU latency per example (µs)', 'student / teacher']} of the "
        "latency",
        "parameters": f"{cost.loc['parameters', 'student']} vs {cost.loc['parameters', 'teacher']} "
        "parameters",
        "chance_levels": "by construction: "
        + ", ".join(f"{SET_WORDS[k]} {100 * v[1]:.0f} %" for k, v in TEST_SETS.items()),
        "beats_baselines": "on the categories missing from D, AUPRC differences HarmAug minus "
        + ", ".join(
            f"{b.replace('_', ' ')} {-missing_comparison(metrics, b).mean:+.3f}" for b in BASELINES
        ),
    }


def key_number(metrics: dict) -> str:
    low = coverages(metrics)[0]
    return (
        f"AUPRC (mean of four test sets) of the HarmAug student "
        f"{_ms(per_seed(metrics, mean_auprc, low, 'harmaug'))} vs the teacher's "
        f"{_ms(per_seed(metrics, mean_auprc, low, 'teacher'))}"
    )


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    settings, runs = metrics["settings"], metrics["runs"]
    cov = coverages(metrics)
    low = cov[0]
    claims = metrics.get("claims") or check_claims(metrics)
    out = {
        "n_categories": str(settings["n_categories"]),
        "coverage_low": low,
        "coverages": ", ".join(cov),
        "n_seeds": str(len(runs)),
        "n_generations": f"{settings['n_generations']:,}",
        "n_safe": f"{settings['n_safe']:,}",
        "n_unsafe": f"{settings['n_unsafe']:,}",
        "n_test": f"{settings['n_test']:,}",
        "teacher_size": "d = {}, {} layers, {} heads".format(*settings["teacher"]),
        "student_size": "d = {}, {} layers, {} heads".format(*settings["student"]),
        "generator_size": "d = {}, {} layers, {} heads".format(*settings["generator"]),
        "teacher_examples": f"{settings['teacher_examples']:,}",
        "student_steps": f"{settings['student_steps']:,}",
        "lr_student": f"{settings['lr_student']:g}",
        "refusal_target": f"{settings['refusal_target']:g}",
        "teacher_agreement": report.pct(min(min(r["teacher_agreement"].values()) for r in runs)),
        "refusal_after": _ms([r["generator"]["refusal_after"] for r in runs], 2),
        "refusal_before": _ms([r["generator"]["refusal_before"] for r in runs], 2),
        "yield_with": _ms([r["generation"]["harmaug"]["yield"] for r in runs], 1, 100) + " %",
        "yield_without": _ms([r["generation"]["prompting"]["yield"] for r in runs], 1, 100) + " %",
        "n_missing": str(settings["n_categories"] - int(low)),
        "missing_with": _ms([missing_covered(r, low, "harmaug") for r in runs], 1),
        "missing_without": _ms([missing_covered(r, low, "prompting") for r in runs], 1),
        "violating_with": _ms([r["generation"]["harmaug"]["violating"] for r in runs], 0),
        "violating_without": _ms([r["generation"]["prompting"]["violating"] for r in runs], 0),
        "auprc_missing": "; ".join(
            f"{METHOD_WORDS[m]} {_ms(per_seed(metrics, mean_auprc, low, m, 'missing'))}"
            for m in ("no_aug", "eda", "prompting", "harmaug", "teacher")
        ),
        "auprc_seen": "; ".join(
            f"{METHOD_WORDS[m]} {_ms(per_seed(metrics, mean_auprc, low, m, 'seen'))}"
            for m in ("no_aug", "harmaug", "teacher")
        ),
        "gains": "; ".join(f"{c} categories: {_ms(gains(metrics, c))}" for c in cov),
        "flops_ratio": cost_table(metrics).loc["forward FLOPs per example", "student / teacher"],
        **{f"held_{n}": report.held_text(claims, n, NOT_CHECKED) for n in CLAIMS},
    }
    for other in BASELINES:
        out[f"diff_{other}"] = missing_comparison(metrics, other).lower_text(word="lower")
    if len(cov) >= 2:
        out["diff_gain"] = gain_comparison(metrics).lower_text(word="smaller")
    else:
        out["diff_gain"] = "not measured (one coverage)"
    return out
