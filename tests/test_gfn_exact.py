"""Tests of reprobook.gfn.exact and reprobook.gfn.stability: hand cases on tiny grids, the DP
against torchgfn's own sampler log-probabilities, and the stability bound against random tilts."""

import math

import numpy as np
import pytest
import torch
from gfn.samplers import Sampler

from reprobook.gfn import exact, stability
from reprobook.gfn.grid import state_index
from reprobook.gfn.length import grid_log_reward, make_grid
from reprobook.gfn.training import build_tb_gflownet


def random_policy(ndim: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coords = exact.grid_coordinates(ndim, height)
    raw = rng.random((height**ndim, ndim + 1)) + 0.05
    raw[:, :ndim] *= coords < height - 1  # the moves the grid forbids
    return raw / raw.sum(1, keepdims=True)


def test_one_dimensional_hand_case():
    # States 0, 1, 2; move or exit with equal odds, exit forced at the edge.
    policy = np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(exact.visit_probabilities(policy, 1, 3), [1.0, 0.5, 0.25])
    np.testing.assert_allclose(exact.terminal_distribution(policy, 1, 3), [0.5, 0.25, 0.25])
    # In one dimension every state has one trajectory.
    np.testing.assert_allclose(exact.trajectory_probabilities(policy, 1, 3), [0.5, 0.25, 0.25])


def test_grid_helpers_by_hand():
    assert exact.strides(2, 4).tolist() == [4, 1]
    assert exact.levels(2, 3).tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 4]
    assert exact.n_parents(2, 3).tolist() == [0, 1, 1, 1, 2, 2, 1, 2, 2]


@pytest.mark.parametrize(("ndim", "height"), [(2, 5), (3, 4)])
def test_optimal_policy_samples_the_reward(ndim, height):
    rng = np.random.default_rng(1)
    reward = rng.random(height**ndim) + 0.1
    policy = exact.optimal_policy(reward, ndim, height)
    np.testing.assert_allclose(policy.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        exact.terminal_distribution(policy, ndim, height), reward / reward.sum(), atol=1e-12
    )
    assert exact.optimal_flows(reward, ndim, height)[0] == pytest.approx(reward.sum())


def test_trajectories_count_and_mass():
    probs = exact.trajectory_probabilities(random_policy(2, 3), 2, 3)
    # sum over x in {0,1,2}^2 of the multinomial (x1 + x2 choose x1): 1+1+1+2+1+1+3+3+6.
    assert probs.size == 19
    assert probs.sum() == pytest.approx(1.0)


def test_tb_optimal_trajectories_follow_the_backward_policy():
    """P(tau) = R(x) P_B(tau | x) / Z with P_B uniform: on the 2 x 2 grid, the two paths to
    (1, 1) each have P_B = 1/2, the others 1."""
    reward = np.array([1.0, 2.0, 3.0, 4.0])  # states (0,0), (0,1), (1,0), (1,1)
    probs = exact.trajectory_probabilities(exact.optimal_policy(reward, 2, 2), 2, 2)
    expected = sorted([1, 2, 3, 2, 2]) / reward.sum()
    np.testing.assert_allclose(sorted(probs), expected, atol=1e-12)


def test_policy_table_matches_torchgfn_sampler():
    torch.manual_seed(0)
    env = make_grid(2, 5)
    gflownet = build_tb_gflownet(env, hidden_dim=16)
    table = exact.policy_table(gflownet, env)
    np.testing.assert_allclose(table.sum(1), 1.0, atol=1e-6)
    trajectories = Sampler(gflownet.pf).sample_trajectories(env, n=64, save_logprobs=True)
    states, actions = trajectories.states.tensor, trajectories.actions.tensor.squeeze(-1)
    log_probs = trajectories.log_probs.detach()
    valid = actions >= 0
    index = state_index(states[:-1], env.height)
    expected = np.log(table[index[valid].numpy(), actions[valid].numpy()])
    np.testing.assert_allclose(log_probs[valid].numpy(), expected, atol=1e-5)
    # The DP's terminal distribution against the sampler's empirical one.
    final = Sampler(gflownet.pf).sample_trajectories(env, n=20_000).terminating_states.tensor
    counts = np.bincount(state_index(final, env.height).numpy(), minlength=25) / 20_000
    exact_p = exact.terminal_distribution(table, 2, 5)
    assert np.abs(counts - exact_p).max() < 0.015


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        exact.terminal_distribution(np.ones((3, 3)) / 3, 2, 3)
    with pytest.raises(ValueError, match="probability"):
        exact.terminal_distribution(np.ones((9, 3)), 2, 3)
    with pytest.raises(ValueError, match="positive"):
        exact.optimal_flows(np.zeros(9), 2, 3)
    with pytest.raises(ValueError, match="H\\^d <= 64"):
        exact.trajectory_probabilities(random_policy(2, 9), 2, 9)
    with pytest.raises(ValueError, match="one shape"):
        exact.total_variation(np.ones(2), np.ones(3))


