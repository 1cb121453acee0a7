"""ch05's reading of its metrics: the claims, the findings beside the paper's, tables and numbers.

Pure functions of the metrics that ``reprobook.gfn.generalization.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.gfn import stability
from reprobook.gfn.generalization.study import METRICS_VERSION as METRICS_VERSION

REQUIRED_KEYS = ("losses", "splits", "stability", "claims")
PAPER_CLAIM = (
    "Under trajectory balance with a uniform backward policy, small changes of the reward move "
    "the trajectory distribution only a little (a stability bound); in experiments on states "
    "reachable only by trajectories longer than those seen in training, detailed balance often "
    "generalises better than trajectory balance, and intermediate rewards (forward-looking DB) "
    "help further"
)
ALPHA = 0.05  # one-sided paired t-test level for the rankings
NEAR_BOUND = 0.8  # share of the bound the aimed tilt must reach somewhere
TEST = f"paired over every split × seed, one-sided t-test p < {ALPHA:g}, and lower in every split"
CLAIMS = {
    "exact_mass": "every model's exact terminal distribution sums to 1 and every metric is "
    "finite (sanity)",
    "paths_match_terminal": "the exact TV between trajectory distributions equals the TV between "
    "terminal distributions, for every perturbation (sanity: the shared backward-policy factor "
    "cancels)",
    "stability_under_bound": "every exact stability point lies under the bound tanh(ε/2) (an "
    "exact check of the derived bound; asserted in every profile)",
    "bound_nearly_attained": f"the tilt aimed at the bound reaches at least {NEAR_BOUND:.0%} of "
    "it at some ε (the bound is tight; reported)",
    "fits_seen": "every run fits the log-reward on the seen states better than on the unseen "
    "ones (reported: the split is a real test)",
    "fldb_beats_db": "FL-DB extrapolates the log-reward past L better than DB, with the "
    f"seen-calibrated partition estimate ({TEST})",
    "db_beats_tb": "DB extrapolates the log-reward past L better than TB, with the "
    f"seen-calibrated partition estimate ({TEST})",
    "fldb_beats_db_own_z": "FL-DB extrapolates the log-reward past L better than DB, each with "
    "its own partition estimate instead of the seen-calibrated one (same test; reported)",
    "db_beats_tb_own_z": "DB extrapolates the log-reward past L better than TB, each with its "
    "own partition estimate instead of the seen-calibrated one (same test; reported)",
    "fldb_beats_db_shape": "FL-DB's L1 on the unseen states (renormalised) is lower than DB's "
    "(same test; reported)",
    "db_beats_tb_shape": "DB's L1 on the unseen states (renormalised) is lower than TB's (same "
    "test; reported)",
}
HEADLINE_CLAIMS = ("fldb_beats_db", "db_beats_tb")
HEADLINE_METRIC = "calibrated_rmse_unseen"
KEY_ANCHOR = "main_claim"
METRIC_LABELS = {
    "calibrated_rmse_unseen": "log R error past L (seen-calibrated Z)",
    "log_reward_rmse_unseen": "log R error past L (own Z estimate)",
    "l1_unseen": "L1 past L (renormalised)",
}
COMPARISONS = {  # claim -> (metric, better arm, worse arm)
    "fldb_beats_db": ("calibrated_rmse_unseen", "fldb", "db"),
    "db_beats_tb": ("calibrated_rmse_unseen", "db", "tb"),
    "fldb_beats_db_own_z": ("log_reward_rmse_unseen", "fldb", "db"),
    "db_beats_tb_own_z": ("log_reward_rmse_unseen", "db", "tb"),
    "fldb_beats_db_shape": ("l1_unseen", "fldb", "db"),
    "db_beats_tb_shape": ("l1_unseen", "db", "tb"),
}


def per_pair(metrics: dict, loss: str, key: str) -> list[float]:
    """``key`` of ``loss``'s runs, one value per (split, seed), in one fixed order."""
    return [r["metrics"][key] for split in metrics["splits"] for r in split["runs"][loss]]


def comparison(metrics: dict, key: str, better: str, worse: str) -> report.Paired | None:
    """Paired comparison better - worse of ``key`` over (split, seed); None if an arm is absent."""
    if better not in metrics["losses"] or worse not in metrics["losses"]:
        return None
    return report.paired(per_pair(metrics, better, key), per_pair(metrics, worse, key))


def one_sided_p(paired: report.Paired) -> float | None:
    """p of the one-sided paired t-test that the first arm is lower (from the two-sided p)."""
    return paired.p_lower


def split_differences(metrics: dict, key: str, better: str, worse: str) -> list[float]:
    """Mean difference better - worse of ``key`` within each split (over its seeds)."""
    return [
        float(np.mean([a["metrics"][key] - b["metrics"][key]
                       for a, b in zip(s["runs"][better], s["runs"][worse], strict=True)]))
        for s in metrics["splits"]
    ]  # fmt: skip


