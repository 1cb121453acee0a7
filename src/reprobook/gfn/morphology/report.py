"""ch07's reading of its metrics: the claims, the findings beside the paper's, tables and the
numbers of the prose (see ``reprobook.report.ChapterReport``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from reprobook import report
from reprobook.gfn.morphology.study import METHOD_LABELS, METHODS, METRICS_VERSION

__all__ = ["METRICS_VERSION"]

REQUIRED_KEYS = ("runs", "settings", "world", "claims")
ALPHA = 0.05
BASELINES = ("sql", "random", "similarity")
PAPER_CLAIM = (
    "A GFlowNet guided by a contrastive model of cell morphology and structure generates "
    "diverse, high-reward molecules with the target's phenotype, more distinct modes than "
    "reinforcement-learning and random baselines, including molecules structurally unlike the "
    "target, which an independent oracle confirms"
)
CLAIMS = {
    "sanity": "every reward lies in [1e-4, 1] and the target's own reward equals the formula "
    "written out by hand (to 1e-6)",
    "retrieval_above_chance": "for every seed, profile-to-structure top-1 retrieval among 100 "
    f"held-out molecules beats chance (one-sided binomial test p < {ALPHA:g})",
    "gfn_learns": "for every target, the GFlowNet's last draws have a higher mean reward than "
    "random draws",
    "more_modes": "the GFlowNet finds more modes than each baseline (paper's rule: reward at or "
    "above the per-target threshold, Tanimoto < 0.3 to earlier modes; one-sided paired t-test "
    f"over targets and seeds p < {ALPHA:g} against each)",
    "more_hits": "the GFlowNet draws more distinct molecules at or above the threshold than "
    "soft Q-learning and random sampling (same test against each; reported)",
    "oracle_above_random": "the oracle places the GFlowNet's top-k in the target's cluster more "
    f"often than random's (same test, p < {ALPHA:g})",
    "dissimilar_same_phenotype": "the GFlowNet's top-k hold more molecules of the target's "
    "cluster with Tanimoto < 0.3 to the target than the similarity search's (same test, "
    f"p < {ALPHA:g})",
}
HEADLINE_CLAIMS = ("more_modes", "oracle_above_random", "dissimilar_same_phenotype")
KEY_ANCHOR = "modes"
MIN_PAIRS = 3  # comparisons are tested on three (seed, target) pairs at least


def rows(metrics: dict) -> list[dict]:
    """Every (seed, target) result."""
    return [t for run in metrics["runs"] for t in run["targets"]]


def values(metrics: dict, method: str, key: str) -> list[float]:
    return [float(t["methods"][method][key]) for t in rows(metrics)]


def gain(metrics: dict, key: str, baseline: str, method: str = "gfn") -> report.Paired:
    """baseline - method over (seed, target) pairs: negative when ``method`` is higher."""
    return report.paired(values(metrics, baseline, key), values(metrics, method, key))


def _higher(p: report.Paired) -> bool:
    return bool(p.n >= MIN_PAIRS and p.mean < 0 and p.p_lower is not None and p.p_lower < ALPHA)


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``)."""
    targets = rows(metrics)
    in_range = all(
        1e-4 <= m["top_reward"] <= 1 and 1e-4 <= m["max_reward"] <= 1
        for t in targets
        for m in t["methods"].values()
    )
    by_hand = all(abs(t["target_reward"] - t["target_reward_by_hand"]) < 1e-6 for t in targets)
    claims = {
        "sanity": in_range and by_hand,
        "retrieval_above_chance": all(
            stats.binomtest(round(r["retrieval"]["top1"] * 100), 100, 0.01, "greater").pvalue
            < ALPHA
            for r in metrics["runs"]
        ),
        "gfn_learns": all(
            t["methods"]["gfn"]["last_window_reward"] > t["methods"]["random"]["last_window_reward"]
            for t in targets
        ),
    }
    if len(targets) >= MIN_PAIRS:
        claims["more_modes"] = all(_higher(gain(metrics, "modes", b)) for b in BASELINES)
        claims["more_hits"] = all(_higher(gain(metrics, "hits", b)) for b in ("sql", "random"))
        claims["oracle_above_random"] = _higher(gain(metrics, "oracle_hit_rate", "random"))
        claims["dissimilar_same_phenotype"] = _higher(
            gain(metrics, "dissimilar_same_cluster_rate", "similarity")
        )
    return claims


# --- tables -----------------------------------------------------------------------------------

TABLE_COLUMNS = {
    "modes": "modes (paper's rule)",
    "hits": "distinct molecules ≥ threshold",
    "top_reward": "top-k mean reward",
    "oracle_hit_rate": "top-k oracle hits",
    "cluster_rate": "top-k in target's cluster (truth)",
    "dissimilar_same_cluster_rate": "top-k same cluster, Tanimoto < 0.3",
    "top_similarity": "top-k Tanimoto to target",
    "max_similarity": "max Tanimoto to target",
    "top_pairwise_similarity": "top-k pairwise Tanimoto",
}


