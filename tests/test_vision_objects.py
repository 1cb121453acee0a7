"""Tests of reprobook.vision.objects: the profiles, the claims on hand-made metrics (each claim
can fail), the tables and the figures."""

import math

import matplotlib
import pytest

from reprobook import report
from reprobook.vision.objects import plots, study
from reprobook.vision.objects import report as chapter
from reprobook.vision.scenes import HELD_OUT_DOMAINS

matplotlib.use("Agg")


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(top_k=9), "top_k"),
        (dict(patch_size=7), "multiple of patch_size"),
        (dict(vit_heads=3), "multiple of vit_heads"),
        (dict(sweep_fractions=[0.5, 1.0]), "shares of n_train"),
        (dict(steps=0), "steps must be"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        study.resolve_config("smoke", **overrides)
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")


def _metrics(ft_gain=0.05, diverse_gain=0.05, plateau_gain=0.0, small_gain=0.1, n_seeds=3):
    """Hand-made metrics: every arm scores a base value per (seed, domain) plus the given gains
    (with a seed-and-domain wobble so that paired tests have a spread)."""
    sizes = [128, 512, 2048, 8192]
    runs = []
    for seed in range(n_seeds):

        def scores(level, seed=seed):
            return {
                d: {
                    "fg_ari": level + 0.01 * ((seed * 7 + i * 3) % 5),
                    "mbo": 0.5 * level + 0.01 * ((seed + i) % 3),
                    "segments": 3.0 + i / 10,
                }
                for i, d in enumerate(study.EVAL_DOMAINS)
            }

        loss = [1.0 - 0.01 * i for i in range(20)]
        base = 0.4
        arms = {
            "diverse/dinosaur": dict(scores=scores(base), loss=loss),
            "diverse/dinosaur_topk": dict(scores=scores(base + ft_gain / 2), loss=loss),
            "diverse/ft_dinosaur": dict(scores=scores(base + ft_gain), loss=loss),
            "diverse/random_encoder": dict(scores=scores(base - 0.2), loss=loss),
            "simple/ft_dinosaur": dict(scores=scores(base + ft_gain - diverse_gain), loss=loss),
        }
        levels = [base - small_gain, base, base + ft_gain / 2 - plateau_gain, base + ft_gain / 2]
        sweep = {
            str(n): dict(scores=scores(level), loss=loss)
            for n, level in zip(sizes, levels, strict=True)
        }
        truth = {d: 4.0 for d in study.EVAL_DOMAINS}
        runs.append(dict(seed=seed, arms=arms, sweep=sweep, truth_segments=truth))
    settings = dict(study.PROFILES["full"])
    pretraining = dict(seconds=12.0, dino_loss=[1.0, 0.5], ibot_loss=[1.0, 0.6], parameters=1000)
    return dict(
        metrics_version=study.METRICS_VERSION, settings=settings, pretraining=pretraining, runs=runs
    )


def test_claims_hold_on_a_clear_case():
    claims = chapter.check_claims(_metrics())
    assert claims == {
        "sanity": True, "pretraining_helps": True, "ft_beats_frozen": True, "ft_beats_topk": True,
        "diverse_transfers_better": True, "data_plateau": True, "small_data_helps": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, claim",
    [
        (dict(ft_gain=-0.05), "ft_beats_frozen"),
        (dict(diverse_gain=-0.05), "diverse_transfers_better"),
        (dict(plateau_gain=0.05), "data_plateau"),
        (dict(small_gain=-0.05), "small_data_helps"),
    ],
)
def test_each_claim_can_fail(kwargs, claim):
    assert not chapter.check_claims(_metrics(**kwargs))[claim]


def test_sanity_fails_on_a_score_out_of_range_or_a_loss_that_rose():
    m = _metrics()
    m["runs"][0]["arms"]["diverse/dinosaur"]["scores"]["crowded"]["mbo"] = -0.1
    assert not chapter.check_claims(m)["sanity"]
    m = _metrics()
    m["runs"][1]["sweep"]["128"]["loss"] = list(range(20))
    assert not chapter.check_claims(m)["sanity"]


def test_one_seed_checks_only_sanity_and_a_drop_is_no_plateau():
    assert chapter.check_claims(_metrics(n_seeds=1)) == {"sanity": True}  # seeds are the units
    assert not chapter.check_claims(_metrics(plateau_gain=-0.05))["data_plateau"]  # a drop
    m = _metrics()
    for run in m["runs"]:
        run["sweep"] = {k: v for k, v in run["sweep"].items() if k == "8192"}
    assert "data_plateau" not in chapter.check_claims(m)  # no smaller size left


def test_plateau_step_and_bounds():
    m = _metrics()
    assert chapter.plateau_step(m) == ("2048", "8192")
    p = report.paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = 2.919986 / math.sqrt(3)  # t(0.95, 2 df) x s.e.
    assert chapter.bounds(p) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-5)
    assert chapter.bounds(report.paired([1.0], [0.0])) == (-math.inf, math.inf)


def test_tables_findings_and_prose():
    m = _metrics()
    m["claims"] = chapter.check_claims(m)
    table = chapter.zero_shot_table(m)
    assert table.shape == (len(study.ARMS), len(study.EVAL_DOMAINS))
    assert table.loc[
        ("trained on diverse", study.ARMS[("diverse", "dinosaur")]), "diverse"
    ].endswith("(own)")
    assert list(chapter.sweep_table(m).index) == [128, 512, 2048, 8192]
    comparisons = chapter.comparison_table(m)
    assert "sweep: 8192 − 2048 scenes" in comparisons.index
    findings = chapter.miniature_findings(m)
    assert set(findings) <= set(chapter.anchors_mod.load_anchors("ch12-object-centric"))
    assert "holds" in findings["zero_shot_average"]
    prose = chapter.prose_numbers(m)
    assert prose["verdict_diverse"] == "holds" and prose["plateau_sizes"] == "2,048 to 8,192"
    assert (
        prose["segments_truth"] == "4.0" and prose["segments_dinosaur"] == "3.4"
    )  # zero-shot domains: 3.2 ... 3.5
    assert len(HELD_OUT_DOMAINS) == 3
    assert "DINOSAUR" in chapter.key_number(m)
    paper = chapter.paper_table()
    assert paper.loc["DINOSAUR", "Avg"] == "65.2 / 33.0"


def test_figures_draw():
    m = _metrics(n_seeds=2)
    for fig in (plots.plot_scores(m), plots.plot_sweep(m), plots.plot_domains(32, 0, n=2),
                plots.plot_pretraining(m["pretraining"])):  # fmt: skip
        assert fig.axes
        matplotlib.pyplot.close(fig)
