"""Unit tests of reprobook.cells: the network simulator, the perturbation models, the metrics and
the representation study; and chapter 9's study and report on a tiny configuration."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from reprobook import anchors, prose, report
from reprobook.cells import grn, metrics, perturbation
from reprobook.cells.virtual import plots, study
from reprobook.cells.virtual import report as chapter

matplotlib.use("Agg")
CHAPTER = "ch09-virtual-cell"


def _net(seed: int = 0) -> grn.Network:
    return grn.random_network(40, 10, 3, np.random.default_rng(seed), contraction=0.9)


# --- the simulator ------------------------------------------------------------------------------


def test_network_is_a_contraction_on_regulators_only():
    net = _net()
    assert np.abs(net.W).sum(axis=1).max() == pytest.approx(0.9)
    assert not net.W[:, 10:].any() and not np.diag(net.W).any()
    with pytest.raises(ValueError, match="in_degree"):
        grn.random_network(10, 3, 3, np.random.default_rng(0))


def test_linear_network_adds_singles_exactly():
    net = _net()
    u = np.zeros((4, 40))
    u[1, 2] = u[3, 2] = 3.0
    u[2, 5] = u[3, 5] = 3.0
    y = grn.steady_state(net, u, saturation=0.0)
    assert np.allclose(y[3] - y[0], (y[1] - y[0]) + (y[2] - y[0]), atol=1e-8)
    # and it is the fixed point: y = b + u + W (y - b)
    assert np.allclose(y, net.b + u + (y - net.b) @ net.W.T, atol=1e-8)


def test_epistasis_knob_damps_doubles_and_leaves_singles():
    net = _net()
    design = [(1,), (2,), (1, 2)]
    y = grn.steady_state(net, np.array([[0] * 40, *[[3.0 if g in p else 0 for g in range(40)]
                                                      for p in design]]), 0.0)  # fmt: skip
    damped = grn.buffer_doubles(y, design, 1.0)
    assert np.allclose(damped[:3], y[:3])
    d, d_damped = y[3] - y[0], damped[3] - y[0]
    keep = np.ones(40, dtype=bool)
    keep[[1, 2]] = False
    assert np.linalg.norm(d_damped[keep]) < np.linalg.norm(d[keep])
    assert np.allclose(d_damped[[1, 2]], d[[1, 2]])  # the activated genes themselves are kept
    with pytest.raises(ValueError, match="epsilon"):
        grn.buffer_doubles(y, design, 1.5)


def test_screen_interaction_share_grows_with_the_knob():
    net = _net()
    design = grn.design(net, 8, 10, np.random.default_rng(1))
    shares = [grn.interaction_share(grn.simulate_screen(net, design, e, 5,
                                                        np.random.default_rng(2), saturation=0.0))
              for e in (0.0, 0.5, 1.0)]  # fmt: skip
    assert shares[0] < 1e-12 < shares[1] < shares[2]


def test_sampled_cells_are_log_normalised():
    cells = grn.sample_cells(np.zeros(20), 30, np.random.default_rng(0))
    assert cells.shape == (30, 20) and (cells >= 0).all()
    assert np.allclose(np.expm1(cells).sum(axis=1), 1e4)


# --- metrics and models -------------------------------------------------------------------------


def test_metrics_by_hand():
    control = np.array([3.0, 1.0, 2.0, 0.0])
    assert metrics.top_genes(control, 2).tolist() == [0, 2]
    mask = metrics.scored_genes([(3,)], np.arange(4), 4)
    assert mask.tolist() == [[True, True, True, False]]  # the activated gene is not scored
    pred, truth = np.array([[1.0, 1.0, 1.0, 9.0]]), np.array([[1.0, 4.0, 5.0, 0.0]])
    assert metrics.l2_error(pred, truth, mask)[0] == pytest.approx(5.0)
    r = metrics.pearson_delta(np.array([[4.0, 2.0, 4.0, 7.0]]),
                              np.array([[5.0, 3.0, 5.0, -7.0]]), control, mask)  # fmt: skip
    assert r[0] == pytest.approx(1.0)
    assert metrics.pearson_delta(control[None], truth, control, mask)[0] == 0.0  # no change
    assert metrics.interaction_auc(np.array([0.1, 0.9, 0.2]), np.array([0, 1, 0])) == 1.0
    assert metrics.interaction_auc(np.zeros(3), np.array([0, 1, 0])) == 0.5


@pytest.fixture(scope="module")
def small_screen():
    net = _net()
    rng = np.random.default_rng(3)
    design = grn.design(net, 8, 12, rng)
    screen = grn.simulate_screen(net, design, 0.0, 20, rng, saturation=0.0)
    return net, screen


def test_additive_and_baselines_by_definition(small_screen):
    net, screen = small_screen
    train, test = screen.singles + screen.doubles[:6], screen.doubles[6:]
    graph = perturbation.prior_graph(net, np.random.default_rng(0))
    settings = perturbation.TrainSettings(epochs=5)
    idx = screen.index()
    add = perturbation.predict("additive", screen, graph, train, test, settings, 0)
    a, b = test[0]
    expected = screen.profiles[idx[(a,)]] + screen.profiles[idx[(b,)]] - screen.control
    assert np.allclose(add[0], expected)
    assert np.allclose(perturbation.predict("no_change", screen, graph, train, test, settings,
                                            0), screen.control)  # fmt: skip
    for model in perturbation.MODELS:
        pred = perturbation.predict(model, screen, graph, train, test, settings, 0)
        assert pred.shape == (len(test), 40) and np.isfinite(pred).all()
    with pytest.raises(ValueError, match="also in the training"):
        perturbation.predict("mlp", screen, graph, train, train[:2], settings, 0)
    with pytest.raises(ValueError, match="model must be"):
        perturbation.predict("gears", screen, graph, train, test, settings, 0)


def test_linear_model_recovers_a_low_rank_map():
    rng = np.random.default_rng(0)
    n_genes, rank = 12, 2
    G = rng.standard_normal((n_genes, rank))
    G -= G.mean(axis=0)  # so every gene's mean effect is 0 and the model's offset b vanishes
    train = [(i,) for i in range(n_genes)]
    effects = np.stack([G @ (G[i] * 0.5) for i in range(n_genes)])  # Y = G W Gᵀ, W = I / 2
    pred = perturbation.linear_model(effects, train, [(0, 1)], dim=rank, ridge=1e-9)
    assert np.allclose(pred[0], effects[0] + effects[1], atol=1e-6)


def test_prior_graph_keeps_edges_and_normalises_rows():
    net = _net()
    A = perturbation.prior_graph(net, np.random.default_rng(0), keep=1.0)
    true = (net.W != 0) | (net.W.T != 0)
    assert ((A > 0) == true).all()
    assert np.allclose(A.sum(axis=1)[A.sum(axis=1) > 0], 1.0)


# --- the chapter on a tiny configuration --------------------------------------------------------

TINY = dict(n_genes=40, n_regulators=12, in_degree=3, n_singles=10, n_doubles=12, n_cells=10,
            epsilons=[0.0, 0.5], train_fractions=[0.5, 1.0], n_splits=2, n_seeds=2, epochs=10,
            ae_epochs=5)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_metrics():
    config = study.resolve_config("smoke", **TINY)
    m = study.run_all(config, [0, 1], progress=False)
    m["claims"] = chapter.check_claims(m)
    return m


def test_tiny_study_tables_figures_and_prose(tiny_metrics):
    m = tiny_metrics
    assert len(m["rows"]) == 2 * (2 * 2 + 2)  # seeds x (lowest ε: 2 fractions; other: 1) x splits
    assert all("replicate" in r["models"] for r in m["rows"])
    assert m["claims"]["sanity"] and m["claims"]["knob_works"]
    assert set(chapter.COMPARISONS) <= set(m["claims"]) and report.can_read(chapter, m)
    assert len(chapter.results_table(m)) == 2 * (len(perturbation.MODELS) + 1)  # + noise floor
    assert len(chapter.comparisons_table(m)) == 2 * len(chapter.COMPARISONS)
    for fig in (plots.plot_capability_map(), plots.plot_representation(m), plots.plot_curves(m),
                plots.plot_data_size(m)):  # fmt: skip
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    numbers = chapter.prose_numbers(m)
    text = (Path(__file__).parents[1] / "notebooks" / f"{CHAPTER}.md").read_text()
    glued = prose.glued_names(text)
    assert glued <= set(numbers), glued - set(numbers)
    assert set(chapter.miniature_findings(m)) == set(anchors.load_anchors(CHAPTER))
    assert 0 <= m["representation"]["majority"] <= 1


def test_a_comparison_needs_every_network(tiny_metrics):
    m = copy.deepcopy(tiny_metrics)
    for r in chapter.rows_at(m, 0.0):
        r["models"]["additive"]["l2"] = 1.0
        r["models"]["mlp"]["l2"] = 2.0 if r["seed"] == 0 else 1.95
    assert chapter.check_claims(m)["additive_beats_mlp"]  # +1.0 and +0.95: lower in both
    for r in chapter.rows_at(m, 0.0):
        if r["seed"] == 1:
            r["models"]["mlp"]["l2"] = 0.5
    assert not chapter.check_claims(m)["additive_beats_mlp"]
    # Pearson-Δ is higher-is-better: the sign flips
    for r in chapter.rows_at(m, 0.0):
        r["models"]["additive"]["pearson_delta"] = 0.9
        r["models"]["mlp"]["pearson_delta"] = 0.5 if r["seed"] == 0 else 0.52
    assert chapter.check_claims(m)["additive_beats_mlp_pearson"]
    for r in chapter.rows_at(m, 0.0):
        r["models"]["mlp"]["l2"] = math.nan
    assert not chapter.check_claims(m)["sanity"]


def test_config_checks():
    with pytest.raises(ValueError, match="n_singles"):
        study.resolve_config("smoke", n_singles=60)
    with pytest.raises(ValueError, match="epsilons"):
        study.resolve_config("smoke", epsilons=[0.5, 0.0])
    with pytest.raises(ValueError, match="train_fractions"):
        study.resolve_config("smoke", train_fractions=[0.5])
