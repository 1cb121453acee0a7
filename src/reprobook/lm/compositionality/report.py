"""ch02's reading of its metrics: the claims, the findings beside the published ones, tables and
numbers (see ``reprobook.report.ChapterReport``).

Every comparison is paired over models (size x seed, each with its own weights, training
stream and held-out sentences): it holds when the one-sided paired t-test gives p < ALPHA and
every model agrees. A spread by k is compared by its size, |I_d(k = 1) - I_d(k = 4)|.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.lm.compositionality.study import METRICS_VERSION as METRICS_VERSION

REQUIRED_KEYS = ("runs", "steps", "sizes", "claims")
PAPER_CLAIM = (
    "The intrinsic dimension of a language model's representations reflects the "
    "compositionality of its input (more free factors, higher I_d), a relation that arises "
    "from learned linguistic features over training; nonlinear I_d tracks meaning, linear "
    "dimension surface form"
)
ALPHA = 0.05
TEST = f"paired over models, one-sided t-test p < {ALPHA:g}, and in every model"
SHUFFLE = "shuffled_period_last"  # the control that keeps the final token (see the chapter)
CONDITION_WORDS = {
    "coherent": "coherent",
    "shuffled": "shuffled (official: the period moves)",
    "shuffled_period_last": "shuffled, period last",
}
ESTIMATOR_WORDS = {"twonn": "TwoNN I_d", "pca": "PCA d", "participation_ratio": "PR",
                   "mle": "MLE", "twonn_skdim": "TwoNN (skdim)"}  # fmt: skip


def final(metrics: dict) -> str:
    return str(metrics["steps"][-1])


def dim(run: dict, step: str, condition: str, k: int, estimator: str, layer: str = "last") -> float:
    """One model's dimension at a checkpoint: the last layer's, or the mean over layers."""
    values = run["checkpoints"][step]["id"][condition][str(k)][estimator]
    return float(values[-1] if layer == "last" else np.mean(values))


def gap(
    run: dict, step: str, condition: str, estimator: str = "twonn", layer: str = "last"
) -> float:
    """I_d(k = 1) - I_d(k = 4): the spread by compositionality."""
    return dim(run, step, condition, 1, estimator, layer) - dim(
        run, step, condition, 4, estimator, layer
    )


def spread(run: dict, step: str, condition: str) -> float:
    """|I_d(k = 1) - I_d(k = 4)| (TwoNN, last layer): how far apart k = 1 and k = 4 are."""
    return abs(gap(run, step, condition))


def pooled(run: dict, step: str, condition: str, estimator: str) -> float:
    """The mean over layers and over k."""
    return float(np.mean([dim(run, step, condition, k, estimator, "mean") for k in (1, 2, 3, 4)]))


# Each comparison: run, metrics -> (expected lower, expected higher).
Comparison = Callable[[dict, dict], tuple[float, float]]
COMPARISONS: dict[str, tuple[Comparison, str]] = {
    "ordered_by_k": (
        lambda r, m: (
            dim(r, final(m), "coherent", 4, "twonn"),
            dim(r, final(m), "coherent", 1, "twonn"),
        ),
        "after training, the TwoNN I_d of coherent sentences at the last layer is higher for k = 1 "
        "(13 free factors) than for k = 4 (4)",
    ),
    "specific_to_coherent": (
        lambda r, m: (spread(r, final(m), SHUFFLE), spread(r, final(m), "coherent")),
        "after training, the spread |I_d(k = 1) - I_d(k = 4)| at the last layer is larger for "
        "coherent than for shuffled sentences (period last)",
    ),
    "shuffled_spread_shrinks": (
        lambda r, m: (spread(r, final(m), SHUFFLE), spread(r, "0", SHUFFLE)),
        "the spread |I_d(k = 1) - I_d(k = 4)| of shuffled sentences (period last) shrinks from "
        "step 0 to the end of training",
    ),
    "shuffle_lowers_twonn": (
        lambda r, m: (
            pooled(r, final(m), "shuffled", "twonn"),
            pooled(r, final(m), "coherent", "twonn"),
        ),
        "after training, shuffling the words (as the official code) lowers TwoNN I_d (mean over "
        "layers and k)",
    ),
    "shuffle_raises_pca": (
        lambda r, m: (
            pooled(r, final(m), "coherent", "pca"),
            pooled(r, final(m), "shuffled", "pca"),
        ),
        "after training, shuffling the words (as the official code) raises PCA d (mean over "
        "layers and k)",
    ),
    "ordered_at_init": (
        lambda r, m: (dim(r, "0", "coherent", 4, "twonn"), dim(r, "0", "coherent", 1, "twonn")),
        "at step 0 (random weights), coherent TwoNN I_d at the last layer is already higher for "
        "k = 1 than for k = 4",
    ),
    "spread_grows": (
        lambda r, m: (spread(r, "0", "coherent"), spread(r, final(m), "coherent")),
        "the coherent spread |I_d(k = 1) - I_d(k = 4)| at the last layer grows from step 0 to "
        "the end of training",
    ),
    "pca_ordered_by_k": (
        lambda r, m: (
            dim(r, final(m), "coherent", 4, "pca", "mean"),
            dim(r, final(m), "coherent", 1, "pca", "mean"),
        ),
        "after training, coherent PCA d (mean over layers) is higher for k = 1 than for k = 4",
    ),
    "mle_ordered_by_k": (
        lambda r, m: (
            dim(r, final(m), "coherent", 4, "mle"),
            dim(r, final(m), "coherent", 1, "mle"),
        ),
        "after training, the MLE of coherent sentences at the last layer is higher for k = 1 than "
        "for k = 4",
    ),
    "period_shuffle_lowers_twonn": (
        lambda r, m: (
            pooled(r, final(m), SHUFFLE, "twonn"),
            pooled(r, final(m), "coherent", "twonn"),
        ),
        "after training, shuffling with the period kept last also lowers TwoNN I_d (mean over "
        "layers and k)",
    ),
    "official_shuffle_specific": (
        lambda r, m: (spread(r, final(m), "shuffled"), spread(r, final(m), "coherent")),
        "after training, the spread by k is larger for coherent than for shuffled sentences with "
        "the official shuffle (the period moves)",
    ),
}
HEADLINE_CLAIMS = ("ordered_by_k", "specific_to_coherent", "shuffled_spread_shrinks",
                   "shuffle_lowers_twonn", "shuffle_raises_pca")  # fmt: skip
KEY_ANCHOR = "gap_sign"
CLAIMS = {
    "sanity": "every dimension is finite, and no held-out sentence was trained on (sanity; the "
    "training stream rejects them by construction, and the run counts them)",
    "monotone_in_k": "after training, coherent TwoNN I_d at the last layer falls from k = 1 to "
    "k = 2, 3, 4 in every model (reported)",
    "learned_grammar": "at the end of training every model predicts a word of the right slot "
    "for at least 95 % of the slots of held-out sentences after the first, for every k (sanity: "
    "the model learned the grammar)",
    "estimators_agree": "DADApy's and scikit-dimension's TwoNN agree within 1 % on every layer, "
    "k and condition at the end of training (sanity)",
    **{
        name: f"{words} ({TEST}{'' if name in HEADLINE_CLAIMS else '; reported'})"
        for name, (_, words) in COMPARISONS.items()
    },
}


def comparison(metrics: dict, name: str) -> report.Paired:
    """lower - higher per model: negative differences support the claim."""
    pairs = [COMPARISONS[name][0](run, metrics) for run in metrics["runs"]]
    return report.paired([p[0] for p in pairs], [p[1] for p in pairs])


def holds(metrics: dict, name: str) -> bool:
    paired = comparison(metrics, name)
    return bool(
        paired.n >= 2 and paired.p_lower is not None and paired.p_lower < ALPHA
        and all(d < 0 for d in paired.diffs)
    )  # fmt: skip


def _all_dims(metrics: dict) -> list[float]:
    out = []
    for run in metrics["runs"]:
        for entry in run["checkpoints"].values():
            for by_k in entry["id"].values():
                out += [v for est in by_k.values() for vals in est.values() for v in vals]
        out += [v for d in run["lengths"].values() for vals in d.values() for v in vals]
    return out


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``); the comparisons
    need at least two models."""
    end = final(metrics)
    agree = []
    for run in metrics["runs"]:
        for by_k in run["checkpoints"][end]["id"].values():
            for est in by_k.values():
                agree += [
                    abs(a - b) <= 0.01 * abs(b)
                    for a, b in zip(est["twonn"], est["twonn_skdim"], strict=True)
                ]
    claims = {
        "sanity": bool(all(math.isfinite(v) for v in _all_dims(metrics))
                       and all(r["held_out_trained"] == 0 for r in metrics["runs"])),
        "learned_grammar": all(
            c["category"] >= 0.95
            for r in metrics["runs"]
            for c in r["checkpoints"][end]["competence"].values()
        ),
        "estimators_agree": bool(agree and all(agree)),
    }  # fmt: skip
    by_k = [[dim(r, end, "coherent", k, "twonn") for k in (1, 2, 3, 4)] for r in metrics["runs"]]
    claims["monotone_in_k"] = all(all(a > b for a, b in zip(v, v[1:], strict=False)) for v in by_k)
    if len(metrics["runs"]) >= 2:
        for name in COMPARISONS:
            claims[name] = holds(metrics, name)
    return claims