def lower_with_confidence(metrics: dict, key: str, better: str, worse: str) -> bool:
    """``better`` is lower: one-sided paired t-test over (split, seed) p < ALPHA, and the mean
    difference is negative within every split (so no single split carries the result)."""
    paired = comparison(metrics, key, better, worse)
    if paired is None:
        return False
    p = one_sided_p(paired)
    every_split = all(d < 0 for d in split_differences(metrics, key, better, worse))
    return bool(p is not None and p < ALPHA and every_split)


def paired_text(paired: report.Paired, digits: int = 3) -> str:
    """Mean ± s.e. of the paired differences, the one-sided p, and how often the first is lower."""
    return paired.lower_text(digits)


def _all_runs(metrics: dict):
    for split in metrics["splits"]:
        for runs in split["runs"].values():
            yield from runs


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``)."""
    runs = list(_all_runs(metrics))
    finite = all(
        math.isfinite(v) for r in runs for v in r["metrics"].values() if isinstance(v, float)
    )
    curve = metrics["stability"]
    bound = np.asarray(curve["bound"])
    families = [curve[f] for f in ("random_signs", "hidden_only", "worst_case")]
    claims = {
        "exact_mass": finite and all(abs(r["metrics"]["total_mass"] - 1) < 1e-6 for r in runs),
        "fits_seen": all(
            r["metrics"]["log_reward_rmse_seen"] < r["metrics"]["log_reward_rmse_unseen"]
            for r in runs
        ),
        "paths_match_terminal": all(
            np.allclose(f["tv_trajectories"], f["tv_terminal"], atol=1e-10) for f in families
        ),
        "stability_under_bound": all(
            (np.asarray(f["tv_trajectories"]) <= bound + 1e-12).all() for f in families
        ),
        "bound_nearly_attained": bool(
            (
                np.asarray(curve["worst_case"]["tv_trajectories"])[bound > 0]
                >= 0.8 * bound[bound > 0]
            ).any()
        ),  # fmt: skip
    }
    for name, (key, better, worse) in COMPARISONS.items():
        if better in metrics["losses"] and worse in metrics["losses"]:
            claims[name] = lower_with_confidence(metrics, key, better, worse)
    return claims


def loss_summary(metrics: dict, loss: str, key: str) -> str:
    """Mean ± standard error over every (split, seed) of ``key`` for ``loss``."""
    return report.fmt_mean_se(per_pair(metrics, loss, key), digits=2)


def results_table(metrics: dict) -> pd.DataFrame:
    """Per split and objective: errors on seen and unseen states and the unseen mass, mean ±
    standard error over seeds."""
    rows = []
    for split in metrics["splits"]:
        where = f"d = {split['ndim']}, H = {split['height']}, L = {split['max_length']}"
        for loss, runs in split["runs"].items():

            def col(key: str, runs=runs) -> str:
                return report.fmt_mean_se([r["metrics"][key] for r in runs], digits=3)

            rows.append({
                "split": where,
                "objective": metrics["labels"][loss],
                "log R error, seen": col("log_reward_rmse_seen"),
                "past L, seen-calibrated Z": col("calibrated_rmse_unseen"),
                "past L, own Z": col("log_reward_rmse_unseen"),
                "L1 on unseen (renormalised)": col("l1_unseen"),
                "JSD on unseen": col("jsd_unseen"),
                "mass on unseen": col("mass_unseen_model"),
                "target mass on unseen": f"{split['mass_unseen_target']:.3f}",
                "s / run": f"{np.mean([r['seconds'] for r in runs]):.0f}",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["split", "objective"])


def comparisons_table(metrics: dict) -> pd.DataFrame:
    """Each ranking claim: the paired difference over every (split, seed), whether it holds, and
    the mean difference within each split."""
    rows = []
    labels = metrics["labels"]
    for key, better, worse in COMPARISONS.values():
        paired = comparison(metrics, key, better, worse)
        if paired is None:
            continue
        row = {
            "comparison": f"{labels[better]} − {labels[worse]}",
            "metric": METRIC_LABELS[key],
            "all splits (mean ± s.e.)": paired_text(paired),
            "holds": "yes" if lower_with_confidence(metrics, key, better, worse) else "no",
        }
        diffs = split_differences(metrics, key, better, worse)
        for split, diff in zip(metrics["splits"], diffs, strict=True):
            row[f"d = {split['ndim']}, L = {split['max_length']}"] = f"{diff:+.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["comparison", "metric"])


def comparison_words(metrics: dict, name: str) -> str:
    """A ranking claim of ``COMPARISONS`` in words, e.g. "DB below TB"."""
    _, better, worse = COMPARISONS[name]
    return f"{metrics['labels'][better]} below {metrics['labels'][worse]}"


def _ranking(metrics: dict, key: str) -> str:
    means = {loss: float(np.mean(per_pair(metrics, loss, key))) for loss in metrics["losses"]}
    order = sorted(means, key=means.get)
    return " < ".join(f"{metrics['labels'][loss]} {means[loss]:.2f}" for loss in order)


def _stability_ratio(metrics: dict, families: tuple[str, ...] = stability.FAMILIES) -> float:
    """The largest exact TV / tanh(ε/2) over ε > 0 and the given perturbation families."""
    curve = metrics["stability"]
    bound = np.asarray(curve["bound"])
    best = 0.0
    for family in families:
        tv = np.asarray(curve[family]["tv_trajectories"])
        best = max(best, float((tv[bound > 0] / bound[bound > 0]).max()))
    return best


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by the ids of the chapter's anchors."""
    claims = metrics["claims"]
    n_pairs = len(per_pair(metrics, metrics["losses"][0], HEADLINE_METRIC))
    splits = "; ".join(
        f"d = {s['ndim']}, H = {s['height']}, L = {s['max_length']} "
        f"({s['n_unseen']:,} of {s['n_states']:,} states unseen)"
        for s in metrics["splits"]
    )
    verdicts = {}  # metric -> each of its comparisons in words, with the outcome
    for name, (key, *_) in COMPARISONS.items():
        if name in claims:
            held = "yes" if claims[name] else "no"
            verdicts.setdefault(key, []).append(f"{comparison_words(metrics, name)}: {held}")
    consistent = "; ".join(f"in {METRIC_LABELS[k]}, {', '.join(v)}" for k, v in verdicts.items())
    curve = metrics["stability"]
    return {
        "main_claim": (
            f"mean log-reward error past L (seen-calibrated Z; lower is better) over {n_pairs} "
            f"(split, seed) pairs: {_ranking(metrics, HEADLINE_METRIC)}; held "
            f"consistently ({TEST}): {consistent}"
        ),
        "stability_bound": (
            f"exact TV on a d = {curve['ndim']}, H = {curve['height']} grid "
            f"({curve['n_trajectories']:,} trajectories enumerated) stays under tanh(ε/2) "
            f"{'everywhere' if claims['stability_under_bound'] else '**not everywhere**'}; "
            f"largest TV / bound {_stability_ratio(metrics):.2f}; this checks the TB optimum, "
            "not the paper's bound, whose constants were not read"
        ),
        "setting": f"offline backward trajectories from ‖x‖₁ ≤ L on torchgfn HyperGrid: {splits}",
        "environments": (
            f"HyperGrid, original reward with R0 = {metrics['R0']:g}; "
            f"{metrics['n_iterations']:,} iterations × batch {metrics['batch_size']}, "
            f"{report.plural(metrics['n_seeds'], 'seed')}"
        ),
    }


