"""Unit tests of reprobook.flows: letters and patients data, distances, networks, matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reprobook.flows import distances, letters, matching, networks, patients
from reprobook.flows.populations import Population

# --- data ---------------------------------------------------------------------------------------


def test_letter_pixels_are_centred_and_scaled():
    pts = letters.letter_pixels("A")
    assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) > 500
    assert np.abs(pts).max() <= 1.0
    assert np.allclose((pts.max(0) + pts.min(0)) / 2, 0, atol=1e-9)


@pytest.mark.parametrize("bad", ["a", "AB", "1", ""])
def test_letter_pixels_rejects_what_is_not_a_capital(bad):
    with pytest.raises(ValueError, match="A-Z"):
        letters.letter_pixels(bad)


def test_letter_population_pairs_source_and_target():
    rng = np.random.default_rng(0)
    pop = letters.letter_population("L", 90.0, 400, rng)
    assert pop.x0.shape == pop.x1.shape == (400, 2) and pop.name == "L@90"
    noise = pop.x0 - pop.x1
    assert abs(noise.std() - 0.5) < 0.05  # source = target + 0.5 N(0, I)
    assert np.abs(pop.x1).max() < letters.SCALE * math.sqrt(2) + 0.3
    # rotating by 90 degrees swaps the letter's extent in x and y
    upright = letters.letter_population("L", 0.0, 400, np.random.default_rng(0))
    assert np.allclose(np.ptp(pop.x1, 0)[::-1], np.ptp(upright.x1, 0), rtol=0.1)


def test_rotate_is_anticlockwise():
    assert np.allclose(letters.rotate(np.array([[1.0, 0.0]]), 90), [[0.0, 1.0]], atol=1e-12)


def test_letters_split_holds_out_whole_letters():
    split = letters.letters_split("ABC", "X", "Y", 2, 50, seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert {p.name[0] for p in split["test"]} == {"Y"}
    with pytest.raises(ValueError, match="must not be trained on"):
        letters.letters_split("ABY", "X", "Y", 2, 50, seed=0)
    with pytest.raises(ValueError, match="n_rotations"):
        letters.letters_split("AB", "X", "Y", 0, 50, seed=0)


def test_population_checks_pairing_and_defaults_its_source():
    pop = Population(np.zeros((3, 2)), np.ones((3, 2)), "p")
    assert pop.source == "p"
    with pytest.raises(ValueError, match="paired"):
        Population(np.zeros((3, 2)), np.ones((4, 2)), "p")


def test_patients_split_shares_controls_and_keys_cgfm_by_patient():
    split = patients.patients_split(3, 2, 2, 40, seed=1)
    assert [len(split[k]) for k in ("train", "replicates", "test")] == [6, 6, 4]
    t0, t1 = split["train"][0], split["train"][1]
    assert np.array_equal(t0.x0, t1.x0) and (t0.treatment, t1.treatment) == (0, 1)
    rep = split["replicates"][0]
    assert rep.source == t0.source == "P0" and not np.array_equal(rep.x0, t0.x0)
    assert {p.source for p in split["test"]} == {"P3", "P4"}


def test_patients_response_depends_on_the_population():
    rng = np.random.default_rng(0)
    x0, types = patients.control_population(np.array([1 / 3, 1 / 3, 1 / 3]), 50, rng)
    a = patients.respond(x0, types, np.array([0.8, 0.1, 0.1]), 0, 2, np.random.default_rng(1))
    b = patients.respond(x0, types, np.array([0.1, 0.1, 0.8]), 0, 2, np.random.default_rng(1))
    assert np.abs(a - b).mean() > 0.3  # same cells, same treatment, other neighbours
    even = patients.respond(x0, types, np.full(3, 1 / 3), 0, 2, np.random.default_rng(1))
    assert np.abs(even - x0).std() < 3 * patients.RESPONSE_NOISE  # balanced: noise only
    with pytest.raises(ValueError, match="treatment"):
        patients.respond(x0, types, np.full(3, 1 / 3), 2, 2, rng)


# --- distances ----------------------------------------------------------------------------------


def test_wasserstein_hand_cases():
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = x + np.array([0.0, 2.0])
    assert distances.wasserstein(x, y, 1) == pytest.approx(2.0)
    assert distances.wasserstein(x, y, 2) == pytest.approx(2.0)  # sqrt of the cost 4
    # the optimal plan crosses nothing: points 0 and 3 on a line against 1 and 2
    a, b = np.array([[0.0], [3.0]]), np.array([[1.0], [2.0]])
    assert distances.wasserstein(a, b, 1) == pytest.approx(1.0)
    assert distances.wasserstein(a, b, 2) == pytest.approx(1.0)
    c = np.array([[0.0], [4.0]])  # W1 = (1 + 1) / 2, W2 = sqrt((1 + 4) / 2)
    assert distances.wasserstein(np.array([[1.0], [2.0]]), c, 2) == pytest.approx(math.sqrt(2.5))


def test_mmd_hand_case_and_zero_on_identical_sets():
    x, y = np.array([[0.0]]), np.array([[1.0]])
    expected = np.mean([2 - 2 * math.exp(-g) for g in distances.GAMMAS])
    assert distances.mmd_rbf(x, y) == pytest.approx(expected)
    pts = np.random.default_rng(0).standard_normal((20, 2))
    assert distances.mmd_rbf(pts, pts) == pytest.approx(0.0, abs=1e-12)


def test_distances_reject_bad_input():
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        distances.wasserstein(np.zeros((2, 2)), np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="non-empty"):
        distances.mmd_rbf(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        distances.wasserstein(np.array([[np.nan, 0.0]]), np.zeros((1, 2)), 1)
    with pytest.raises(ValueError, match="gammas"):
        distances.mmd_rbf(np.zeros((2, 2)), np.zeros((2, 2)), gammas=[0.0])


def test_average_distances_averages_per_population():
    a = (np.zeros((2, 1)), np.ones((2, 1)))  # W1 = 1
    b = (np.zeros((2, 1)), 3 * np.ones((2, 1)))  # W1 = 3
    assert distances.average_distances([a, b])["w1"] == pytest.approx(2.0)


# --- networks -----------------------------------------------------------------------------------


def test_knn_indices_on_a_line():
    pts = torch.tensor([[[0.0], [1.0], [3.0], [6.0]]])
    nb = networks.knn_indices(pts, 2)
    assert nb[0, 0].tolist() == [1, 2] and sorted(nb[0, 3].tolist()) == [1, 2]
    with pytest.raises(ValueError, match="k must be"):
        networks.knn_indices(pts, 4)


def test_knn_gcn_layer_equals_torch_geometric_gcnconv():
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    x = torch.randn(3, 25, 2)
    nb = networks.knn_indices(x, 5)
    layer, conv = networks.KnnGCNLayer(2, 4), GCNConv(2, 4)
    with torch.no_grad():
        conv.lin.weight.copy_(layer.lin.weight)
        layer.bias.copy_(torch.randn(4))
        conv.bias.copy_(layer.bias)
    ours = layer(x, nb).reshape(-1, 4)
    theirs = conv(x.reshape(-1, 2), networks.knn_edges(nb))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_population_embedding_is_a_unit_vector_invariant_to_point_order():
    torch.manual_seed(0)
    emb = networks.PopulationEmbedding(2, 16, 3, 4)
    x = torch.randn(2, 30, 2)
    z = emb(x)
    assert z.shape == (2, 16) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    perm = torch.randperm(30)
    assert torch.allclose(emb(x[:, perm]), z, atol=1e-5)


def test_vector_field_shapes_and_condition_check():
    field = networks.VectorField(2, 3, 16, 2, time_dim=8, n_fourier=4)
    y, t = torch.randn(5, 2), torch.rand(5)
    assert field(t, y, torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match="condition"):
        field(t, y, None)
    with pytest.raises(ValueError, match="even"):
        networks.time_embedding(t, 7)


# --- matching -----------------------------------------------------------------------------------


def _shift_populations(n_pop: int = 6, n: int = 40) -> list[Population]:
    """x1 = x0 + (1, 0): a field every method can learn."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n_pop):
        x0 = rng.standard_normal((n, 2)).astype(np.float32)
        out.append(Population(x0, x0 + np.array([1.0, 0.0], dtype=np.float32), f"p{i}"))
    return out


