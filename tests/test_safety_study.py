"""Tests of the chapter-10 study layer: tie-breaking in M_alpha, the guarded and tightness
experiments' tie-break option, the study grids, the claims and notes written from the metrics,
the figures, and the runner's clean-up on SIGTERM.

Everything runs on tiny sizes and one torch thread (the machine may be shared with a long run);
the claims, notes and figures are tested on a hand-made metrics dictionary.
"""

import contextlib
import copy
import math
import os
import signal
import subprocess
import sys
import time

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import psutil
import pytest
import torch
import yaml

from reprobook import anchors, report
from reprobook.chapters import load_chapter
from reprobook.safety import plots, study
from reprobook.safety import report as chapter
from reprobook.safety.bandit import (
    BanditSpec,
    HarmTables,
    all_hypotheses,
    sample_bandits,
)
from reprobook.safety.experiments import (
    EpisodeOutcomes,
    run_guarded_episodes,
    run_overestimation,
)
from reprobook.safety.guardrails import log_harm_estimates, m_alpha_mask, m_alpha_masks

matplotlib.use("Agg")  # pyplot picks its backend lazily, so this holds for every figure below


SPEC = BanditSpec()  # the paper's 10 arms, 10 features, 1024 theories
THRESHOLD = 4.0
SUMMARY_KEYS = {
    "reward", "reward_2sem", "deaths", "deaths_2sem",
    "deaths_per_action", "deaths_on_last_step", "stopped", "steps",
}  # fmt: skip
TIE_ORDER = torch.tensor([[3, 1, 5, 0, 2, 4], [5, 4, 2, 3, 1, 0]])


def _uniform(n_episodes, n_hyp):
    return torch.log_softmax(torch.zeros(n_episodes, n_hyp), dim=1)


def _kept(mask_row):
    return set(torch.nonzero(mask_row).flatten().tolist())


# --------------------------------------------------------------------------------------------
# 1. M_alpha with a tie order
# --------------------------------------------------------------------------------------------


def test_alpha_one_keeps_the_first_theory_of_the_tie_order():
    mask = m_alpha_mask(_uniform(2, 6), 1.0, TIE_ORDER)
    assert mask.shape == (2, 6)
    for e in range(2):
        assert _kept(mask[e]) == {int(TIE_ORDER[e, 0])}


def test_alpha_one_without_a_tie_order_keeps_index_zero():
    mask = m_alpha_mask(_uniform(2, 6), 1.0)
    assert [_kept(row) for row in mask] == [{0}, {0}]


def test_uniform_posterior_keeps_a_prefix_of_the_tie_order():
    # p = 1/6 each; theory i of the order is kept while 1/6 >= 0.3 * i/6, i.e. i <= 3.33
    mask = m_alpha_mask(_uniform(2, 6), 0.3, TIE_ORDER)
    for e in range(2):
        assert _kept(mask[e]) == set(TIE_ORDER[e, :3].tolist())
    assert [_kept(row) for row in m_alpha_mask(_uniform(2, 6), 0.3)] == [{0, 1, 2}] * 2


@pytest.mark.parametrize("shape", [(2, 5), (1, 6), (2, 6, 1), (6,)])
def test_tie_order_of_the_wrong_shape_is_refused(shape):
    bad = torch.zeros(shape, dtype=torch.long)
    with pytest.raises(ValueError, match="tie_order"):
        m_alpha_masks(_uniform(2, 6), [0.5], bad)


def test_tie_order_does_not_matter_without_ties():
    rng = np.random.default_rng(3)
    log_post = torch.log_softmax(torch.as_tensor(rng.normal(size=(4, 6)) * 2.0), dim=1).float()
    assert len(set(log_post[0].tolist())) == 6  # no ties
    order = torch.as_tensor(np.stack([rng.permutation(6) for _ in range(4)]))
    alphas = [0.0, 0.05, 0.2, 0.5, 1.0]
    assert torch.equal(m_alpha_masks(log_post, alphas, order), m_alpha_masks(log_post, alphas))


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.2, 0.3, 0.45, 0.7, 1.0])
def test_m_alpha_holds_at_most_one_over_alpha_theories(alpha):
    rng = np.random.default_rng(int(alpha * 1000))
    cap = max(1, math.floor(1 / alpha))
    for scale in (0.0, 0.3, 1.0, 4.0):
        logits = torch.as_tensor(rng.normal(size=(16, 64)) * scale, dtype=torch.float32)
        log_post = torch.log_softmax(logits, dim=1)
        order = torch.as_tensor(np.stack([rng.permutation(64) for _ in range(16)]))
        for ties in (None, order):
            sizes = m_alpha_mask(log_post, alpha, ties).sum(dim=1)
            assert (sizes >= 1).all()
            assert (sizes <= cap).all(), (scale, sizes.max())


