"""ch08's reading of its metrics: the claims, the findings beside the paper's, tables and numbers.

Pure functions of the metrics that ``reprobook.flows.meta.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.flows.distances import METRICS
from reprobook.flows.meta.study import METRICS_VERSION as METRICS_VERSION

ONE_SEED = "not tested (one seed)"  # what the prose says of a claim a one-seed run skips

REQUIRED_KEYS = ("methods", "tasks", "claims")
PAPER_CLAIM = (
    "Embedding the whole initial population with a graph neural network and conditioning a "
    "flow-matching model on that embedding (Meta Flow Matching) predicts how populations evolve "
    "for initial populations never seen in training, where flow matching without that condition "
    "(FM) or with a one-hot of the training population (CGFM) does not"
)
ALPHA = 0.05
SOLVER_TOL = 0.05  # largest RK4 - dopri5 distance allowed for a transported point
TEST = f"lower in every seed, one-sided paired t-test over seeds p < {ALPHA:g}"
SPLIT_WORDS = {
    "train": "training populations",
    "val": "held-out letter (validation)",
    "test": "held-out (test)",
    "replicates": "replicates of training patients",
}
COMPARISONS = {  # claim -> (task, split, metric, better, worse)
    "letters_mfm_beats_fm": ("letters", "test", "w2", "mfm", "fm"),
    "letters_mfm_beats_cgfm": ("letters", "test", "w2", "mfm", "cgfm"),
    "patients_mfm_beats_fm": ("patients", "test", "w2", "mfm", "fm"),
    "patients_mfm_beats_cgfm": ("patients", "test", "w2", "mfm", "cgfm"),
    "letters_mfm_beats_fm_mmd": ("letters", "test", "mmd", "mfm", "fm"),
    "letters_mfm_beats_cgfm_mmd": ("letters", "test", "mmd", "mfm", "cgfm"),
    "patients_mfm_beats_fm_mmd": ("patients", "test", "mmd", "mfm", "fm"),
    "patients_mfm_beats_cgfm_mmd": ("patients", "test", "mmd", "mfm", "cgfm"),
    "letters_mfm_beats_fm_val": ("letters", "val", "w2", "mfm", "fm"),
    "letters_cgfm_beats_fm_train": ("letters", "train", "w2", "cgfm", "fm"),
    "letters_mfm_beats_fm_train": ("letters", "train", "w2", "mfm", "fm"),
    "patients_cgfm_beats_fm_replicates": ("patients", "replicates", "w2", "cgfm", "fm"),
    "patients_mfm_beats_fm_replicates": ("patients", "replicates", "w2", "mfm", "fm"),
    "letters_mfm_beats_identity": ("letters", "test", "w2", "mfm", "identity"),
    "patients_mfm_beats_identity": ("patients", "test", "w2", "mfm", "identity"),
}
HEADLINE_CLAIMS = (
    "letters_mfm_beats_fm", "letters_mfm_beats_cgfm", "patients_mfm_beats_fm",
    "patients_mfm_beats_cgfm",
)  # fmt: skip
METRIC_WORDS = {"w1": "W1", "w2": "W2", "mmd": "MMD"}


def _describe(name: str) -> str:
    task, split, metric, better, worse = COMPARISONS[name]
    labels = {"fm": "FM", "cgfm": "CGFM", "mfm": "MFM", "identity": "the identity map"}
    kind = "" if name in HEADLINE_CLAIMS else "; reported"
    floor = " (the floor: has it learned anything?)" if worse == "identity" else ""
    return (
        f"{task}, {SPLIT_WORDS[split]}: {labels[better]}'s {METRIC_WORDS[metric]} is lower than "
        f"{labels[worse]}'s{floor} ({TEST}{kind})"
    )


CLAIMS = {
    "sanity": "every metric is finite and every run's training loss fell (sanity)",
    "solver_agrees": f"fixed-step RK4 lands within {SOLVER_TOL} of adaptive dopri5 (atol = rtol "
    "= 1e-4) for every point drawn below (sanity: enough steps)",
    **{name: _describe(name) for name in COMPARISONS},
}
KEY_ANCHOR = "letters_table1"


def per_seed(metrics: dict, task: str, split: str, metric: str, method: str) -> list[float]:
    """``metric`` on ``split`` of ``task`` for ``method`` ("identity" too), one value per seed."""
    block = metrics["tasks"][task]
    rows = block["identity"] if method == "identity" else [r["distances"] for r in
                                                           block["runs"][method]]  # fmt: skip
    return [r[split][metric] for r in rows]


def comparison(metrics: dict, name: str) -> report.Paired | None:
    """The paired comparison better - worse over seeds of claim ``name``; None if not run."""
    task, split, metric, better, worse = COMPARISONS[name]
    block = metrics["tasks"].get(task)
    if block is None or split not in block["splits"]:
        return None
    if any(m not in (*metrics["methods"], "identity") for m in (better, worse)):
        return None
    return report.paired(per_seed(metrics, task, split, metric, better),
                         per_seed(metrics, task, split, metric, worse))  # fmt: skip


def lower_with_confidence(paired: report.Paired) -> bool:
    """Lower in every seed and the one-sided paired t-test over seeds p < ALPHA."""
    return bool(paired.n >= 2 and all(d < 0 for d in paired.diffs) and paired.p_lower < ALPHA)


def _runs(metrics: dict):
    for block in metrics["tasks"].values():
        for rows in block["runs"].values():
            yield from rows


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``). The comparisons
    need at least two seeds; a one-seed run checks only the sanity claims."""
    runs = list(_runs(metrics))
    finite = all(
        math.isfinite(v) for r in runs for split in r["distances"].values() for v in split.values()
    )
    claims = {
        "sanity": bool(finite and runs and all(r["losses"][-1] < r["losses"][0] for r in runs)),
        "solver_agrees": all(r["solver_gap"] < SOLVER_TOL for r in runs if "solver_gap" in r),
    }
    if metrics["n_seeds"] >= 2:
        for name in COMPARISONS:
            paired = comparison(metrics, name)
            if paired is not None:
                claims[name] = lower_with_confidence(paired)
    return claims