SMALL = dict(n_steps=300, pops_per_step=3, points_per_pop=20, width=32, n_layers=2, time_dim=8,
             n_fourier=4, gnn_width=8, gnn_layers=2, knn=4, ode_steps=8, lr=3e-3)  # fmt: skip


@pytest.mark.parametrize("method", matching.METHODS)
def test_every_method_learns_a_constant_shift(method):
    pops = _shift_populations()
    model, losses = matching.train(method, pops, matching.FlowSettings(**SMALL), seed=0)
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    moved = matching.transport(model, pops[:2], n_steps=8)
    assert np.abs(moved[0] - pops[0].x1).mean() < 0.25
    identity = matching.evaluate(None, pops[:2])
    learned = matching.evaluate(model, pops[:2])
    assert all(a["w2"] < b["w2"] for a, b in zip(learned, identity, strict=True))


def test_fixed_step_rk4_agrees_with_dopri5():
    pops = _shift_populations()
    model, _ = matching.train("mfm", pops, matching.FlowSettings(**SMALL), seed=0)
    assert matching.solver_gap(model, pops[:2], n_steps=8) < 1e-2


def test_cgfm_gives_an_unseen_population_the_average_one_hot():
    pops = _shift_populations(3)
    model = matching.ConditionalFlow("cgfm", 2, [p.source for p in pops], 1,
                                     matching.FlowSettings(**SMALL))  # fmt: skip
    unseen = Population(pops[0].x0, pops[0].x1, "new")
    cond = model.condition([pops[1], unseen])
    assert cond[0].tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(cond[1], torch.full((3,), 1 / 3))


def test_treatments_are_one_hot_for_every_method():
    pops = [Population(p.x0, p.x1, p.name, treatment=i % 2) for i, p in
            enumerate(_shift_populations(2))]  # fmt: skip
    model = matching.ConditionalFlow("fm", 2, ["a"], 2, matching.FlowSettings(**SMALL))
    assert model.condition(pops).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_bad_settings_and_inputs_raise():
    with pytest.raises(ValueError, match="n_steps"):
        matching.FlowSettings(n_steps=0)
    with pytest.raises(ValueError, match="lr"):
        matching.FlowSettings(lr=0.0)
    with pytest.raises(ValueError, match="method"):
        matching.ConditionalFlow("ot", 2, ["a"], 1, matching.FlowSettings())
    with pytest.raises(ValueError, match="points_per_pop"):
        matching.train("fm", _shift_populations(2, 10), matching.FlowSettings(**SMALL), seed=0)
    with pytest.raises(ValueError, match="method must be"):
        matching.transport(None, _shift_populations(1), method="heun")
