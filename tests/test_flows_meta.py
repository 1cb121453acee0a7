"""Tests of chapter 8's study, report and figures (reprobook.flows.meta): the configuration's
checks, a tiny end-to-end study, and the claims and tables on hand-made metrics."""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from reprobook import anchors, prose, report
from reprobook.flows.meta import plots, study
from reprobook.flows.meta import report as chapter

matplotlib.use("Agg")
CHAPTER = "ch08-meta-flow-matching"


def test_config_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match="held-out letters"):
        study.resolve_config("smoke", train_letters="ABCY")
    with pytest.raises(ValueError, match="knn < points_per_pop"):
        study.resolve_config("smoke", knn=100)
    with pytest.raises(ValueError, match="methods must be"):
        study.resolve_config("smoke", methods=["fm", "ot"])
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("large")


TINY = dict(n_seeds=2, train_letters="AB", n_rotations=2, n_points=40, letters_steps=100,
            n_patients=3, n_test_patients=1, n_treatments=2, n_cells=40, patients_steps=100,
            points_per_pop=20, knn=4, n_shown=1)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_metrics():
    torch.set_num_threads(1)
    config = study.resolve_config("smoke", **TINY)
    metrics = study.run_all(config, [0, 1], progress=False)
    metrics["claims"] = chapter.check_claims(metrics)
    return metrics


def test_a_tiny_study_has_every_split_method_and_seed(tiny_metrics):
    m = tiny_metrics
    assert m["tasks"]["letters"]["splits"] == ["train", "val", "test"]
    assert m["tasks"]["patients"]["splits"] == ["train", "replicates", "test"]
    for block in m["tasks"].values():
        assert set(block["runs"]) == {"fm", "cgfm", "mfm"} and len(block["identity"]) == 2
        assert all(len(rows) == 2 for rows in block["runs"].values())
        shown = block["shown"]
        assert set(shown["predicted"]) == {"fm", "cgfm", "mfm"} and len(shown["x0"]) == 1
    assert set(chapter.COMPARISONS) <= set(m["claims"]) and m["claims"]["sanity"]
    assert report.can_read(chapter, m)


def test_tables_figures_and_prose_from_a_tiny_study(tiny_metrics):
    table = chapter.results_table(tiny_metrics, "letters")
    assert list(table.index) == ["identity", "FM", "CGFM", "MFM"]
    assert len(chapter.comparisons_table(tiny_metrics)) == len(chapter.COMPARISONS)
    for fig in (plots.plot_w2(tiny_metrics), plots.plot_training_loss(tiny_metrics),
                plots.plot_populations(tiny_metrics, "patients")):  # fmt: skip
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    numbers = chapter.prose_numbers(tiny_metrics)
    text = (Path(__file__).parents[1] / "notebooks" / f"{CHAPTER}.md").read_text()
    glued = prose.glued_names(text)
    assert glued <= set(numbers), glued - set(numbers)
    findings = chapter.miniature_findings(tiny_metrics)
    assert set(findings) == set(anchors.load_anchors(CHAPTER))


def _with_w2(metrics: dict, task: str, split: str, values: dict[str, list[float]]) -> dict:
    out = copy.deepcopy(metrics)
    for method, seeds in values.items():
        for row, value in zip(out["tasks"][task]["runs"][method], seeds, strict=True):
            row["distances"][split]["w2"] = value
    return out


def test_a_claim_needs_every_seed_and_a_one_sided_test(tiny_metrics):
    lower = _with_w2(tiny_metrics, "letters", "test", {"mfm": [0.1, 0.2], "fm": [0.3, 0.41]})
    assert chapter.check_claims(lower)["letters_mfm_beats_fm"]
    one_seed_higher = _with_w2(tiny_metrics, "letters", "test",
                               {"mfm": [0.1, 0.5], "fm": [0.3, 0.41]})  # fmt: skip
    assert not chapter.check_claims(one_seed_higher)["letters_mfm_beats_fm"]
    noisy = _with_w2(tiny_metrics, "letters", "test", {"mfm": [0.1, 0.39], "fm": [0.3, 0.4]})
    assert chapter.comparison(noisy, "letters_mfm_beats_fm").p_lower > chapter.ALPHA
    assert not chapter.check_claims(noisy)["letters_mfm_beats_fm"]


def test_one_seed_checks_only_sanity(tiny_metrics):
    one = copy.deepcopy(tiny_metrics)
    one["n_seeds"] = 1
    assert set(chapter.check_claims(one)) == {"sanity", "solver_agrees"}


def test_sanity_fails_on_a_non_finite_metric(tiny_metrics):
    bad = _with_w2(tiny_metrics, "patients", "test", {"fm": [float("nan"), 0.3]})
    assert not chapter.check_claims(bad)["sanity"]


def test_every_claim_is_described_and_headline_claims_are_comparisons():
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.COMPARISONS) <= set(chapter.CLAIMS)
    assert chapter.KEY_ANCHOR in anchors.load_anchors(CHAPTER)
