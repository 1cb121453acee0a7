"""ch12's reading of its metrics: the claims, the findings beside the paper's, tables and the
numbers of the prose (see ``reprobook.report.ChapterReport``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from reprobook import anchors as anchors_mod
from reprobook import report
from reprobook.vision.objects.study import ARMS, EVAL_DOMAINS, METRICS_VERSION
from reprobook.vision.scenes import HELD_OUT_DOMAINS, ZERO_SHOT_DOMAINS

__all__ = ["METRICS_VERSION"]

REQUIRED_KEYS = ("runs", "settings", "pretraining", "claims")
ALPHA = 0.05
MIN_SEEDS = 3  # comparisons are tested over three seeds at least
SCORES = ("fg_ari", "mbo")
SCORE_LABELS = {"fg_ari": "FG-ARI", "mbo": "mBO"}
PAPER_CLAIM = (
    "Fine-tuning the self-supervised encoder for object discovery (FT-DINOSAUR: frozen original "
    "features as targets, top-k decoding) transfers better zero-shot than DINOSAUR's frozen "
    "encoder; training on diverse real-world images transfers better than on simple ones; and "
    "more training data does not keep paying off"
)
CLAIMS = {
    "sanity": "every score is finite and in range (FG-ARI in [-1, 1], mBO in [0, 1], at least one "
    "segment per image) and every model's training loss ends below where it started",
    "pretraining_helps": "FT-DINOSAUR's recipe with the pre-trained ViT frozen beats the same on "
    "the untrained ViT on zero-shot FG-ARI (one-sided paired t-test over seeds, each seed's mean "
    f"over the zero-shot domains, p < {ALPHA:g}; reported)",
    "ft_beats_frozen": "trained on the diverse domain, FT-DINOSAUR beats DINOSAUR on the zero-shot "
    f"domains in FG-ARI and in mBO (each a one-sided paired t-test, p < {ALPHA:g})",
    "ft_beats_topk": "FT-DINOSAUR beats its own recipe with the encoder frozen (top-k decoding, "
    "standardised targets and clipping held equal: the fine-tuning alone), in FG-ARI and in mBO "
    "(same tests)",
    "diverse_transfers_better": "FT-DINOSAUR trained on the diverse domain beats it trained on "
    "the simple domain on the domains neither was trained on, in FG-ARI and in mBO (same tests)",
    "data_plateau": "the zero-shot FG-ARI of the data-size sweep neither gains nor loses more than "
    "the plateau margin over its last step (4x in the full profile): both one-sided 95 % bounds "
    "of the paired change lie within ±margin (an equivalence test)",
    "small_data_helps": "the sweep's first step raises zero-shot FG-ARI (one-sided paired "
    f"t-test, p < {ALPHA:g}; reported: where more data still helps)",
}
HEADLINE_CLAIMS = ("ft_beats_frozen", "ft_beats_topk", "diverse_transfers_better", "data_plateau")
KEY_ANCHOR = "zero_shot_average"
# The arms compared, as "training domain/model" keys of the metrics.
FT, FROZEN, RECIPE = "diverse/ft_dinosaur", "diverse/dinosaur", "diverse/dinosaur_topk"
RANDOM, SIMPLE_FT = "diverse/random_encoder", "simple/ft_dinosaur"
ZS, HELD = ZERO_SHOT_DOMAINS, HELD_OUT_DOMAINS


# --- reading the metrics ----------------------------------------------------------------------


def seed_means(
    metrics: dict, arm: str, score: str, domains=ZERO_SHOT_DOMAINS, source: str = "arms"
) -> list[float]:
    """``score`` of ``arm`` (FT, ..., or a sweep size) averaged over ``domains``, one value per
    seed: the seeds are the independent units (the domains of a seed share one model)."""
    return [
        float(np.mean([run[source][arm]["scores"][d][score] for d in domains]))
        for run in metrics["runs"]
    ]


def compare(metrics: dict, a: str, b: str, score: str, domains=ZERO_SHOT_DOMAINS, source="arms"):
    """a - b over seeds (each seed's mean over ``domains``)."""
    return report.paired(
        seed_means(metrics, a, score, domains, source),
        seed_means(metrics, b, score, domains, source),
    )


def p_higher(p: report.Paired) -> float | None:
    """p of the one-sided paired t-test that a is higher than b (None below two pairs)."""
    if p.p is None:
        return None
    return p.p / 2 if p.mean > 0 else 1 - p.p / 2


def _higher(p: report.Paired) -> bool:
    q = p_higher(p)
    return bool(p.n >= MIN_SEEDS and q is not None and q < ALPHA)


def _beats(metrics: dict, a: str, b: str, domains=ZERO_SHOT_DOMAINS) -> bool:
    return all(_higher(compare(metrics, a, b, s, domains)) for s in SCORES)


def sweep_sizes(metrics: dict) -> list[str]:
    """The sweep's training-set sizes, smallest first (as the metrics' keys)."""
    return sorted(metrics["runs"][0]["sweep"], key=int)


def bounds(p: report.Paired, level: float = 0.95) -> tuple[float, float]:
    """One-sided ``level`` lower and upper confidence bounds of a paired mean difference (t over
    the pairs): both inside ±margin is an equivalence test (TOST) at 1 - ``level``."""
    if p.n < 2:
        return -math.inf, math.inf
    half = stats.t.ppf(level, p.n - 1) * p.se
    return p.mean - half, p.mean + half


def plateau_step(metrics: dict) -> tuple[str, str] | None:
    """The sweep's last step of at least 3x (sizes as keys), or None when the sweep has none."""
    sizes = sweep_sizes(metrics)
    top = int(sizes[-1])
    smaller = [s for s in sizes[:-1] if int(s) <= top / 3]
    return (smaller[-1], sizes[-1]) if smaller else None


def plateau_gain(metrics: dict) -> report.Paired | None:
    """Zero-shot FG-ARI of the sweep's largest set minus its last step's smaller set, by seed."""
    step = plateau_step(metrics)
    return None if step is None else compare(metrics, step[1], step[0], "fg_ari", source="sweep")


RANGES = {"fg_ari": (-1.0, 1.0), "mbo": (0.0, 1.0), "segments": (1.0, math.inf)}


def check_claims(metrics: dict) -> dict[str, bool]:
    """The chapter's claims, each computed from the metrics (see ``CLAIMS``)."""
    arms = [
        arm for run in metrics["runs"] for src in ("arms", "sweep") for arm in run[src].values()
    ]
    in_range = all(
        math.isfinite(v) and RANGES[key][0] <= v <= RANGES[key][1]
        for arm in arms
        for d in arm["scores"].values()
        for key, v in d.items()
    )
    learned = all(np.mean(arm["loss"][-5:]) < np.mean(arm["loss"][:5]) for arm in arms)
    claims = {"sanity": in_range and learned}
    if len(metrics["runs"]) >= MIN_SEEDS:
        claims["pretraining_helps"] = _higher(compare(metrics, RECIPE, RANDOM, "fg_ari"))
        claims["ft_beats_frozen"] = _beats(metrics, FT, FROZEN)
        claims["ft_beats_topk"] = _beats(metrics, FT, RECIPE)
        claims["diverse_transfers_better"] = _beats(metrics, FT, SIMPLE_FT, HELD_OUT_DOMAINS)
        gain = plateau_gain(metrics)
        if gain is not None:
            margin = metrics["settings"]["plateau_margin"]
            low, high = bounds(gain)
            claims["data_plateau"] = bool(-margin < low and high < margin)
            sizes, step = sweep_sizes(metrics), plateau_step(metrics)
            first = [s for s in sizes[1:] if int(s) >= 3 * int(sizes[0])]
            if first and first[0] != step[1]:
                claims["small_data_helps"] = _higher(
                    compare(metrics, first[0], sizes[0], "fg_ari", source="sweep")
                )
    return claims


# --- tables -----------------------------------------------------------------------------------

DOMAIN_LABELS = {
    "diverse": "diverse", "simple": "simple", "sprites": "sprites",
    "new_textures": "new textures", "crowded": "crowded", "small": "small objects",
}  # fmt: skip


def _cell(metrics: dict, arm: str, domain: str, source: str = "arms") -> str:
    parts = [
        report.fmt_mean_se(seed_means(metrics, arm, s, (domain,), source), 1, scale=100)
        for s in SCORES
    ]
    return " / ".join(parts)


def zero_shot_table(metrics: dict) -> pd.DataFrame:
    """FG-ARI / mBO (×100, mean ± s.e. over seeds) per model and evaluation domain; a training
    domain's own cell (marked "own") is in-distribution, every other cell zero-shot."""
    rows = {}
    for (train, name), label in ARMS.items():
        rows[(f"trained on {train}", label)] = {
            DOMAIN_LABELS[d]: _cell(metrics, f"{train}/{name}", d)
            + (" (own)" if d == train else "")
            for d in EVAL_DOMAINS
        }
    frame = pd.DataFrame(rows).T
    frame.index.names = ["training data", "model"]
    return frame


def zero_shot_mean(metrics: dict, arm: str, score: str, source: str = "arms") -> float:
    return float(np.mean(seed_means(metrics, arm, score, ZERO_SHOT_DOMAINS, source)))


def sweep_table(metrics: dict) -> pd.DataFrame:
    """Zero-shot FG-ARI and mBO (×100, mean over the zero-shot domains; mean ± s.e. over seeds)
    by training-set size."""
    rows = []
    for size in sweep_sizes(metrics):
        row = {"training scenes": int(size)}
        for s in SCORES:
            per_seed = [
                np.mean([run["sweep"][size]["scores"][d][s] for d in ZERO_SHOT_DOMAINS])
                for run in metrics["runs"]
            ]
            row[f"zero-shot {SCORE_LABELS[s]}"] = report.fmt_mean_se(per_seed, 1, scale=100)
        rows.append(row)
    return pd.DataFrame(rows).set_index("training scenes")


def comparison_table(metrics: dict) -> pd.DataFrame:
    """The paired comparisons behind the claims: mean difference ×100 ± s.e., p, wins."""
    step = plateau_step(metrics)
    tests = [
        ("FT-DINOSAUR − DINOSAUR (diverse)", FT, FROZEN, ZS, "arms"),
        ("FT-DINOSAUR − its recipe, encoder frozen (diverse)", FT, RECIPE, ZS, "arms"),
        ("frozen recipe: pre-trained − untrained ViT (diverse)", RECIPE, RANDOM, ZS, "arms"),
        ("FT-DINOSAUR: diverse − simple training", FT, SIMPLE_FT, HELD, "arms"),
    ]  # fmt: skip
    if step is not None:
        tests.append(
            (f"sweep: {step[1]} − {step[0]} scenes", step[1], step[0], ZERO_SHOT_DOMAINS, "sweep")
        )
    rows = []
    for label, a, b, domains, source in tests:
        row = {"comparison": label, "domains": ", ".join(DOMAIN_LABELS[d] for d in domains)}
        for s in SCORES:
            p = compare(metrics, a, b, s, domains, source)
            text = f"{100 * p.mean:+.1f}"
            if p.n > 1:
                text += f" ± {100 * p.se:.1f} (p = {p_higher(p):.2g}, higher in {p.wins}/{p.n})"
            row[SCORE_LABELS[s]] = text
        rows.append(row)
    return pd.DataFrame(rows).set_index("comparison")


def paper_table(chapter: str = "ch12-object-centric") -> pd.DataFrame:
    """The paper's zero-shot table (FG-ARI / mBO, models trained on COCO), from ``anchors.yaml``."""
    anchor = anchors_mod.load_anchors(chapter)["paper_table"]
    table = anchor.value
    frame = pd.DataFrame(
        {
            model: {d: f"{v[0]:.1f} / {v[1]:.1f}" for d, v in row.items()}
            for model, row in table.items()
        }
    ).T
    frame.index.name = "model (trained on COCO)"
    return frame


# --- findings and prose -----------------------------------------------------------------------


def _delta(metrics: dict, a: str, b: str, score: str, domains=ZERO_SHOT_DOMAINS) -> str:
    p = compare(metrics, a, b, score, domains)
    text = f"{100 * p.mean:+.1f} ± {100 * p.se:.1f}" if p.n > 1 else f"{100 * p.mean:+.1f}"
    q = p_higher(p)
    return text + (f" (p = {q:.2g})" if q is not None else "")


def _means(metrics: dict, arm: str) -> str:
    return " / ".join(f"{100 * zero_shot_mean(metrics, arm, s):.1f}" for s in SCORES)


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, keyed by anchor id."""
    claims = metrics.get("claims") or check_claims(metrics)
    out = {
        "zero_shot_average": (
            f"FG-ARI / mBO ×100, mean over {len(ZERO_SHOT_DOMAINS)} zero-shot domains: DINOSAUR "
            f"{_means(metrics, FROZEN)} → FT-DINOSAUR {_means(metrics, FT)}; "
            f"paired gain FG-ARI {_delta(metrics, FT, FROZEN, 'fg_ari')}, "
            f"mBO {_delta(metrics, FT, FROZEN, 'mbo')}: the claim "
            f"{report.held_text(claims, 'ft_beats_frozen')}"
        ),
        "diverse_training": (
            f"FT-DINOSAUR, diverse − simple training on the {len(HELD)} domains neither saw: "
            f"FG-ARI {_delta(metrics, FT, SIMPLE_FT, 'fg_ari', HELD_OUT_DOMAINS)}, "
            f"mBO {_delta(metrics, FT, SIMPLE_FT, 'mbo', HELD_OUT_DOMAINS)}: "
            f"the claim {report.held_text(claims, 'diverse_transfers_better')}"
        ),
    }
    step, gain = plateau_step(metrics), plateau_gain(metrics)
    if gain is not None:
        out["data_scaling"] = (
            f"zero-shot FG-ARI ×100 from {int(step[0]):,} to {int(step[1]):,} scenes: "
            f"{_bounds_text(gain)}, margin ±{100 * metrics['settings']['plateau_margin']:.1f}: "
            f"the plateau {report.held_text(claims, 'data_plateau')}"
        )
    return out


def _bounds_text(gain: report.Paired) -> str:
    low, high = bounds(gain)
    if not math.isfinite(low):
        return f"{100 * gain.mean:+.1f} (one seed: no bounds)"
    return f"{100 * gain.mean:+.1f} (one-sided 95 % bounds {100 * low:+.1f} and {100 * high:+.1f})"


def key_number(metrics: dict) -> str:
    return (
        f"zero-shot FG-ARI / mBO ×100: DINOSAUR {_means(metrics, FROZEN)}, FT-DINOSAUR's recipe "
        f"with the encoder frozen {_means(metrics, RECIPE)}, FT-DINOSAUR {_means(metrics, FT)}"
    )


def prose_numbers(metrics: dict) -> dict[str, str]:
    """Every number the prose discusses, formatted, for ``report.glue_prose``."""
    claims = metrics.get("claims") or check_claims(metrics)
    pre = metrics["pretraining"]
    out = {
        "pretrain_seconds": report.fmt_seconds(pre["seconds"]),
        "vit_parameters": f"{pre['parameters']:,}",
        "n_seeds": str(len(metrics["runs"])),
        "ft_vs_frozen_fgari": _delta(metrics, FT, FROZEN, "fg_ari"),
        "ft_vs_frozen_mbo": _delta(metrics, FT, FROZEN, "mbo"),
        "ft_vs_topk_fgari": _delta(metrics, FT, RECIPE, "fg_ari"),
        "ft_vs_topk_mbo": _delta(metrics, FT, RECIPE, "mbo"),
        "topk_vs_frozen_fgari": _delta(metrics, RECIPE, FROZEN, "fg_ari"),
        "topk_vs_frozen_mbo": _delta(metrics, RECIPE, FROZEN, "mbo"),
        "pretrained_vs_random_fgari": _delta(metrics, RECIPE, RANDOM, "fg_ari"),
        "diverse_vs_simple_fgari": _delta(metrics, FT, SIMPLE_FT, "fg_ari", HELD_OUT_DOMAINS),
        "diverse_vs_simple_mbo": _delta(metrics, FT, SIMPLE_FT, "mbo", HELD_OUT_DOMAINS),
        "verdict_ft": report.held_text(claims, "ft_beats_frozen"),
        "verdict_ft_topk": report.held_text(claims, "ft_beats_topk"),
        "verdict_diverse": report.held_text(claims, "diverse_transfers_better"),
        "verdict_plateau": report.held_text(claims, "data_plateau", "needs the full profile"),
        "verdict_small_data": report.held_text(claims, "small_data_helps", "not tested"),
        "verdict_pretraining": report.held_text(claims, "pretraining_helps"),
    }  # fmt: skip
    step, gain = plateau_step(metrics), plateau_gain(metrics)
    if gain is not None:
        out["plateau_change"] = _bounds_text(gain)
        out["plateau_sizes"] = f"{int(step[0]):,} to {int(step[1]):,}"
    else:
        out["plateau_change"] = out["plateau_sizes"] = "not measured"
    for name, arm in (("dinosaur", FROZEN), ("recipe", RECIPE), ("ft", FT), ("random", RANDOM)):
        out[f"zs_{name}"] = _means(metrics, arm)
        out[f"segments_{name}"] = f"{zero_shot_mean(metrics, arm, 'segments'):.1f}"
    truth = [
        np.mean(list(run["truth_segments"][d] for d in ZERO_SHOT_DOMAINS))
        for run in metrics["runs"]
    ]
    out["segments_truth"] = f"{np.mean(truth):.1f}"
    out["plateau_margin"] = f"{100 * metrics['settings']['plateau_margin']:.1f}"
    settings = metrics["settings"]
    for key in ("n_slots", "crowded_slots", "top_k", "steps", "n_eval", "n_train"):
        out[key] = f"{settings[key]:,}"
    return out
