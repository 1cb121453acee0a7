"""ch09's reading of its metrics: the claims, the findings beside the published ones, tables and
numbers (see ``reprobook.report.ChapterReport``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.cells.virtual.study import METRICS_VERSION as METRICS_VERSION

REQUIRED_KEYS = ("models", "rows", "interaction_share", "representation", "claims")
PAPER_CLAIM = (
    "An AI virtual cell should learn universal representations of cell states, decode them with "
    "virtual instruments and predict the effect of perturbations in silico; the benchmarks "
    "behind today's perturbation models find that learned models do not yet beat simple "
    "additive or linear baselines on unseen double perturbations"
)
ALPHA = 0.05
METRIC_WORDS = {"l2": "L2 error", "pearson_delta": "Pearson-Δ", "gi_auc": "interaction ROC-AUC"}
LOWER_IS_BETTER = {"l2": True, "pearson_delta": False, "gi_auc": False}
TEST = (
    f"paired over networks (each the mean over its splits), one-sided t-test p < {ALPHA:g}, "
    "and better in every network"
)
COMPARISONS = {  # claim -> (metric, better model, worse model); lowest ε, every training double
    "additive_beats_mlp": ("l2", "additive", "mlp"),
    "additive_beats_graph": ("l2", "additive", "graph"),
    "linear_beats_mlp": ("l2", "linear", "mlp"),
    "additive_beats_mlp_pearson": ("pearson_delta", "additive", "mlp"),
    "additive_beats_graph_pearson": ("pearson_delta", "additive", "graph"),
    "no_change_flags_interactions": ("gi_auc", "no_change", "additive"),  # at the highest ε
}
AT_HIGHEST = ("no_change_flags_interactions",)
FLOOR = "replicate"  # a second pseudobulk of the test doubles: the noise floor
FLOOR_LABEL = "replicate (noise floor)"
HEADLINE_CLAIMS = ("additive_beats_mlp", "additive_beats_graph")
KEY_ANCHOR = "additive_beats_deep"


def _describe(name: str) -> str:
    metric, better, worse = COMPARISONS[name]
    kind = "" if name in HEADLINE_CLAIMS else "; reported"
    if name == "no_change_flags_interactions":
        return ("at the highest epistasis, 'no change' flags the interacting doubles better "
                f"than the additive model's constant score does ({TEST}{kind})")  # fmt: skip
    word = "lower" if LOWER_IS_BETTER[metric] else "higher"
    return (
        f"at the lowest epistasis with every training double, the {better.replace('_', ' ')} "
        f"model's {METRIC_WORDS[metric]} is {word} than the {worse}'s ({TEST}{kind})"
    )


CLAIMS = {
    "sanity": "every score is finite and every test set is disjoint from its training set (sanity)",
    "knob_works": "the interaction share of the doubles grows with ε in every network (sanity: "
    "the epistasis knob does what it says)",
    "decoder_beats_chance": "every learned representation's decoder reads the PBMC cell type "
    "better than the majority class in every fold (reported)",
    **{name: _describe(name) for name in COMPARISONS},
}


def rows_at(metrics: dict, epsilon: float, fraction: float = 1.0) -> list[dict]:
    return [r for r in metrics["rows"] if r["epsilon"] == epsilon and r["fraction"] == fraction]


def per_pair(metrics: dict, model: str, metric: str, epsilon: float, fraction: float = 1.0):
    """``metric`` of ``model`` per (network, split) at (ε, fraction), in one fixed order."""
    return [r["models"][model][metric] for r in rows_at(metrics, epsilon, fraction)]


def per_network(metrics: dict, model: str, metric: str, epsilon: float, fraction: float = 1.0):
    """``metric`` of ``model`` per network (the mean over its splits), in seed order."""
    rows = rows_at(metrics, epsilon, fraction)
    return [float(np.mean([r["models"][model][metric] for r in rows if r["seed"] == s]))
            for s in metrics["seeds"]]  # fmt: skip


def _epsilon(metrics: dict, name: str, epsilon: float | None) -> float:
    if epsilon is not None:
        return epsilon
    return metrics["epsilons"][-1 if name in AT_HIGHEST else 0]


def comparison(metrics: dict, name: str, epsilon: float | None = None) -> report.Paired:
    """better - worse per network, sign-adjusted so that a negative difference favours
    ``better`` (Pearson-Δ and the AUC are higher-is-better)."""
    metric, better, worse = COMPARISONS[name]
    eps = _epsilon(metrics, name, epsilon)
    sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
    a = [sign * v for v in per_network(metrics, better, metric, eps)]
    b = [sign * v for v in per_network(metrics, worse, metric, eps)]
    return report.paired(a, b)


def better_with_confidence(metrics: dict, name: str, epsilon: float | None = None) -> bool:
    """Better in every network, and the one-sided paired t-test over networks p < ALPHA."""
    paired = comparison(metrics, name, epsilon)
    return bool(
        paired.n >= 2 and paired.p_lower is not None and paired.p_lower < ALPHA
        and all(d < 0 for d in paired.diffs)
    )  # fmt: skip


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``); the comparisons
    need at least two (seed, split) pairs."""
    scores = [v for r in metrics["rows"] for m in r["models"].values() for v in m.values()]
    shares = metrics["interaction_share"]
    eps = metrics["epsilons"]
    grows = all(
        all(shares[str(a)][k] < shares[str(b)][k] for a, b in zip(eps, eps[1:], strict=False))
        for k in range(len(metrics["seeds"]))
    )
    rep = metrics["representation"]
    claims = {
        "sanity": bool(scores and all(math.isfinite(v) for v in scores)),
        "knob_works": bool(grows),
        "decoder_beats_chance": all(
            min(acc) > rep["majority"]
            for name, acc in rep["accuracy"].items()
            if name != "random projection"
        ),  # fmt: skip
    }
    if len(metrics["seeds"]) >= 2:
        for name in COMPARISONS:
            claims[name] = better_with_confidence(metrics, name)
    return claims