def key_number(metrics: dict) -> str:
    """The headline metric's ranking of the objectives, and which direction is better."""
    return "log-reward error past L (seen-calibrated Z), lower is better: " + _ranking(
        metrics, HEADLINE_METRIC
    )


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    out = {
        "n_pairs": str(len(per_pair(metrics, metrics["losses"][0], HEADLINE_METRIC))),
        "batch_size": str(metrics["batch_size"]),
        "n_seeds": str(metrics["n_seeds"]),
        "n_iterations": f"{metrics['n_iterations']:,}",
        "splits_text": "; ".join(
            f"d = {s['ndim']}, H = {s['height']}, L = {s['max_length']} of {s['longest']}"
            for s in metrics["splits"]
        ),
        "ranking_unseen": _ranking(metrics, HEADLINE_METRIC),
        "ranking_own_z": _ranking(metrics, "log_reward_rmse_unseen"),
        "ranking_seen": _ranking(metrics, "log_reward_rmse_seen"),
        "ranking_shape": _ranking(metrics, "l1_unseen"),
        "stability_ratio": f"{_stability_ratio(metrics):.2f}",
        "worst_tilt_ratio": f"{_stability_ratio(metrics, ('worst_case',)):.2f}",
        "stability_trajectories": f"{metrics['stability']['n_trajectories']:,}",
    }
    for loss in metrics["losses"]:
        label = metrics["labels"][loss]
        out[f"mass_{loss}"] = f"{label} " + loss_summary(metrics, loss, "mass_unseen_model")
    masses = [s["mass_unseen_target"] for s in metrics["splits"]]
    out["mass_target"] = " / ".join(f"{m:.2f}" for m in masses)
    out["mass_models"] = "; ".join(out[f"mass_{loss}"] for loss in metrics["losses"])
    for name, (key, better, worse) in COMPARISONS.items():
        paired = comparison(metrics, key, better, worse)
        out[f"diff_{name}"] = paired_text(paired) if paired else "not run in this profile"
    return out