@pytest.fixture(scope="module")
def tiny_tables():
    spec = BanditSpec(n_arms=3, n_features=3)
    bandits = sample_bandits(spec, 2, all_hypotheses(spec), torch.Generator().manual_seed(1))
    return spec, HarmTables.build(bandits, 1.0, spec.reward_std), bandits


def test_log_harm_estimates_non_iid_follows_the_tie_order(tiny_tables):
    spec, tables, bandits = tiny_tables
    log_post = _uniform(2, spec.n_hypotheses)
    # theory 7 is w = (1, 1, 1): the most harmful; theory 0 is w = 0: the least
    order = torch.tensor([[7, 0, 1, 2, 3, 4, 5, 6], [5, 7, 6, 4, 3, 2, 1, 0]])
    with_order = log_harm_estimates(
        "non-iid", tables, log_post, bandits.true_index, 1.0, tie_order=order
    )
    by_index = log_harm_estimates("non-iid", tables, log_post, bandits.true_index, 1.0)
    first = order[:, 0][:, None, None].expand(-1, spec.n_arms, 1)
    expected = tables.lookup(tables.levels.gather(2, first).squeeze(2))
    assert torch.equal(with_order, expected)
    assert torch.equal(by_index, tables.lookup(tables.levels[:, :, 0]))
    assert (tables.levels.gather(2, first) > 0).any()  # so the tie order made a difference
    assert not torch.equal(with_order, by_index)


def test_log_harm_estimates_non_iid_with_a_bad_tie_order(tiny_tables):
    spec, tables, bandits = tiny_tables
    with pytest.raises(ValueError, match="tie_order"):
        log_harm_estimates(
            "non-iid",
            tables,
            _uniform(2, spec.n_hypotheses),
            bandits.true_index,
            0.5,
            tie_order=torch.zeros(2, 3, dtype=torch.long),
        )


# --------------------------------------------------------------------------------------------
# 2. experiments: tie_break option and summaries
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hypotheses():
    return all_hypotheses(SPEC)


def _guarded(hypotheses, tie_break, **kwargs):
    args = {"harm_threshold": 0.1, "alpha": 0.01, "bandit_seed": 3, "noise_seed": 4}
    args.update(kwargs)
    return run_guarded_episodes(
        SPEC, hypotheses, THRESHOLD, "non-iid", 60, tie_break=tie_break, chunk=25, **args
    )


@pytest.mark.parametrize("tie_break", ["random", "index"])
def test_run_guarded_episodes_tie_breaks_run_and_are_deterministic(hypotheses, tie_break):
    first = _guarded(hypotheses, tie_break)
    second = _guarded(hypotheses, tie_break)
    for name in ("total_reward", "died", "stopped", "steps"):
        assert getattr(first, name).shape == (60,)
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert ((first.steps >= 0) & (first.steps <= 25)).all()
    assert not (first.died & first.stopped).any()


def test_run_guarded_episodes_refuses_an_unknown_tie_break(hypotheses):
    with pytest.raises(ValueError, match="tie_break"):
        _guarded(hypotheses, "alphabetical")


def _over(hypotheses, tie_break, prior="correct"):
    return run_overestimation(
        SPEC, hypotheses, THRESHOLD, [1e-3, 1.0], 60, seed=9,
        prior=prior, tie_break=tie_break, chunk=25,
    )  # fmt: skip


@pytest.fixture(scope="module")
def overestimation_runs(hypotheses):
    return {tb: _over(hypotheses, tb) for tb in ("random", "index")}