def curve(metrics: dict, model: str, metric: str, over: str = "epsilon") -> dict[str, list]:
    """Mean and standard error over (seed, split) of ``metric`` along ε (all doubles) or along
    the training fraction (lowest ε)."""
    xs = metrics["epsilons"] if over == "epsilon" else metrics["train_fractions"]
    out = {"x": list(xs), "mean": [], "se": []}
    for x in xs:
        values = (per_pair(metrics, model, metric, x) if over == "epsilon"
                  else per_pair(metrics, model, metric, metrics["epsilons"][0], x))  # fmt: skip
        mean, se = report.mean_se(values)
        out["mean"].append(mean)
        out["se"].append(se)
    return out


def results_table(metrics: dict) -> pd.DataFrame:
    """Per model and ε (every training double): L2, Pearson-Δ and interaction AUC, mean ± s.e.
    over seeds × splits."""
    rows = []
    for eps in metrics["epsilons"]:
        share = np.mean(metrics["interaction_share"][str(eps)])
        for model in (*metrics["models"], FLOOR):
            label = FLOOR_LABEL if model == FLOOR else metrics["labels"][model]
            row = {"ε (interaction share)": f"{eps:g} ({share:.2f})", "model": label}
            for metric, words in METRIC_WORDS.items():
                row[words] = report.fmt_mean_se(per_pair(metrics, model, metric, eps), 3)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["ε (interaction share)", "model"])


