"""Tests of chapter 5's library: the four objectives (reprobook.gfn.objectives), the length split,
offline training and exact metrics (reprobook.gfn.length), and the chapter's study, report and
figures (reprobook.gfn.generalization).

Hand cases for the metrics and the split; training runs on a 2-D grid of height 5 with a 16-unit
MLP for 20 iterations, on one torch thread. Claims and tables are tested on hand-made metrics.
"""

import copy
import itertools
import math
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from gfn.samplers import Sampler
from matplotlib.text import Text

from reprobook import anchors, plotting, report
from reprobook.gfn import exact, length, objectives
from reprobook.gfn.generalization import plots, study
from reprobook.gfn.generalization import report as chapter

matplotlib.use("Agg")
CHAPTER = "ch05-gflownet-generalization"


# --- the split and the metrics ----------------------------------------------------------------


def test_seen_mask_by_hand():
    seen = length.seen_mask(2, 5, 3)
    assert seen.reshape(5, 5)[0].tolist() == [True, True, True, True, False]
    assert seen.sum() == 10  # ||x||_1 <= 3 on a 5 x 5 grid: 1 + 2 + 3 + 4
    for bad in (0, 8):
        with pytest.raises(ValueError, match="max_length"):
            length.seen_mask(2, 5, bad)