# --- stability --------------------------------------------------------------------------------


def test_bound_by_hand_and_attained():
    assert stability.tv_bound(0.0) == 0.0
    for eps in (0.1, 0.5, 2.0):
        alpha = 1 / (1 + math.exp(eps))
        p = np.array([alpha, 1 - alpha])
        q = p * np.exp([eps, -eps])
        q /= q.sum()
        assert exact.total_variation(p, q) == pytest.approx(math.tanh(eps / 2), rel=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        stability.tv_bound(-1.0)


def test_bound_holds_for_random_tilts():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = rng.integers(2, 30)
        p = rng.dirichlet(np.full(n, 0.5))
        eps = rng.uniform(0, 3)
        f = rng.uniform(-eps, eps, size=n)
        q = p * np.exp(f)
        q /= q.sum()
        assert exact.total_variation(p, q) <= stability.tv_bound(eps) + 1e-12


def test_curve_is_exact_and_under_the_bound():
    env = make_grid(2, 5)
    out = stability.curve(2, 5, grid_log_reward(env), 4, [0.0, 0.25, 1.0, 3.0], seed=0)
    assert out["n_trajectories"] > 25
    for family in stability.FAMILIES:
        row = out[family]
        # The path factor P_B(tau | x) is shared, so trajectory TV equals terminal TV.
        np.testing.assert_allclose(row["tv_trajectories"], row["tv_terminal"], atol=1e-12)
        assert all(
            t <= b + 1e-12 for t, b in zip(row["tv_trajectories"], out["bound"], strict=True)
        )
        np.testing.assert_allclose(row["sup_log_ratio"], out["eps"])
    assert out["worst_case"]["tv_trajectories"][0] == 0.0
    # The aimed tilt comes close to the bound (a greedy set only approximates the ideal mass).
    assert out["worst_case"]["tv_trajectories"][2] > 0.8 * out["bound"][2]


def test_perturbation_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown family"):
        stability.perturbation("nope", np.zeros(4), 0.1, np.zeros(4, bool), rng)
    with pytest.raises(ValueError, match="eps"):
        stability.perturbation("random_signs", np.zeros(4), -0.1, np.zeros(4, bool), rng)


def test_two_dimensional_visits_by_hand():
    """2 x 2 grid, every allowed action equally likely."""
    policy = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1.0]])
    visits = exact.visit_probabilities(policy, 2, 2)  # states (0,0), (0,1), (1,0), (1,1)
    np.testing.assert_allclose(visits, [1, 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(
        exact.terminal_distribution(policy, 2, 2), [1 / 3, 1 / 6, 1 / 6, 1 / 3]
    )


def test_mass_on_a_forbidden_move_is_rejected():
    policy = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])  # the edge state moves on
    with pytest.raises(ValueError, match="past the grid's edge"):
        exact.terminal_distribution(policy, 1, 3)


def test_worst_case_set_and_one_sided_family():
    p = np.array([0.5, 0.3, 0.2])
    # eps = 0 aims at mass 1/2: the largest state alone.
    assert stability.worst_case_set(p, 0.0).tolist() == [True, False, False]
    rng = np.random.default_rng(0)
    long_states = np.array([False, True, True])
    f = stability.perturbation("hidden_only", np.log(p), 0.7, long_states, rng)
    assert f.tolist() == [0.0, 0.7, 0.7]
    q = p * np.exp(f) / (p * np.exp(f)).sum()
    assert exact.total_variation(p, q) <= float(stability.tv_bound(0.7 / 2)) + 1e-12
    with pytest.raises(ValueError, match="same shape"):
        stability.perturbation("hidden_only", np.log(p), 0.7, long_states[:2], rng)
    with pytest.raises(ValueError, match="NaN"):
        stability.tv_bound(float("nan"))