def runs_of(metrics: dict, size: str) -> list[dict]:
    return [r for r in metrics["runs"] if r["size"] == size]


COLUMNS = (
    ("twonn", "last", "TwoNN, last layer"),
    ("twonn", "mean", "TwoNN, mean of layers"),
    ("mle", "last", "MLE, last layer"),
    ("pca", "mean", "PCA d, mean of layers"),
    ("participation_ratio", "mean", "PR, mean of layers"),
)


def final_table(metrics: dict) -> pd.DataFrame:
    """At the end of training, per size, k and condition: TwoNN at the last layer and over
    layers, PCA d and the participation ratio over layers, MLE at the last layer; mean ± s.e.
    over seeds."""
    end = final(metrics)
    rows = []
    for size in metrics["sizes"]:
        runs = runs_of(metrics, size)
        for k, factors in zip(metrics["couplings"], metrics["factors"], strict=True):
            for condition, words in CONDITION_WORDS.items():
                row = {"model": size, "k (free factors)": f"{k} ({factors})", "sentences": words}
                for est, layer, label in COLUMNS:
                    values = [dim(r, end, condition, k, est, layer) for r in runs]
                    row[label] = report.fmt_mean_se(values, 1)
                rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "k (free factors)", "sentences"])


def comparisons_table(metrics: dict) -> pd.DataFrame:
    rows = []
    for name, (_, words) in COMPARISONS.items():
        paired = comparison(metrics, name)
        rows.append({
            "claim": words,
            "lower - higher (negative supports it)": paired.lower_text(2, "supports"),
            "holds": "yes" if holds(metrics, name) else "no",
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("claim")


def lengths_table(metrics: dict) -> pd.DataFrame:
    """The sentence-length ablation (coherent, k = 1, end of training), mean ± s.e. over seeds."""
    rows = []
    for size in metrics["sizes"]:
        for n_slots in metrics["settings"]["lengths"]:
            runs = runs_of(metrics, size)
            rows.append({
                "model": size, "content words": n_slots,
                "TwoNN, last layer": report.fmt_mean_se(
                    [r["lengths"][str(n_slots)]["twonn"][-1] for r in runs], 1),
                "PCA d, mean of layers": report.fmt_mean_se(
                    [np.mean(r["lengths"][str(n_slots)]["pca"]) for r in runs], 1),
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["model", "content words"])


def curve(metrics: dict, size: str, condition: str, quantity: str = "gap") -> dict[str, list]:
    """Along the lifetime, mean and s.e. over seeds: the last-layer spread ``gap`` or a
    competence (``category``, ``tied`` at k = 4)."""
    out: dict[str, list] = {"steps": list(metrics["steps"]), "mean": [], "se": []}
    for step in metrics["steps"]:
        if quantity == "gap":
            values = [gap(r, str(step), condition) for r in runs_of(metrics, size)]
        else:
            values = [
                r["checkpoints"][str(step)]["competence"]["4"][quantity]
                for r in runs_of(metrics, size)
            ]
        mean, se = report.mean_se(values)
        out["mean"].append(mean)
        out["se"].append(se)
    return out


def _by_k(metrics: dict, size: str, step: str, condition: str, estimator: str = "twonn",
          layer: str = "last") -> str:  # fmt: skip
    runs = runs_of(metrics, size)
    return ", ".join(f"{np.mean([dim(r, step, condition, k, estimator, layer) for r in runs]):.1f}"
                     for k in metrics["couplings"])  # fmt: skip


def miniature_findings(metrics: dict) -> dict[str, str]:
    claims = metrics["claims"]
    end = final(metrics)
    big = metrics["sizes"][-1]

    def held(name: str) -> str:
        return report.held_text(claims, name)

    def by_k(step: str, condition: str, estimator: str = "twonn", layer: str = "last") -> str:
        return _by_k(metrics, big, step, condition, estimator, layer)

    return {
        "compositionality_id": (
            f"coherent TwoNN I_d higher for k = 1 than k = 4 after training: "
            f"{held('ordered_by_k')}; falling from k = 1 to 4 in every model: "
            f"{held('monotone_in_k')}"
        ),
        "gap_sign": f"{big}, end of training, last layer, k = 1..4: {by_k(end, 'coherent')}",
        "emerges_training": (
            f"the spread is specific to coherent text after training: "
            f"{held('specific_to_coherent')}; the shuffled spread shrinks over training: "
            f"{held('shuffled_spread_shrinks')}; the coherent spread grows: {held('spread_grows')}"
        ),
        "init_spread": (
            f"{big}, last layer, k = 1..4 at step 0: coherent {by_k('0', 'coherent')}; shuffled "
            f"(official) {by_k('0', 'shuffled')}; shuffled, period last {by_k('0', SHUFFLE)}. At "
            f"the end: coherent {by_k(end, 'coherent')}; shuffled (official) "
            f"{by_k(end, 'shuffled')}; shuffled, period last {by_k(end, SHUFFLE)}"
        ),
        "form_meaning": (
            f"shuffling lowers TwoNN: {held('shuffle_lowers_twonn')}; shuffling raises PCA d: "
            f"{held('shuffle_raises_pca')}"
        ),
        "shuffle_effects": (
            f"{big}, end, mean of layers, k = 1..4: TwoNN coherent "
            f"{by_k(end, 'coherent', 'twonn', 'mean')}, shuffled "
            f"{by_k(end, 'shuffled', 'twonn', 'mean')}; PCA d coherent "
            f"{by_k(end, 'coherent', 'pca', 'mean')}, shuffled "
            f"{by_k(end, 'shuffled', 'pca', 'mean')}"
        ),
        "scales": (
            f"TwoNN I_d {_range(metrics, 'twonn')}, PCA d {_range(metrics, 'pca')} at the end of "
            f"training (hidden sizes {', '.join(metrics['sizes'])})"
        ),
        "estimators": (
            "the same estimators from the same libraries (DADApy, scikit-dimension, the official "
            f"PCA d), {metrics['settings']['n_sentences']:,} sentences per k and condition, "
            f"{len(metrics['seeds'])} seeds per size"
        ),
        "revision": (
            "the reader's path passes revision='step{n}' (a test records the call); loading and "
            "measuring are tested on a config-built model saved locally"
        ),
    }


def _range(metrics: dict, estimator: str) -> str:
    end = final(metrics)
    values = [v for r in metrics["runs"] for by_k in r["checkpoints"][end]["id"].values()
              for est in by_k.values() for v in est[estimator]]  # fmt: skip
    return f"{min(values):.0f} to {max(values):.0f}"


def key_number(metrics: dict) -> str:
    big = metrics["sizes"][-1]
    return (f"coherent TwoNN I_d at the last layer after training, k = 1..4 ({big}): "
            f"{_by_k(metrics, big, final(metrics), 'coherent')}")  # fmt: skip


def prose_numbers(metrics: dict) -> dict[str, str]:
    s = metrics["settings"]
    end = final(metrics)
    big = metrics["sizes"][-1]

    ks = metrics["couplings"]

    def competence(k: int, quantity: str) -> list[float]:
        return [r["checkpoints"][end]["competence"][str(k)][quantity] for r in metrics["runs"]]

    out = {
        "n_sentences": f"{s['n_sentences']:,}",
        "n_steps": f"{s['steps']:,}",
        "n_checkpoints": str(len(metrics["steps"])),
        "checkpoint_steps": ", ".join(str(x) for x in metrics["steps"]),
        "sizes": ", ".join(metrics["sizes"]),
        "n_seeds": str(len(metrics["seeds"])),
        "n_models": str(len(metrics["runs"])),
        "vocabulary": f"{metrics['vocabulary']:,}",
        "prose_words": f"{s['prose_words']:,}",
        "prose_paragraphs": f"{metrics['prose_paragraphs']:,}",
        "prose_share": f"{s['prose_share']:.0%}",
        "lengths": ", ".join(str(n) for n in s["lengths"]),
        "big": big,
        "coherent_end": _by_k(metrics, big, end, "coherent"),
        "coherent_init": _by_k(metrics, big, "0", "coherent"),
        "shuffled_end": _by_k(metrics, big, end, "shuffled"),
        "shuffled_init": _by_k(metrics, big, "0", "shuffled"),
        "period_end": _by_k(metrics, big, end, SHUFFLE),
        "period_init": _by_k(metrics, big, "0", SHUFFLE),
        "pca_coherent_end": _by_k(metrics, big, end, "coherent", "pca", "mean"),
        "pca_shuffled_end": _by_k(metrics, big, end, "shuffled", "pca", "mean"),
        "category_end": f"{min(min(competence(k, 'category')) for k in ks):.3f}",
        "tied_end": ", ".join(f"{np.mean(competence(k, 'tied')):.2f}" for k in ks[1:]),
    }  # fmt: skip
    claims = metrics.get("claims") or check_claims(metrics)
    for name in COMPARISONS:
        out[f"diff_{name}"] = comparison(metrics, name).lower_text(2, "supports")
        out[f"held_{name}"] = report.held_text(claims, name)
    out["held_monotone_in_k"] = report.held_text(claims, "monotone_in_k")
    return out


def checkpoint_table(metrics: dict) -> pd.DataFrame:
    """A reader's real checkpoint (``model_name``): TwoNN at the last layer, PCA d and PR (mean
    of layers) per k and kind of sentence."""
    measured = metrics["checkpoint"]["id"]
    rows = []
    for condition, by_k in measured.items():
        for k, est in by_k.items():
            rows.append({
                "sentences": CONDITION_WORDS[condition], "k": k,
                "TwoNN, last layer": round(est["twonn"][-1], 1),
                "PCA d, mean of layers": round(float(np.mean(est["pca"])), 1),
                "PR, mean of layers": round(float(np.mean(est["participation_ratio"])), 1),
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["sentences", "k"])