def method_table(metrics: dict) -> pd.DataFrame:
    """Mean ± s.e. over (seed, target) of each metric, one row per method."""
    digits = {"modes": 1, "hits": 1}
    table = {}
    for m in METHODS:
        table[METHOD_LABELS[m]] = {
            label: report.fmt_mean_se(values(metrics, m, key), digits.get(key, 2))
            for key, label in TABLE_COLUMNS.items()
        }
    frame = pd.DataFrame(table).T
    frame.index.name = "method"
    return frame


def threshold_table(metrics: dict) -> pd.DataFrame:
    """Modes (Tanimoto < 0.3) at fixed reward thresholds, mean ± s.e., one row per method."""
    table = {}
    for m in METHODS:
        table[METHOD_LABELS[m]] = {
            f"R ≥ {t}": report.fmt_mean_se(
                [x["methods"][m]["modes_at"][str(t)] for x in rows(metrics)], 1
            )
            for t in metrics["fixed_thresholds"]
        }
    frame = pd.DataFrame(table).T
    frame.index.name = "method"
    return frame


def target_table(metrics: dict) -> pd.DataFrame:
    """One row per (seed, target): the target, its threshold, the share of the space at or above
    it (estimated from the uniform random draws) and the GFlowNet's share in its last draws."""
    out = []
    for run in metrics["runs"]:
        for t in run["targets"]:
            out.append({
                "seed": run["seed"],
                "target molecule": t["label"],
                "cluster": t["cluster"],
                "threshold": f"{t['threshold']:.2f}",
                "space at or above (estimate)": report.pct(t["space_above"], 3),
                "GFlowNet last draws at or above": report.pct(
                    t["methods"]["gfn"]["last_window_above"], 1
                ),
                "GFlowNet modes": t["methods"]["gfn"]["modes"],
            })  # fmt: skip
    return pd.DataFrame(out).set_index(["seed", "target molecule"])


def _signed(x: float, digits: int = 2) -> str:
    """A signed number whose rounding to zero shows as +0.00, never -0.00."""
    return f"{x if round(x, digits) != 0 else 0.0:+.{digits}f}"


def comparison_table(metrics: dict) -> pd.DataFrame:
    """GFlowNet minus each baseline per metric, paired over (seed, target)."""
    out = []
    for key in ("modes", "hits", "oracle_hit_rate", "dissimilar_same_cluster_rate"):
        for b in BASELINES:
            p = gain(metrics, key, b)
            out.append({
                "metric": TABLE_COLUMNS[key],
                "baseline": METHOD_LABELS[b],
                "GFlowNet minus baseline": f"{_signed(-p.mean)} ± {p.se:.2f}",
                "one-sided p": "" if p.p_lower is None else f"{p.p_lower:.2g}",
                "GFlowNet higher in": f"{sum(d < 0 for d in p.diffs)} of {p.n}",
            })  # fmt: skip
    return pd.DataFrame(out).set_index(["metric", "baseline"])


def setup_table(metrics: dict) -> pd.DataFrame:
    """Per seed: the contrastive model's retrieval and the oracle's accuracy, with chance."""
    out = []
    for r in metrics["runs"]:
        ret = r["retrieval"]
        out.append({
            "seed": r["seed"],
            "GMC loss (first → last)": f"{r['gmc_loss_first']:.2f} → {r['gmc_loss_last']:.2f}",
            "retrieval top-1 (chance)": f"{ret['top1']:.2f} ({ret['chance_top1']:.2f})",
            "retrieval top-5 (chance)": f"{ret['top5']:.2f} ({ret['chance_top5']:.2f})",
            "best match in query's cluster (chance)":
                f"{ret['cluster']:.2f} ({ret['chance_cluster']:.2f})",
            "oracle accuracy (majority class)":
                f"{r['oracle_accuracy']:.2f} ({r['oracle_chance']:.2f})",
        })  # fmt: skip
    return pd.DataFrame(out).set_index("seed")


# --- findings and prose -----------------------------------------------------------------------


def _mean(metrics: dict, method: str, key: str) -> float:
    return float(np.mean(values(metrics, method, key)))


