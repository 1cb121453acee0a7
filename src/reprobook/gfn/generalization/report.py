"""ch05's reading of its metrics: the claims, the findings beside the paper's, tables and numbers.

Pure functions of the metrics that ``reprobook.gfn.generalization.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reprobook import report
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
CLAIMS = {
    "exact_mass": "every model's exact terminal distribution sums to 1 and every metric is "
    "finite (sanity)",
    "fits_seen": "every run fits the log-reward on the seen states better than on the unseen "
    "ones (sanity: the split is a real test)",
    "paths_match_terminal": "the exact TV between trajectory distributions equals the TV between "
    "terminal distributions, for every perturbation (sanity: the shared P_B factor cancels)",
    "stability_under_bound": "every exact stability point lies under the bound tanh(ε/2)",
    "bound_nearly_attained": "the tilt aimed at the bound reaches at least 80 % of it at some ε "
    "(the bound is tight; reported)",
    "fldb_beats_db": "FL-DB's log-reward error on the unseen long states is lower than DB's "
    "(paired over splits × seeds, one-sided t-test p < 0.05)",
    "db_beats_tb": "DB's log-reward error on the unseen long states is lower than TB's (same test)",
    "fldb_beats_db_shape": "FL-DB's L1 on the unseen states (renormalised) is lower than DB's "
    "(same test; reported)",
    "db_beats_tb_shape": "DB's L1 on the unseen states (renormalised) is lower than TB's (same "
    "test; reported)",
}
HEADLINE_CLAIMS = ("stability_under_bound", "fldb_beats_db", "db_beats_tb")
KEY_ANCHOR = "main_claim"
COMPARISONS = {  # claim -> (metric, better arm, worse arm)
    "fldb_beats_db": ("log_reward_rmse_unseen", "fldb", "db"),
    "db_beats_tb": ("log_reward_rmse_unseen", "db", "tb"),
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


def lower_with_confidence(paired: report.Paired | None) -> bool:
    """The first arm is lower: mean difference < 0 and one-sided paired t-test p < ALPHA."""
    return bool(paired and paired.p is not None and paired.mean < 0 and paired.p / 2 < ALPHA)


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
        paired = comparison(metrics, key, better, worse)
        if paired is not None:
            claims[name] = lower_with_confidence(paired)
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
                "log R error, unseen": col("log_reward_rmse_unseen"),
                "L1 on unseen (renormalised)": col("l1_unseen"),
                "JSD on unseen": col("jsd_unseen"),
                "mass on unseen": col("mass_unseen_model"),
                "target mass on unseen": f"{split['mass_unseen_target']:.3f}",
                "s / run": f"{np.mean([r['seconds'] for r in runs]):.0f}",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["split", "objective"])


def comparisons_table(metrics: dict) -> pd.DataFrame:
    """Each ranking claim: the paired difference over every (split, seed), whether it holds, and
    the same difference within each split (over its seeds)."""
    rows = []
    labels = metrics["labels"]
    for key, better, worse in COMPARISONS.values():
        paired = comparison(metrics, key, better, worse)
        if paired is None:
            continue
        row = {
            "comparison": f"{labels[better]} − {labels[worse]}",
            "metric": "log R error, unseen" if key.startswith("log") else "L1 on unseen",
            "all splits (mean ± s.e.)": paired.text(3),
            "holds (lower, p < 0.05 one-sided)": "yes" if lower_with_confidence(paired) else "no",
        }
        for split in metrics["splits"]:
            a = [r["metrics"][key] for r in split["runs"][better]]
            b = [r["metrics"][key] for r in split["runs"][worse]]
            name = f"d = {split['ndim']}, L = {split['max_length']}"
            row[name] = report.fmt_mean_se([x - y for x, y in zip(a, b, strict=True)], digits=3)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["comparison", "metric"])


def _ranking(metrics: dict, key: str) -> str:
    means = {loss: float(np.mean(per_pair(metrics, loss, key))) for loss in metrics["losses"]}
    order = sorted(means, key=means.get)
    return " < ".join(f"{metrics['labels'][loss]} {means[loss]:.2f}" for loss in order)


def _stability_ratio(metrics: dict) -> float:
    curve = metrics["stability"]
    bound = np.asarray(curve["bound"])
    best = 0.0
    for family in ("random_signs", "hidden_only", "worst_case"):
        tv = np.asarray(curve[family]["tv_trajectories"])
        best = max(best, float((tv[bound > 0] / bound[bound > 0]).max()))
    return best


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by the ids of the chapter's anchors."""
    claims = metrics["claims"]
    n_pairs = len(per_pair(metrics, metrics["losses"][0], "log_reward_rmse_unseen"))
    splits = "; ".join(
        f"d = {s['ndim']}, H = {s['height']}, L = {s['max_length']} "
        f"({s['n_unseen']:,} of {s['n_states']:,} states unseen)"
        for s in metrics["splits"]
    )
    verdicts = ", ".join(
        f"{name.replace('_', ' ')}: {'yes' if claims[name] else 'no'}"
        for name in COMPARISONS
        if name in claims
    )
    curve = metrics["stability"]
    return {
        "main_claim": (
            f"mean log-reward error on unseen long states over {n_pairs} (split, seed) pairs: "
            f"{_ranking(metrics, 'log_reward_rmse_unseen')}; {verdicts}"
        ),
        "stability_bound": (
            f"exact TV on a d = {curve['ndim']}, H = {curve['height']} grid "
            f"({curve['n_trajectories']:,} trajectories enumerated) stays under tanh(ε/2) "
            f"{'everywhere' if claims['stability_under_bound'] else '**not everywhere**'}; "
            f"largest TV / bound {_stability_ratio(metrics):.2f}"
        ),
        "setting": f"offline backward trajectories from ‖x‖₁ ≤ L on torchgfn HyperGrid: {splits}",
        "environments": (
            f"HyperGrid, original reward with R0 = {metrics['R0']:g}; "
            f"{metrics['n_iterations']:,} iterations × batch {metrics['batch_size']}, "
            f"{metrics['n_seeds']} seed(s)"
        ),
    }


def key_number(metrics: dict) -> str:
    return "log-reward error on unseen long states, " + _ranking(metrics, "log_reward_rmse_unseen")


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    out = {
        "n_pairs": str(len(per_pair(metrics, metrics["losses"][0], "log_reward_rmse_unseen"))),
        "n_seeds": str(metrics["n_seeds"]),
        "n_iterations": f"{metrics['n_iterations']:,}",
        "splits_text": "; ".join(
            f"d = {s['ndim']}, H = {s['height']}, L = {s['max_length']} of {s['longest']}"
            for s in metrics["splits"]
        ),
        "ranking_unseen": _ranking(metrics, "log_reward_rmse_unseen"),
        "ranking_seen": _ranking(metrics, "log_reward_rmse_seen"),
        "ranking_shape": _ranking(metrics, "l1_unseen"),
        "stability_ratio": f"{_stability_ratio(metrics):.2f}",
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
        out[f"diff_{name}"] = paired.text(3) if paired else "not run in this profile"
    return out