def results_table(metrics: dict, task: str) -> pd.DataFrame:
    """Per method: W1, W2 and MMD on each evaluation split, mean ± s.e. over seeds, and the
    seconds a training run took."""
    block = metrics["tasks"][task]
    rows = []
    for method in ("identity", *metrics["methods"]):
        row = {"method": metrics["labels"][method]}
        for split in block["splits"]:
            for metric in METRICS:
                values = per_seed(metrics, task, split, metric, method)
                digits = 4 if metric == "mmd" else 3
                row[(SPLIT_WORDS[split], METRIC_WORDS[metric])] = report.fmt_mean_se(values, digits)
        if method != "identity":
            seconds = np.mean([r["seconds"] for r in block["runs"][method]])
            row[("", "s / run")] = f"{seconds:.0f}"
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("method")
    frame.columns = pd.MultiIndex.from_tuples(
        [c if isinstance(c, tuple) else ("", c) for c in frame.columns]
    )
    return frame.fillna("")


def comparisons_table(metrics: dict) -> pd.DataFrame:
    """Each comparison: the paired difference over seeds and whether the claim holds."""
    rows = []
    for name, (task, split, metric, better, worse) in COMPARISONS.items():
        paired = comparison(metrics, name)
        if paired is None:
            continue
        labels = metrics["labels"]
        rows.append({
            "task": task,
            "populations": SPLIT_WORDS[split],
            "comparison": f"{labels[better]} − {labels[worse]}, {METRIC_WORDS[metric]}",
            "paired difference over seeds": paired.lower_text(4 if metric == "mmd" else 3),
            "headline": "yes" if name in HEADLINE_CLAIMS else "",
            "holds": "yes" if lower_with_confidence(paired) else "no",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index(["task", "populations", "comparison"])


def _order(metrics: dict, task: str, split: str, metric: str = "w2") -> str:
    means = {m: float(np.mean(per_seed(metrics, task, split, metric, m)))
             for m in ("identity", *metrics["methods"])}  # fmt: skip
    digits = 4 if metric == "mmd" else 3
    return " < ".join(f"{metrics['labels'][m]} {means[m]:.{digits}f}"
                      for m in sorted(means, key=means.get))  # fmt: skip


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by the ids of the chapter's anchors."""
    claims = metrics["claims"]
    out = {}
    if "letters" in metrics["tasks"]:
        out["letters_table1"] = (
            f"held-out letter, W2 (mean over {metrics['n_seeds']} seeds): "
            f"{_order(metrics, 'letters', 'test')}; training letters: "
            f"{_order(metrics, 'letters', 'train')}"
        )
        out["letters_setup"] = (
            f"{metrics['tasks']['letters']['n_train_populations']} training populations, "
            f"{metrics['steps']['letters']:,} field steps per method; DejaVu Sans, not Arial"
        )
    if "patients" in metrics["tasks"]:
        out["organoids"] = (
            "a synthetic stand-in, not the organoid data: held-out patients, W2: "
            f"{_order(metrics, 'patients', 'test')}"
        )
    held = [n for n in HEADLINE_CLAIMS if claims.get(n)]
    checked = [n for n in HEADLINE_CLAIMS if n in claims]
    out["generalises"] = (
        f"{len(held)} of {len(checked)} held-out comparisons hold ({TEST}): "
        + "; ".join(
            f"{n.replace('_', ' ')}: {report.held_text(claims, n, ONE_SEED)}"
            for n in HEADLINE_CLAIMS
        )
    )
    return out


def key_number(metrics: dict) -> str:
    task = "letters" if "letters" in metrics["tasks"] else "patients"
    return f"{task}, held-out W2 (lower is better): {_order(metrics, task, 'test')}"


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    out = {"n_seeds": str(metrics["n_seeds"])}
    out.update({k: f"{v:g}" if isinstance(v, float) else f"{v:,}"
                for k, v in metrics["settings"].items()})  # fmt: skip
    for task in ("letters", "patients"):
        out[f"{task}_steps"] = f"{metrics['steps'][task]:,}"
    for task, block in metrics["tasks"].items():
        out[f"{task}_steps"] = f"{metrics['steps'][task]:,}"
        out[f"{task}_n_train"] = str(block["n_train_populations"])
        for split in block["splits"]:
            out[f"{task}_{split}_order"] = _order(metrics, task, split)
            out[f"{task}_{split}_order_mmd"] = _order(metrics, task, split, "mmd")
        gaps = [r["solver_gap"] for rows in block["runs"].values() for r in rows
                if "solver_gap" in r]  # fmt: skip
        out[f"{task}_solver_gap"] = f"{max(gaps):.1e}" if gaps else "not measured"
        seconds = {m: np.mean([r["seconds"] for r in rows]) for m, rows in block["runs"].items()}
        out[f"{task}_seconds"] = ", ".join(
            f"{metrics['labels'][m]} {s:.0f} s" for m, s in seconds.items()
        )
    for name in COMPARISONS:
        paired = comparison(metrics, name)
        digits = 4 if COMPARISONS[name][2] == "mmd" else 3
        out[f"diff_{name}"] = paired.lower_text(digits) if paired else "not run in this profile"
    return out