def comparisons_table(metrics: dict) -> pd.DataFrame:
    """Each comparison at every ε: the paired difference (negative favours the first model)."""
    rows = []
    for name, (metric, better, worse) in COMPARISONS.items():
        for eps in metrics["epsilons"]:
            paired = comparison(metrics, name, eps)
            rows.append({
                "comparison": f"{metrics['labels'][better]} vs {metrics['labels'][worse]}",
                "metric": METRIC_WORDS[metric], "ε": f"{eps:g}",
                "difference (negative: first is better)": paired.lower_text(3, "first better"),
                "holds": "yes" if better_with_confidence(metrics, name, eps) else "no",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["comparison", "metric", "ε"])


def _order(metrics: dict, metric: str, epsilon: float, fraction: float = 1.0) -> str:
    means = {m: float(np.mean(per_pair(metrics, m, metric, epsilon, fraction)))
             for m in metrics["models"]}  # fmt: skip
    ranked = sorted(means, key=means.get, reverse=not LOWER_IS_BETTER[metric])
    sep = " < " if LOWER_IS_BETTER[metric] else " > "
    return sep.join(f"{metrics['labels'][m]} {means[m]:.3f}" for m in ranked)


def _first_win(metrics: dict, model: str) -> str:
    """The lowest ε at which ``model``'s L2 beats the additive model's by the claims' rule."""
    for eps in metrics["epsilons"]:
        paired = report.paired(per_network(metrics, model, "l2", eps),
                               per_network(metrics, "additive", "l2", eps))  # fmt: skip
        if paired.n >= 2 and paired.p_lower < ALPHA and all(d < 0 for d in paired.diffs):
            return f"ε = {eps:g}"
    return "no ε tested"


def miniature_findings(metrics: dict) -> dict[str, str]:
    claims = metrics["claims"]
    eps0 = metrics["epsilons"][0]
    rep = metrics["representation"]
    acc = "; ".join(f"{k} {np.mean(v):.2f}" for k, v in rep["accuracy"].items())

    def held(name: str) -> str:
        return (
            "not tested" if name not in claims else ("holds" if claims[name] else "does not hold")
        )

    return {
        "capabilities": (
            f"representation (PCA, autoencoder; {rep['dim']} dimensions) of {rep['n_cells']} "
            f"PBMC cells, decoded to cell type with accuracy {acc} (majority class "
            f"{rep['majority']:.2f}); manipulators: the perturbation models below"
        ),
        "additive_beats_deep": (
            f"simulated screen, lowest ε, L2 (mean over seeds × splits): "
            f"{_order(metrics, 'l2', eps0)}; additive beats MLP: "
            f"{held('additive_beats_mlp')}; additive beats the graph-prior model: "
            f"{held('additive_beats_graph')}"
        ),
        "no_change_gi": (
            f"interaction ROC-AUC at the highest ε ({metrics['epsilons'][-1]:g}): "
            f"{_order(metrics, 'gi_auc', metrics['epsilons'][-1])}; no change beats the "
            f"additive model's 0.5: {held('no_change_flags_interactions')}"
        ),
        "linear_settings": (
            f"the same linear model: {metrics['settings']['pca_dim']} dimensions, ridge λ = "
            f"{metrics['settings']['ridge']:g}"
        ),
        "train_mean": (
            "train mean vs the learned models on the simulated screen, Pearson-Δ at the lowest "
            f"ε: {_order(metrics, 'pearson_delta', eps0)}"
        ),
    }


def key_number(metrics: dict) -> str:
    eps0 = metrics["epsilons"][0]
    return f"L2 on unseen doubles at ε = {eps0:g} (lower is better): {_order(metrics, 'l2', eps0)}"


def prose_numbers(metrics: dict) -> dict[str, str]:
    eps0 = metrics["epsilons"][0]
    s = metrics["settings"]
    out = {k: f"{v:g}" if isinstance(v, float) else f"{v:,}" for k, v in s.items()}
    out.update({
        "n_seeds": str(metrics["n_seeds"]),
        "eps0": f"{eps0:g}",
        "n_networks": str(len(metrics["seeds"])),
        "eps_max": f"{metrics['epsilons'][-1]:g}",
        "floor_l2": report.fmt_mean_se(per_network(metrics, FLOOR, "l2", eps0), 3),
        "gi_top": f"{1 - metrics['settings']['gi_quantile']:.0%}",
        "l2_order": _order(metrics, "l2", eps0),
        "pearson_order": _order(metrics, "pearson_delta", eps0),
        "gi_order": _order(metrics, "gi_auc", metrics["epsilons"][-1]),
        "l2_order_max": _order(metrics, "l2", metrics["epsilons"][-1]),
        "shares": "; ".join(f"ε = {e:g}: {np.mean(metrics['interaction_share'][str(e)]):.2f}"
                            for e in metrics["epsilons"]),  # fmt: skip
        "graph_first_win": _first_win(metrics, "graph"),
        "mlp_first_win": _first_win(metrics, "mlp"),
        "l2_order_small": _order(metrics, "l2", eps0, metrics["train_fractions"][0]),
        "smallest_fraction": f"{metrics['train_fractions'][0]:g}",
        "majority": f"{metrics['representation']['majority']:.2f}",
        "accuracy": "; ".join(f"{k} {np.mean(v):.2f}"
                              for k, v in metrics["representation"]["accuracy"].items()),
    })  # fmt: skip
    for name in COMPARISONS:
        out[f"diff_{name}"] = comparison(metrics, name).lower_text(3, "first better")
    return out