def test_jsd_by_hand():
    assert length.jsd([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2))
    assert length.jsd([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_metrics_of_the_exact_target_are_zero():
    env = length.make_grid(2, 5)
    log_r = length.grid_log_reward(env)
    target = np.exp(log_r) / np.exp(log_r).sum()
    seen = length.seen_mask(2, 5, 4)
    m = length.generalisation_metrics(
        target, float(np.log(np.exp(log_r).sum())), log_r, seen, exact.levels(2, 5)
    )
    for key in ("l1_unseen", "jsd_unseen", "l1_full", "log_reward_rmse_unseen"):
        assert m[key] == pytest.approx(0.0, abs=1e-12), key
    assert m["mass_unseen_model"] == pytest.approx(m["mass_unseen_target"])
    assert m["total_mass"] == pytest.approx(1.0)
    assert m["lengths"] == list(range(9))


def test_metrics_of_a_shifted_log_z():
    """A model right up to its partition estimate: every log-reward is off by the same shift."""
    env = length.make_grid(2, 5)
    log_r = length.grid_log_reward(env)
    target = np.exp(log_r) / np.exp(log_r).sum()
    shift = 0.3
    m = length.generalisation_metrics(
        target, float(np.log(np.exp(log_r).sum())) + shift, log_r, length.seen_mask(2, 5, 4),
        exact.levels(2, 5),
    )  # fmt: skip
    assert m["log_reward_rmse_seen"] == pytest.approx(shift)
    assert m["log_reward_rmse_unseen"] == pytest.approx(shift)
    assert m["calibrated_rmse_unseen"] == pytest.approx(0.0, abs=1e-12)  # free of the shift
    assert m["l1_unseen"] == pytest.approx(0.0, abs=1e-12)


def test_calibrated_error_by_hand():
    """Four states on a 1-D grid, seen = {0, 1}; the model halves the unseen mass."""
    log_r = np.log([1.0, 1.0, 1.0, 1.0])
    p_model = np.array([0.3, 0.3, 0.2, 0.2])  # seen mass 0.6: Z_cal = 2 / 0.6
    seen = np.array([True, True, False, False])
    m = length.generalisation_metrics(p_model, 0.0, log_r, seen, np.arange(4))
    assert m["calibrated_rmse_unseen"] == pytest.approx(abs(math.log(0.2 * 2 / 0.6)))
    assert m["mass_unseen_model"] == pytest.approx(0.4)
    assert m["mass_unseen_target"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="boolean mask"):
        length.generalisation_metrics(p_model, 0.0, log_r, seen.astype(int), np.arange(4))
    with pytest.raises(ValueError, match="both seen and unseen"):
        length.generalisation_metrics(p_model, 0.0, log_r, np.ones(4, bool), np.arange(4))
    with pytest.raises(ValueError, match="p_model"):
        length.generalisation_metrics(p_model[:3], 0.0, log_r, seen, np.arange(4))


def test_make_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="height"):
        length.make_grid(2, 3)
    with pytest.raises(ValueError, match="R0"):
        length.make_grid(2, 8, R0=0.0)
    with pytest.raises(ValueError, match="ndim"):
        length.make_grid(0, 8)


# --- objectives and training ------------------------------------------------------------------


def test_backward_trajectories_end_where_asked():
    torch.manual_seed(0)
    env = length.make_grid(2, 5)
    gflownet = objectives.build_gflownet("tb", env, hidden_dim=8)
    ends = torch.tensor([[3, 1], [0, 0], [4, 4]])
    trajectories = length.backward_trajectories(env, Sampler(gflownet.pb), ends)
    assert torch.equal(trajectories.terminating_states.tensor, ends)
    assert trajectories.states.tensor[0].eq(0).all()  # every one starts at s0


@pytest.mark.parametrize("loss", objectives.LOSSES)
def test_every_objective_trains_and_is_measured_exactly(loss):
    settings = length.OfflineSettings(n_iterations=20, hidden_dim=16, record_every=5)
    run = length.run_split(loss, 2, 5, 4, settings, seed=0, keep_terminal=True, progress=False)
    assert len(run.loss_history) == 4 and all(np.isfinite(run.loss_history))
    assert sum(run.terminal) == pytest.approx(1.0)
    assert run.metrics["total_mass"] == pytest.approx(1.0)
    assert run.summary()["loss"] == loss


class _Table(torch.nn.Module):
    """A lookup table on the grid: the row of the state a K-hot input encodes."""

    def __init__(self, values: np.ndarray, ndim: int, height: int) -> None:
        super().__init__()
        self.values = torch.as_tensor(values, dtype=torch.float32)
        self.shape, self.strides = (ndim, height), torch.as_tensor(exact.strides(ndim, height))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = x.reshape(*x.shape[:-1], *self.shape).argmax(-1)
        return self.values[(coords * self.strides).sum(-1)]


@pytest.mark.parametrize("loss", objectives.LOSSES)
def test_every_objective_vanishes_at_the_exact_optimum(loss):
    """With the DP's optimal policy, flows and Z written into the networks, every torchgfn loss
    is zero on backward trajectories, and ``log_partition`` returns log Z: the objectives,
    their flows' conventions (FL-DB's F = F~ R) and our exact DP agree."""
    torch.manual_seed(0)
    ndim, height = 2, 5
    env = length.make_grid(ndim, height)
    log_r = length.grid_log_reward(env)
    policy = exact.optimal_policy(np.exp(log_r), ndim, height)
    log_flow = np.log(exact.optimal_flows(np.exp(log_r), ndim, height))
    gflownet = objectives.build_gflownet(loss, env, hidden_dim=8)
    gflownet.pf.module = _Table(np.log(np.maximum(policy, 1e-30)), ndim, height)
    if loss == "tb":
        gflownet.logZ.data.fill_(float(log_flow[0]))
    else:
        flow = log_flow - log_r if loss == "fldb" else log_flow
        gflownet.logF.module = _Table(flow[:, None], ndim, height)
    seen = np.ones(height**ndim, dtype=bool)
    picks = torch.multinomial(torch.as_tensor(np.where(seen, np.exp(log_r), 0)), 64, True)
    ends = torch.as_tensor(exact.grid_coordinates(ndim, height))[picks]
    trajectories = length.backward_trajectories(env, Sampler(gflownet.pb), ends)
    assert float(objectives.loss_value(gflownet, env, trajectories).detach()) < 1e-9
    assert objectives.log_partition(gflownet, env) == pytest.approx(log_flow[0], abs=1e-5)


def test_objectives_are_torchgfn_s():
    env = length.make_grid(2, 5)
    fldb = objectives.build_gflownet("fldb", env, hidden_dim=8)
    assert fldb.forward_looking and not objectives.build_gflownet("db", env, 8).forward_looking
    with pytest.raises(ValueError, match="valid losses"):
        objectives.build_gflownet("fm", env)


def test_log_partition_conventions():
    torch.manual_seed(0)
    env = length.make_grid(2, 5)
    s0 = env.States(env.s0.unsqueeze(0))
    tb = objectives.build_gflownet("tb", env, hidden_dim=8)
    assert objectives.log_partition(tb, env) == 0.0  # log Z starts at 0
    db = objectives.build_gflownet("db", env, hidden_dim=8)
    assert objectives.log_partition(db, env) == pytest.approx(float(db.logF(s0).detach()))
    fldb = objectives.build_gflownet("fldb", env, hidden_dim=8)
    expected = float(fldb.logF(s0).detach()) + float(env.log_reward(s0))
    assert objectives.log_partition(fldb, env) == pytest.approx(expected)


def test_optimizer_puts_only_tb_log_z_on_its_rate():
    env = length.make_grid(2, 5)
    tb = objectives.optimizer(objectives.build_gflownet("tb", env, 8), 1e-3, 1e-1)
    assert [g["lr"] for g in tb.param_groups] == [1e-3, 1e-1]
    db = objectives.optimizer(objectives.build_gflownet("db", env, 8), 1e-3, 1e-1)
    assert [g["lr"] for g in db.param_groups] == [1e-3, 1e-3]


def test_offline_settings_reject_bad_values():
    with pytest.raises(ValueError, match="n_iterations"):
        length.OfflineSettings(n_iterations=0)
    with pytest.raises(ValueError, match="learning rates"):
        length.OfflineSettings(n_iterations=5, lr=0.0)


# --- the chapter's study, claims and tables ---------------------------------------------------


def test_protocols():
    assert not report.protocol_gaps(chapter, report.ChapterReport)
    assert not report.protocol_gaps(study, report.ChapterStudy)


def test_config_checks():
    with pytest.raises(ValueError, match="valid profiles"):
        study.resolve_config("nope")
    with pytest.raises(ValueError, match="splits must be"):
        study.resolve_config("smoke", splits=[[2, 8, 14]])
    with pytest.raises(ValueError, match="losses must be"):
        study.resolve_config("smoke", losses=["tb", "tb"])
    with pytest.raises(ValueError, match="stability_grid must be"):
        study.resolve_config("smoke", stability_grid=[2, 9, 5])
    assert study.resolve_config("full").losses == list(objectives.LOSSES)


@pytest.fixture(scope="module")
def tiny_metrics() -> dict:
    config = study.resolve_config(
        "smoke", splits=[[2, 5, 4]], losses=list(objectives.LOSSES), n_seeds=2, n_iterations=50,
        hidden_dim=16, stability_eps=[0.0, 0.5, 2.0],
    )  # fmt: skip
    metrics = study.run_all(config, [0, 1], progress=False)
    metrics["claims"] = chapter.check_claims(metrics)
    return metrics


def test_study_layout_and_claims(tiny_metrics):
    m = tiny_metrics
    assert report.can_read(chapter, m)
    split = m["splits"][0]
    assert split["n_seen"] + split["n_unseen"] == split["n_states"] == 25
    assert set(split["by_length"]) == set(objectives.LOSSES)
    assert len(split["runs"]["tb"]) == 2 and split["runs"]["tb"][0]["terminal"] is not None
    assert split["runs"]["tb"][1]["terminal"] is None  # maps keep the first seed only
    claims = m["claims"]
    for name in ("exact_mass", "paths_match_terminal", "stability_under_bound"):
        assert claims[name], name
    assert not set(chapter.HEADLINE_CLAIMS) & {"stability_under_bound", "exact_mass"}
    assert set(chapter.COMPARISONS) <= set(claims)


def _with_unseen_errors(metrics: dict, errors: dict[str, list[float]]) -> dict:
    m = copy.deepcopy(metrics)
    for loss, values in errors.items():
        for run, value in zip(m["splits"][0]["runs"][loss], values, strict=True):
            run["metrics"][chapter.HEADLINE_METRIC] = value
    return m


def test_ranking_claims_need_a_consistent_difference(tiny_metrics):
    clear = _with_unseen_errors(
        tiny_metrics, {"tb": [1.0, 1.1], "db": [0.8, 0.85], "fldb": [0.5, 0.52], "subtb": [1, 1]}
    )
    claims = chapter.check_claims(clear)
    assert claims["db_beats_tb"] and claims["fldb_beats_db"]
    noisy = _with_unseen_errors(
        tiny_metrics, {"tb": [1.0, 1.0], "db": [0.5, 1.4], "fldb": [0.5, 0.52], "subtb": [1, 1]}
    )
    assert not chapter.check_claims(noisy)["db_beats_tb"]  # lower on average, not consistently
    reversed_ = _with_unseen_errors(
        tiny_metrics, {"tb": [0.5, 0.52], "db": [0.8, 0.85], "fldb": [0.5, 0.52], "subtb": [1, 1]}
    )
    assert not chapter.check_claims(reversed_)["db_beats_tb"]


def test_a_ranking_must_hold_in_every_split(tiny_metrics):
    """Pooled over two splits the difference is clear, but the second split goes the other way."""
    m = _with_unseen_errors(
        tiny_metrics, {"tb": [1.0, 1.1], "db": [0.5, 0.55], "fldb": [0.4, 0.42], "subtb": [1, 1]}
    )
    extra = copy.deepcopy(m["splits"][0])
    for loss, values in {"tb": [0.2, 0.21], "db": [0.3, 0.32]}.items():
        for run, value in zip(extra["runs"][loss], values, strict=True):
            run["metrics"][chapter.HEADLINE_METRIC] = value
    assert chapter.check_claims(m)["db_beats_tb"]
    m["splits"] = [m["splits"][0], copy.deepcopy(m["splits"][0]), extra]
    assert chapter.split_differences(m, chapter.HEADLINE_METRIC, "db", "tb")[2] > 0
    assert not chapter.check_claims(m)["db_beats_tb"]


def test_one_sided_p_and_its_text():
    lower = report.paired([0.1, 0.2, 0.15], [0.3, 0.35, 0.4])
    assert chapter.one_sided_p(lower) == pytest.approx(lower.p / 2)
    higher = report.paired([0.3, 0.35, 0.4], [0.1, 0.2, 0.15])
    assert chapter.one_sided_p(higher) == pytest.approx(1 - higher.p / 2)
    assert "one-sided" in chapter.paired_text(lower) and "lower in 3 of 3" in chapter.paired_text(
        lower
    )


def test_a_point_above_the_bound_fails_the_claim(tiny_metrics):
    m = copy.deepcopy(tiny_metrics)
    m["stability"]["random_signs"]["tv_trajectories"][-1] = m["stability"]["bound"][-1] + 1e-6
    assert not chapter.check_claims(m)["stability_under_bound"]


def test_tables_findings_and_numbers(tiny_metrics):
    table = chapter.results_table(tiny_metrics)
    assert len(table) == len(objectives.LOSSES)
    comparisons = chapter.comparisons_table(tiny_metrics)
    assert len(comparisons) == len(chapter.COMPARISONS)
    findings = chapter.miniature_findings(tiny_metrics)
    assert set(findings) <= set(anchors.load_anchors(CHAPTER))
    assert chapter.KEY_ANCHOR in findings
    numbers = chapter.prose_numbers(tiny_metrics)
    assert numbers["n_pairs"] == "2" and "TB" in numbers["ranking_unseen"]
    assert "log-reward" in chapter.key_number(tiny_metrics)


def test_prose_numbers_without_the_dl_objectives(tiny_metrics):
    m = copy.deepcopy(tiny_metrics)
    m["losses"] = ["tb", "db"]
    for split in m["splits"]:
        split["runs"] = {k: split["runs"][k] for k in m["losses"]}
    claims = chapter.check_claims(m)
    assert "fldb_beats_db" not in claims and "db_beats_tb" in claims
    assert chapter.prose_numbers(m)["diff_fldb_beats_db"] == "not run in this profile"


def test_figures_draw(tiny_metrics):
    for draw in (plots.plot_split_maps, plots.plot_error_by_length, plots.plot_stability,
                 plots.plot_training_loss):  # fmt: skip
        fig = draw(tiny_metrics)
        assert fig.axes
        plt.close(fig)


# --- what the page shows ----------------------------------------------------------------------

IDENTIFIER = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")  # a snake_case name, e.g. db_beats_tb


def _figures(metrics: dict) -> dict[str, plt.Figure]:
    draws = (plots.plot_split_maps, plots.plot_error_by_length, plots.plot_stability,
             plots.plot_training_loss)  # fmt: skip
    return {draw.__name__: draw(metrics) for draw in draws}


def test_claim_descriptions_are_unique_and_say_what_differs():
    described = list(chapter.CLAIMS.values())
    assert len(set(described)) == len(described)
    assert "seen-calibrated" in chapter.CLAIMS["db_beats_tb"]
    for name in ("fldb_beats_db_own_z", "db_beats_tb_own_z"):
        assert "own partition estimate" in chapter.CLAIMS[name], name
    assert chapter.CLAIMS["db_beats_tb_own_z"].startswith("DB ")
    assert chapter.CLAIMS["fldb_beats_db_own_z"].startswith("FL-DB ")
    assert not any("P_B" in text or "P_T" in text for text in described)


def test_findings_and_key_number_are_in_words(tiny_metrics):
    findings = chapter.miniature_findings(tiny_metrics)
    for key, text in findings.items():
        assert not IDENTIFIER.search(text), f"{key}: {IDENTIFIER.search(text).group()!r}"
    assert "FL-DB below DB: " in findings["main_claim"]
    assert "DB below TB: " in findings["main_claim"]
    assert "lower is better" in findings["main_claim"]
    key = chapter.key_number(tiny_metrics)
    assert "lower is better" in key and not IDENTIFIER.search(key)


@pytest.mark.parametrize(("n_seeds", "words"), [(1, "1 seed"), (3, "3 seeds")])
def test_seed_counts_read_as_english(tiny_metrics, n_seeds, words):
    assert report.plural(n_seeds, "seed") == words
    m = dict(tiny_metrics, n_seeds=n_seeds)
    fig = plots.plot_error_by_length(m)
    title = fig.get_suptitle()
    plt.close(fig)
    assert title.endswith(f"({words})") and "seed(s)" not in title
    environments = chapter.miniature_findings(m)["environments"]
    assert environments.endswith(f", {words}") and "seed(s)" not in environments


def test_figure_text_has_no_raw_underscores(tiny_metrics):
    """Subscripts such as P_T are mathtext ($P_T$), never a bare underscore."""
    texts = {}
    for name, fig in _figures(tiny_metrics).items():
        texts[name] = [t.get_text() for t in fig.findobj(Text)]
        plt.close(fig)
    for name, found in texts.items():
        for text in found:
            assert "_" not in re.sub(r"\$[^$]*\$", "", text), f"{name}: {text!r}"
    assert any("(exact $P_T$)" in t for t in texts["plot_split_maps"])
    assert any("uniform $P_B$" in t for t in texts["plot_stability"])


def test_objectives_have_distinct_colours_in_every_figure(tiny_metrics):
    palette = plots.loss_colors()
    assert list(palette) == list(objectives.LOSSES)
    book = plotting.colors(10)
    assert all(colour in book for colour in palette.values())
    for a, b in itertools.combinations(palette, 2):  # DB and SubTB were 0.19 apart
        assert np.linalg.norm(np.subtract(palette[a], palette[b])) > 0.25, (a, b)
    by_label = {tiny_metrics["labels"][loss]: colour for loss, colour in palette.items()}
    for draw in (plots.plot_error_by_length, plots.plot_training_loss):
        fig = draw(tiny_metrics)
        lines = [line for ax in fig.axes for line in ax.get_lines()]
        drawn = [line for line in lines if line.get_label() in by_label]
        plt.close(fig)
        assert len(drawn) == len(objectives.LOSSES)
        for line in drawn:
            rgb = matplotlib.colors.to_rgb(line.get_color())
            assert np.allclose(rgb, by_label[line.get_label()]), (draw.__name__, line.get_label())