def miniature_findings(metrics: dict) -> dict[str, str]:
    claims = metrics.get("claims") or check_claims(metrics)
    modes = {m: _mean(metrics, m, "modes") for m in METHODS}
    out = {
        "modes": "modes per target, GFlowNet "
        + f"{modes['gfn']:.1f}; "
        + ", ".join(f"{METHOD_LABELS[b]} {modes[b]:.1f}" for b in BASELINES)
        + f" (claim {report.held_text(claims, 'more_modes')})",
        "similarity": "max Tanimoto to the target, GFlowNet "
        + report.fmt_mean_se(values(metrics, "gfn", "max_similarity"), 2),
        "oracle": "oracle hits in the top-k, GFlowNet "
        + f"{_mean(metrics, 'gfn', 'oracle_hit_rate'):.2f} vs random "
        + f"{_mean(metrics, 'random', 'oracle_hit_rate'):.2f} "
        + f"(claim {report.held_text(claims, 'oracle_above_random')})",
        "dissimilar": "top-k share in the target's cluster with Tanimoto < 0.3: GFlowNet "
        + f"{_mean(metrics, 'gfn', 'dissimilar_same_cluster_rate'):.2f}, similarity search "
        + f"{_mean(metrics, 'similarity', 'dissimilar_same_cluster_rate'):.2f}",
        "space": f"{metrics['world']['n_molecules']:,} molecules "
        f"({metrics['world']['n_scaffolds']} scaffolds × {metrics['world']['n_substituents']}"
        " substituents on 4 sites), built when drawn; GFlowNet (TB), "
        f"{metrics['settings']['n_iterations']:,} steps of {metrics['settings']['batch_size']}",
        "baselines": "soft Q-learning (α = 0.01, γ = 1, R^β), random and similarity search on "
        f"{len(rows(metrics)) // len(metrics['runs'])} held-out targets per seed over "
        f"{len(metrics['runs'])} seeds ({len(rows(metrics))} paired comparisons)",
        "reward": f"the same formula, β = {metrics['settings']['beta']:g}",
        "contrastive": "GMC with an MLP on Morgan fingerprints, 48 synthetic profile features, "
        f"64-d normalised latents, NT-Xent at temperature {metrics['settings']['temperature']:g}",
        "mode_rule": "the same rule and fingerprints, every draw counted",
        "oracle_model": f"the same MLP and cut over {metrics['world']['n_clusters']} synthetic "
        "clusters",
    }
    return out


def key_number(metrics: dict) -> str:
    best = max(BASELINES, key=lambda b: _mean(metrics, b, "modes"))
    gfn = report.fmt_mean_se(values(metrics, "gfn", "modes"), 1)
    other = report.fmt_mean_se(values(metrics, best, "modes"), 1)
    return f"modes per target: GFlowNet {gfn}, best baseline ({METHOD_LABELS[best]}) {other}"


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    claims = metrics.get("claims") or check_claims(metrics)
    world, settings = metrics["world"], metrics["settings"]
    targets = rows(metrics)
    out = {
        "n_molecules": f"{world['n_molecules']:,}",
        "n_clusters": str(world["n_clusters"]),
        "scaffolds_per_cluster": "{} to {}".format(
            min(world["scaffolds_per_cluster"]), max(world["scaffolds_per_cluster"])
        ),
        "n_targets": str(len(targets) // len(metrics["runs"])),
        "n_seeds": str(len(metrics["runs"])),
        "budget": f"{targets[0]['budget']:,}",
        "budget_share": report.pct(targets[0]["budget"] / world["n_molecules"], 0),
        "thresholds": "{:.2f} to {:.2f}".format(
            min(t["threshold"] for t in targets), max(t["threshold"] for t in targets)
        ),
        "space_above": "{} to {}".format(
            report.pct(min(t["space_above"] for t in targets), 3),
            report.pct(max(t["space_above"] for t in targets), 2),
        ),
        "gfn_above": report.pct(
            float(np.mean([t["methods"]["gfn"]["last_window_above"] for t in targets])), 0
        ),
        "retrieval_top1": "{:.2f} to {:.2f}".format(
            min(r["retrieval"]["top1"] for r in metrics["runs"]),
            max(r["retrieval"]["top1"] for r in metrics["runs"]),
        ),
        "oracle_accuracy": "{:.2f} to {:.2f}".format(
            min(r["oracle_accuracy"] for r in metrics["runs"]),
            max(r["oracle_accuracy"] for r in metrics["runs"]),
        ),
        "world_seconds": report.fmt_seconds(world["seconds"]),
    }
    keys = (
        "modes", "hits", "oracle_hit_rate", "dissimilar_same_cluster_rate", "top_reward",
        "cluster_rate", "top_similarity", "max_similarity", "top_pairwise_similarity",
    )  # fmt: skip
    for m in METHODS:
        modes = values(metrics, m, "modes")
        out[f"modes_range_{m}"] = f"{min(modes):.0f} to {max(modes):.0f}"
    for key in keys:
        for m in METHODS:
            digits = 1 if key in ("modes", "hits") else 2
            out[f"{key}_{m}"] = report.fmt_mean_se(values(metrics, m, key), digits)
    for name in CLAIMS:
        out[f"held_{name}"] = report.held_text(claims, name, "not tested (needs the full profile)")
    out["top_k"] = str(settings["top_k"])
    out["gmc_steps"] = f"{settings['gmc_steps']:,}"
    out["library_size"] = f"{settings['library_size']:,}"
    out["n_scaffolds"] = str(world["n_scaffolds"])
    out["sampling_tau"] = f"{settings['sampling_tau']:g}"
    for m in ("gfn", "sql", "random"):
        out[f"last_reward_{m}"] = report.fmt_mean_se(values(metrics, m, "last_window_reward"), 2)
        out[f"above_{m}"] = report.pct(float(np.mean(values(metrics, m, "last_window_above"))), 1)
    out["oracle_size"] = f"{settings['oracle_size']:,}"
    out["n_iterations"] = f"{settings['n_iterations']:,}"
    return out