@pytest.mark.parametrize("tie_break", ["random", "index"])
def test_run_overestimation_tie_breaks_run_and_are_deterministic(
    hypotheses, overestimation_runs, tie_break
):
    first, second = overestimation_runs[tie_break], _over(hypotheses, tie_break)
    assert first.frequency.shape == (2, 60)
    for name in ("frequency", "truth_kept", "always_over", "fifty_fifty_estimate"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.fifty_fifty_count == second.fifty_fifty_count


def test_run_overestimation_refuses_an_unknown_tie_break(hypotheses):
    with pytest.raises(ValueError, match="tie_break"):
        _over(hypotheses, "alphabetical")


@pytest.mark.parametrize("tie_break", ["random", "index"])
def test_overestimation_summary_orders_its_rates(overestimation_runs, tie_break):
    """Truth kept at every step => overestimated at every step => per-step frequency 1."""
    result = overestimation_runs[tie_break]
    assert (result.truth_kept <= result.always_over).all()
    assert (result.always_over <= result.frequency).all()
    for row in result.summary(SPEC.n_hypotheses):
        assert 0.0 <= row["always_over"] <= 1.0
        assert row["always_over"] <= row["frequency"] + 1e-9
        assert row["truth_kept"] <= row["always_over"] + 1e-9


def test_episode_outcomes_summary_by_hand():
    outcomes = EpisodeOutcomes(
        total_reward=np.array([1.0, 2.0, 3.0, 4.0]),
        died=np.array([True, False, True, False]),
        stopped=np.array([False, True, False, False]),
        steps=np.array([3, 1, 2, 3]),
    )
    summary = outcomes.summary(episode_length=3)
    assert set(summary) == SUMMARY_KEYS
    assert summary["reward"] == pytest.approx(2.5)
    assert summary["reward_2sem"] == pytest.approx(2 * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert summary["deaths"] == pytest.approx(0.5)
    assert summary["deaths_per_action"] == pytest.approx(outcomes.died.sum() / outcomes.steps.sum())
    assert summary["deaths_per_action"] == pytest.approx(2 / 9)
    assert summary["deaths_on_last_step"] == pytest.approx(0.25)  # only episode 0 died at step 3
    assert summary["stopped"] == pytest.approx(0.25)
    assert summary["steps"] == pytest.approx(9 / 4)
    assert outcomes.summary(episode_length=2)["deaths_on_last_step"] == pytest.approx(0.25)


def test_episode_outcomes_summary_without_any_action():
    outcomes = EpisodeOutcomes(
        np.zeros(3), np.zeros(3, dtype=bool), np.ones(3, dtype=bool), np.zeros(3, dtype=int)
    )
    summary = outcomes.summary(episode_length=3)
    assert summary["deaths_per_action"] == 0.0
    assert summary["stopped"] == 1.0


# --------------------------------------------------------------------------------------------
# 3. study grids
# --------------------------------------------------------------------------------------------

GRID_CS = [0.01, 0.1]
GRID_ALPHAS = [1e-3, 1.0]


@pytest.fixture(scope="module")
def grid_run():
    return study.guardrail_grid(
        SPEC, THRESHOLD, GRID_CS, GRID_ALPHAS, n_episodes=40, seeds=[0, 1], progress=False
    )


def test_guardrail_grid_layout(grid_run):
    metrics, timing = grid_run
    assert set(metrics) == {"none", "C=0.01", "C=0.1"}
    assert set(metrics["none"]) == SUMMARY_KEYS
    for c in ("C=0.01", "C=0.1"):
        assert set(metrics[c]) == {"cheating", "posterior", "iid", "non-iid"}
        assert set(metrics[c]["non-iid"]) == {"0.001", "1"}
        for summary in [
            *(metrics[c][g] for g in study.ALPHA_FREE),
            *metrics[c]["non-iid"].values(),
        ]:
            assert set(summary) == SUMMARY_KEYS
            assert 0.0 <= summary["deaths"] <= 1.0
    assert timing["episode_steps"] > 0
    assert timing["seconds"] > 0
    assert not metrics["none"]["stopped"]  # no guardrail never stops


def test_guardrail_grid_finds_its_thresholds_and_alphas(grid_run):
    metrics, _ = grid_run
    assert study.harm_thresholds_in(metrics) == [0.01, 0.1]
    assert study.alphas_in(metrics) == [0.001, 1.0]


def test_guardrail_grid_without_the_alpha_free_guardrails():
    metrics, timing = study.guardrail_grid(
        SPEC, THRESHOLD, GRID_CS, GRID_ALPHAS, n_episodes=40, seeds=[0],
        tie_break="index", include_alpha_free=False, progress=False,
    )  # fmt: skip
    assert set(metrics) == {"C=0.01", "C=0.1"}
    for row in metrics.values():
        assert set(row) == {"non-iid"}
        assert set(row["non-iid"]) == {"0.001", "1"}
    assert timing["episode_steps"] > 0
    assert study.harm_thresholds_in(metrics) == [0.01, 0.1]
    assert study.alphas_in(metrics) == [0.001, 1.0]


def test_guardrail_grid_refuses_no_seeds():
    with pytest.raises(ValueError, match="seeds"):
        study.guardrail_grid(SPEC, THRESHOLD, GRID_CS, GRID_ALPHAS, 40, seeds=[], progress=False)


def test_overestimation_study_rows():
    out = study.overestimation_study(
        SPEC, THRESHOLD, [1e-5, 1.0], n_episodes=40, seeds=[0, 1], progress=False
    )
    assert set(out) == {"correct", "truth-excluded", "optimistic"}
    for rows in out.values():
        assert [r["alpha"] for r in rows] == [1e-5, 1.0]
        for r in rows:
            assert r["guarantee"] == pytest.approx(max(0.0, 1 - 1024 * r["alpha"]))
            assert 0.0 <= r["always_over"] <= r["frequency"] + 1e-9 <= 1.0 + 1e-9
    assert all(r["truth_kept"] == 0.0 for r in out["truth-excluded"])
    for r in out["correct"]:
        assert r["truth_kept"] <= r["always_over"] + 1e-9


def test_overestimation_study_passes_its_tie_break_on(monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("tie_break", "random (default)"))
        return run_overestimation(*args, **kwargs)

    monkeypatch.setattr(study, "run_overestimation", spy)
    small = BanditSpec(n_arms=3, n_features=3)
    study.overestimation_study(
        small, 1.0, [0.5], n_episodes=4, seeds=[0], priors=("correct",),
        episode_length=2, tie_break="index", progress=False,
    )  # fmt: skip
    assert seen == ["index"]


# --------------------------------------------------------------------------------------------
# 4. claims and notes, on hand-made metrics
# --------------------------------------------------------------------------------------------


def _summary(deaths=0.1, reward=5.0, stopped=0.0, deaths_per_action=0.01, deaths_2sem=0.01,
             reward_2sem=0.5, steps=20.0, deaths_on_last_step=0.0):  # fmt: skip
    return {
        "reward": reward,
        "reward_2sem": reward_2sem,
        "deaths": deaths,
        "deaths_2sem": deaths_2sem,
        "deaths_per_action": deaths_per_action,
        "deaths_on_last_step": deaths_on_last_step,
        "stopped": stopped,
        "steps": steps,
    }


def _over_row(alpha, frequency, always_over, se=0.001, truth_kept=None, fifty=0.5):
    return {
        "alpha": alpha,
        "frequency": frequency,
        "frequency_2sem": 2 * se,
        "frequency_se": se,
        "truth_kept": always_over if truth_kept is None else truth_kept,
        "truth_kept_se": se,
        "always_over": always_over,
        "always_over_se": se,
        "guarantee": max(0.0, 1.0 - 1024 * alpha),
        "fifty_fifty_estimate": fifty,
    }


def _grid(deaths_by_c, alphas=("0.001", "1")):
    """A grid where every alpha-free guardrail at C dies at deaths_by_c[C] and earns 50x that
    (cheating and posterior equal); the non-i.i.d. one dies 0.1 more at each larger alpha."""
    grid = {"none": _summary(deaths=0.5, reward=8.0, deaths_per_action=0.03)}
    for c, deaths in deaths_by_c.items():
        reward = 50 * deaths
        row = {
            "cheating": _summary(deaths=deaths, reward=reward, deaths_per_action=0.005),
            "posterior": _summary(deaths=deaths, reward=reward, deaths_per_action=0.01,
                                  stopped=0.3),
            "iid": _summary(deaths=deaths, reward=reward),
        }  # fmt: skip
        row["non-iid"] = {
            a: _summary(deaths=deaths + 0.1 * i, reward=4.0) for i, a in enumerate(alphas)
        }
        grid[study.c_key(c)] = row
    return grid


def make_metrics():
    """Hand-made metrics in which every claim of ``check_claims`` holds."""
    grid = _grid({0.01: 0.1, 0.1: 0.2})
    other = _grid({0.01: 0.1, 0.1: 0.2})
    overestimation = {
        "correct": [_over_row(1e-5, 0.995, 0.99), _over_row(1.0, 0.9, 0.6)],
        "truth-excluded": [
            _over_row(1e-5, 0.97, 0.95, truth_kept=0.0),
            _over_row(1.0, 0.8, 0.5, truth_kept=0.0),
        ],
        "optimistic": [
            _over_row(1e-5, 0.7, 0.5, se=0.01, truth_kept=0.0),
            _over_row(1.0, 0.6, 0.3, se=0.01, truth_kept=0.0),
        ],
    }
    return {
        "metrics_version": chapter.METRICS_VERSION,
        "guarded": grid,
        "overestimation": overestimation,
        "n_episodes": 1000,
        "n_seeds": 2,
        "threshold": 4.0,
        "tie_break": "random",
        "guarded_other_ties": {"tie_break": "index", "n_seeds": 1, "grid": other},
    }


ALL_TRUE = {
    "none_most_deaths": True,
    "non_iid_deaths_rise_with_alpha": True,
    "alpha_free_tradeoff": True,
    "truth_kept_bound": True,
    "cheating_safer_per_action": True,
    "cheating_fewer_deaths_per_episode": True,
    "deaths_fall_with_c": True,
    "bound_holds": True,
    "bound_holds_all_steps": True,
    "wrong_prior_breaks_bound": True,
}


def _flipped(metrics):
    claims = chapter.check_claims(metrics)
    assert set(claims) == set(ALL_TRUE)
    assert all(isinstance(v, bool) for v in claims.values())
    return {k for k, v in claims.items() if v != ALL_TRUE[k]}


def test_check_claims_all_hold_on_the_baseline():
    assert chapter.check_claims(make_metrics()) == ALL_TRUE


@pytest.mark.parametrize(
    ("value", "flipped"),
    [(0.6, {"none_most_deaths"}), (0.5, {"none_most_deaths"}), (0.49, set())],
)
def test_check_claims_none_most_deaths(value, flipped):
    metrics = make_metrics()
    metrics["guarded"]["C=0.1"]["non-iid"]["1"]["deaths"] = value
    assert _flipped(metrics) == flipped


@pytest.mark.parametrize(
    ("value", "flipped"), [(0.02, {"cheating_safer_per_action"}), (0.01, set())]
)
def test_check_claims_cheating_safer_per_action(value, flipped):
    metrics = make_metrics()
    metrics["guarded"]["C=0.01"]["cheating"]["deaths_per_action"] = value
    assert _flipped(metrics) == flipped


def test_check_claims_cheating_fewer_deaths_per_episode():
    metrics = make_metrics()
    metrics["guarded"]["C=0.1"]["cheating"]["deaths"] = 0.25
    assert _flipped(metrics) == {"cheating_fewer_deaths_per_episode"}


# non-i.i.d. at alpha = 1: high C 0.3 ± 0.01, low C x ± 0.01: beyond 0.32 is beyond both bars
@pytest.mark.parametrize(("value", "flipped"), [(0.4, {"deaths_fall_with_c"}), (0.315, set())])
def test_check_claims_deaths_fall_with_c(value, flipped):
    metrics = make_metrics()
    metrics["guarded"]["C=0.01"]["non-iid"]["1"]["deaths"] = value
    assert _flipped(metrics) == flipped


def test_check_claims_alpha_free_tradeoff_needs_deaths_and_reward_to_fall():
    metrics = make_metrics()
    metrics["guarded"]["C=0.01"]["iid"]["reward"] = 9.5  # within the bars of 10 at C = 0.1
    assert _flipped(metrics) == {"alpha_free_tradeoff"}
    metrics = make_metrics()
    metrics["guarded"]["C=0.01"]["posterior"]["deaths"] = 0.19  # no significant fall
    assert _flipped(metrics) == {"alpha_free_tradeoff"}


def test_check_claims_non_iid_deaths_rise_with_alpha():
    metrics = make_metrics()
    metrics["guarded"]["C=0.1"]["non-iid"]["1"]["deaths"] = 0.21  # within the bars of 0.2
    assert _flipped(metrics) == {"non_iid_deaths_rise_with_alpha"}


def test_check_claims_deaths_fall_with_c_needs_several_cs():
    metrics = make_metrics()
    del metrics["guarded"]["C=0.1"]
    claims = chapter.check_claims(metrics)
    assert "deaths_fall_with_c" not in claims
    assert set(claims) == set(ALL_TRUE) - {"deaths_fall_with_c", "alpha_free_tradeoff"}


@pytest.mark.parametrize(
    ("claim", "key"),
    [
        ("truth_kept_bound", "truth_kept"),
        ("bound_holds_all_steps", "always_over"),
        ("bound_holds", "frequency"),
    ],
)
def test_check_claims_guarantee(claim, key):
    metrics = make_metrics()
    row = metrics["overestimation"]["correct"][0]
    row[key] = row["guarantee"] - 2 * row[f"{key}_se"]  # within 3 SE: still holds
    assert _flipped(metrics) == set()
    row[key] = row["guarantee"] - 3 * row[f"{key}_se"] - 0.001
    assert _flipped(metrics) == {claim}


def test_check_claims_wrong_prior_breaks_bound():
    metrics = make_metrics()
    for row in metrics["overestimation"]["optimistic"]:
        row["always_over"] = row["guarantee"]
    assert _flipped(metrics) == {"wrong_prior_breaks_bound"}
    metrics["overestimation"]["optimistic"][1]["always_over"] = 0.0  # guarantee 0: not broken
    assert _flipped(metrics) == {"wrong_prior_breaks_bound"}
    metrics["overestimation"]["optimistic"][0]["always_over"] = 0.5
    assert _flipped(metrics) == set()


def test_miniature_findings_cover_the_chapters_anchors():
    chapter_anchors = anchors.load_anchors("ch10-bayesian-oracle")
    findings = chapter.miniature_findings(make_metrics())
    assert set(findings) == set(chapter_anchors)
    assert all(isinstance(v, str) and v for v in findings.values())
    table = anchors.comparison_table(chapter_anchors, findings)
    assert len(table) == len(chapter_anchors)
    assert "not measured here" not in set(table["this miniature"])
    assert "1,000 episodes × 2 seeds" in findings["setting"]
    assert findings["threshold"].startswith("4,")
    assert "none: 50 %" in findings["none_most_deaths"]
    assert "the most of any guardrail at any C is 30 %" in findings["none_most_deaths"]
    assert "C = 0.01, 0.1" in findings["tradeoff"]
    assert "below the guarantee at alpha = 1e-05" in findings["prior_assumption"]
    assert "at or above the guarantee at 1 of the 1 alphas" in findings["overestimation_bound"]


def test_per_episode_note_without_more_deaths():
    note = chapter.per_episode_note(make_metrics())
    assert "At no C does the cheating guardrail have significantly more deaths" in note
    assert "*more*" not in note
    metrics = make_metrics()
    metrics["guarded"]["C=0.1"]["cheating"]["deaths"] = 0.215  # above, but within the bars
    assert chapter.per_episode_note(metrics) == note


def test_per_episode_note_names_the_c_where_cheating_dies_more():
    metrics = make_metrics()
    metrics["guarded"]["C=0.1"]["cheating"]["deaths"] = 0.3
    note = chapter.per_episode_note(metrics)
    assert "*more* deaths" in note
    assert "At no C" not in note
    assert "At C = 0.1," in note
    assert "At C = 0.01," not in note
    assert "**30.00 %**" in note and "**20.00 %**" in note
    assert "stops in 30 % of episodes" in note


def test_tie_break_note_names_the_largest_gap():
    metrics = make_metrics()
    other = metrics["guarded_other_ties"]["grid"]
    other["C=0.01"]["non-iid"]["1"]["deaths"] = 0.4  # random 0.2: gap 0.2
    other["C=0.1"]["non-iid"]["0.001"]["deaths"] = 0.25  # random 0.2: gap 0.05
    note = chapter.tie_break_note(metrics)
    assert "C = 0.01, alpha = 1:" in note
    assert "20.0 % of episodes with random" in note
    assert "40.0 % with index" in note
    other["C=0.1"]["non-iid"]["0.001"]["deaths"] = 0.5  # gap 0.3
    note = chapter.tie_break_note(metrics)
    assert "C = 0.1, alpha = 0.001:" in note
    assert "50.0 % with index" in note


# --------------------------------------------------------------------------------------------
# 5. figures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _labelled(fig):
    return all(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes)


@pytest.mark.usefixtures("close_figures")
def test_plot_guardrail_grid():
    fig = plots.plot_guardrail_grid(make_metrics()["guarded"], [0.01, 0.1], [0.001, 1.0])
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2 * 2
    assert _labelled(fig)


@pytest.mark.usefixtures("close_figures")
def test_plot_guardrail_grid_one_threshold():
    metrics = make_metrics()
    del metrics["guarded"]["C=0.1"]
    fig = plots.plot_guardrail_grid(metrics["guarded"], [0.01], [0.001, 1.0])
    assert len(fig.axes) == 2
    assert _labelled(fig)


@pytest.mark.usefixtures("close_figures")
def test_plot_overestimation():
    fig = plots.plot_overestimation(make_metrics()["overestimation"], 1024)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 3
    assert _labelled(fig)


@pytest.mark.usefixtures("close_figures")
def test_plot_tie_break():
    metrics = make_metrics()
    other = copy.deepcopy(metrics["guarded_other_ties"]["grid"])
    fig = plots.plot_tie_break(metrics["guarded"], other, ("random ties", "index ties"))
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2
    assert _labelled(fig)


# --------------------------------------------------------------------------------------------
# 6. runner: SIGTERM takes papermill and its kernel down
# --------------------------------------------------------------------------------------------


def _sleepy_chapter(path):
    front = {
        "jupytext": {"text_representation": {"extension": ".md", "format_name": "myst"}},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "reprobook": {
            "title": "SIGTERM test",
            "profiles": {"smoke": 100, "full": 200},
            "metrics_keys": ["x"],
        },
    }
    cells = [
        '```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = "smoke"\nseed = 0\n```',
        "```{code-cell} ipython3\nimport time; time.sleep(60)\n```",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n# SIGTERM test\n\n"
        + "\n\n".join(cells) + "\n"
    )  # fmt: skip
    return path


def _descendants(proc):
    with_cmd = []
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return with_cmd
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            with_cmd.append((child, " ".join(child.cmdline())))
    return with_cmd


def _alive(pid):
    if not psutil.pid_exists(pid):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_kills_papermill_and_its_kernel(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    monkeypatch.setenv("REPROBOOK_ROOT", str(root))
    monkeypatch.setenv("REPROBOOK_RESULTS_DIR", str(tmp_path / "results"))
    source = _sleepy_chapter(root / "notebooks" / "ch98-sigterm.md")
    assert load_chapter(source).profiles == {"smoke": 100.0, "full": 200.0}
    output = tmp_path / "out.ipynb"
    code = (
        "from reprobook.runner import run_chapter; from reprobook.chapters import load_chapter; "
        f"import pathlib; run_chapter(load_chapter(pathlib.Path({str(source)!r})), "
        f"output=pathlib.Path({str(output)!r}), quiet=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    watched = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            for child, cmd in _descendants(proc):
                if "papermill" in cmd or "ipykernel" in cmd:
                    watched[child.pid] = cmd
            if any("ipykernel" in c for c in watched.values()):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        assert any("papermill" in c for c in watched.values()), watched
        assert any("ipykernel" in c for c in watched.values()), watched
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        time.sleep(0.2)
        survivors = {pid: cmd for pid, cmd in watched.items() if _alive(pid)}
        assert not survivors
        assert output.is_file()
        assert "interrupted" in output.read_text()
        assert "interrupted" in nbformat.read(output, as_version=4).cells[-1].source
        assert not (root / "_build" / "reprobook-runs.json").exists()  # no record of a cut run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in watched:
            if _alive(pid):
                psutil.Process(pid).kill()
        if proc.stdout:
            proc.stdout.close()


def test_tie_break_rules_meet_the_same_bandits_and_rewards():
    """Tie orders have their own random stream: switching the rule changes nothing else."""
    spec = BanditSpec(n_arms=3, n_features=3)
    hyps = all_hypotheses(spec)
    runs = {
        rule: run_overestimation(spec, hyps, 1.0, [1e-6], 30, seed=4, tie_break=rule, chunk=10)
        for rule in ("index", "random")
    }
    # alpha ~ 0 keeps every theory, so the tie order is irrelevant and the runs must agree exactly
    np.testing.assert_array_equal(runs["index"].frequency, runs["random"].frequency)


def test_resolve_config_profiles_and_checks():
    full = study.resolve_config("full")
    assert full.alphas == study.PAPER_ALPHAS
    assert full.harm_thresholds == study.PAPER_HARM_THRESHOLDS
    assert (full.n_episodes, full.n_seeds, full.beta, full.episode_length) == (10_000, 3, 0.5, 25)
    smoke = study.resolve_config("smoke", n_episodes=50, alphas=None)
    assert smoke.n_episodes == 50 and smoke.alphas == [1e-4, 1e-2, 1.0]
    with pytest.raises(ValueError, match="valid profiles: smoke, full"):
        study.resolve_config("nope")
    with pytest.raises(ValueError, match="alphas must be a non-empty list"):
        study.resolve_config("smoke", alphas=[2.0])
    with pytest.raises(ValueError, match="tie_break must be"):
        study.resolve_config("smoke", tie_break="lowest")
    with pytest.raises(ValueError, match="harm_thresholds must be"):
        study.resolve_config("smoke", harm_thresholds=[0.0])


def test_can_read_refuses_metrics_of_an_older_schema():
    metrics = make_metrics()
    metrics["claims"] = chapter.check_claims(metrics)
    assert report.can_read(chapter, metrics)
    del metrics["metrics_version"]
    assert not report.can_read(chapter, metrics)


def test_report_module_follows_the_protocols():
    assert report.protocol_gaps(chapter, report.ChapterReport) == []
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.CLAIMS)
    assert set(chapter.check_claims(make_metrics())) <= set(chapter.CLAIMS)


def test_key_number_and_prose_numbers_on_the_hand_case():
    metrics = make_metrics()
    assert chapter.key_number(metrics).startswith("τ_true kept in M_α at every step")
    assert "1 of 1 α" in chapter.key_number(metrics)
    numbers = chapter.prose_numbers(metrics)
    assert numbers["n_episodes"] == "1,000" and numbers["n_seeds"] == "2"
    assert numbers["smallest_alpha"] == "1e-05" and numbers["low_c"] == "0.01"
    assert all(isinstance(v, str) and v for v in numbers.values())


# --------------------------------------------------------------------------------------------
# 6. against the official code, the official tie order, degenerate thresholds
# --------------------------------------------------------------------------------------------


def _official(deaths=(0.5, 0.2, 0.2, 0.2, 0.2, 0.3, 0.4), n=1000):
    names = [("none", None), ("cheating", None), ("posterior", None), ("iid", None),
             ("non-iid", 1e-4), ("non-iid", 1e-2), ("non-iid", 1.0)]  # fmt: skip
    rows = [
        {"guardrail": g, "alpha": a, "deaths": d} for (g, a), d in zip(names, deaths, strict=True)
    ]
    return {"commit": "abc1234", "harm_threshold": 0.1, "n_episodes": n, "rows": rows}


def _official_metrics():
    metrics = make_metrics()
    grid = _grid({0.1: 0.2}, alphas=("0.0001", "0.01", "1"))
    grid["C=0.1"]["non-iid"]["0.01"]["deaths_on_last_step"] = 0.1  # 0.3 - 0.1 = 0.2 counted
    metrics.update(guarded=grid, official_code=_official())
    return metrics


def test_official_comparison_counts_deaths_the_official_way():
    metrics = _official_metrics()
    rows = chapter.official_comparison(metrics)
    assert [r["guardrail"] for r in rows][-3:] == [
        "non-i.i.d. α = 0.0001", "non-i.i.d. α = 0.01", "non-i.i.d. α = 1"]  # fmt: skip
    assert rows[0]["here"] == pytest.approx(0.5) and rows[0]["z"] == pytest.approx(0.0)
    assert rows[5]["here"] == pytest.approx(0.2)  # the last-step death is not counted
    # p = 0.3 vs 0.2 on 1000 and 2000 episodes: z = -0.1 / sqrt(.21/1000 + .16/2000)
    assert rows[5]["z"] == pytest.approx(-0.1 / np.sqrt(0.21 / 1000 + 0.16 / 2000))
    assert chapter.official_table(metrics).shape == (7, 3)
    claims = chapter.check_claims(metrics)
    assert claims["matches_official_code"] is False
    metrics["official_code"]["rows"][5]["deaths"] = 0.2
    assert chapter.check_claims(metrics)["matches_official_code"] is True


def test_official_rows_must_come_in_order():
    metrics = _official_metrics()
    metrics["official_code"]["rows"].reverse()
    with pytest.raises(ValueError, match="out of order"):
        chapter.official_comparison(metrics)


def test_tie_break_note_lists_every_other_rule():
    metrics = make_metrics()
    one = metrics["guarded_other_ties"]
    metrics["guarded_other_ties"] = [one, {**one, "tie_break": "official"}]
    note = chapter.tie_break_note(metrics)
    assert "Against index tie-breaking" in note and "Against official tie-breaking" in note
    assert chapter.prose_numbers(metrics)["other_ties_rule"] == "index and official"


@pytest.mark.usefixtures("close_figures")
def test_plot_tie_break_takes_several_rules_and_marks_degenerate_thresholds():
    metrics = make_metrics()
    other = metrics["guarded_other_ties"]["grid"]
    fig = plots.plot_tie_break(metrics["guarded"], [other, other], ["a", "b", "c"])
    assert len(fig.axes[0].get_legend_handles_labels()[1]) == 3
    with pytest.raises(ValueError, match="one label per grid"):
        plots.plot_tie_break(metrics["guarded"], [other], ["a"])
    grid = metrics["guarded"]
    for cell in (grid["C=0.01"]["posterior"], grid["C=0.01"]["iid"],
                 *grid["C=0.01"]["non-iid"].values()):  # fmt: skip
        cell["stopped"] = 0.99
    fig = plots.plot_guardrail_grid(grid, [0.01, 0.1], [0.001, 1.0])
    assert "degenerate" in fig.axes[0].get_title() and "degenerate" not in fig.axes[1].get_title()
    # one loose alpha refusing less (the committed full run: 0.90 beside 0.95-0.99) keeps the note
    next(iter(grid["C=0.01"]["non-iid"].values()))["stopped"] = 0.5
    fig = plots.plot_guardrail_grid(grid, [0.01, 0.1], [0.001, 1.0])
    assert "degenerate" in fig.axes[0].get_title()


def test_the_committed_official_runs_name_their_commit_and_rows():
    official = chapter.load_official_code("ch10-bayesian-oracle")
    assert official["commit"] == "7ab10e0"
    assert official["harm_threshold"] == 0.1 and official["n_episodes"] >= 1000
    names = [(r["guardrail"], r["alpha"]) for r in official["rows"]]
    assert names == list(chapter.OFFICIAL_ROWS)
    assert all(0 <= r["deaths"] <= r["explosions_any_step"] <= 1 for r in official["rows"])
