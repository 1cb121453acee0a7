"""Tests of the chapter-6 GFlowNet library (reprobook.gfn): the deceptive grid's reward, modes and
terminal sets, the L1 metric, the teacher's reward, the rank-prioritised buffer, the TB step and
training loop, the study layer (config, claims, notes, tables) and the figures.

Exact small cases written by hand; training runs on a 2-D grid of height 8 with a 16-unit MLP
for 20 iterations, on one torch thread. The claims, notes, tables and figures are tested on
hand-made metrics built from ``ArmRun.summary()``.
"""

import copy
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gfn.gym.hypergrid import DeceptiveReward
from gfn.samplers import Sampler

from reprobook import anchors, report
from reprobook.gfn import grid, plots, study, training
from reprobook.gfn import report as chapter
from reprobook.gfn.training import ARMS, ArmRun, RankPrioritizedBuffer, TrainSettings

matplotlib.use("Agg")

F64 = torch.float64
CROSS = 0.1 + 1e-5 - 0.0  # the docstring's formula, term by term, in float64
BACKGROUND = 0.1 + 1e-5 - 0.1
MODE = 0.1 + 1e-5 - 0.1 + 2.0


def official_reward(x: list[int], height: int) -> float:
    """The module docstring's formula for one state, in plain Python floats (float64)."""
    u = [abs(xi / (height - 1) * 2 - 1) for xi in x]
    outside_cross = float(all(ui > 0.2 for ui in u))
    in_band = float(all(0.6 < ui < 0.8 for ui in u))
    return 0.1 + 1e-5 - 0.1 * outside_cross + 2 * in_band


# --------------------------------------------------------------------------------------------
# grid: the deceptive reward
# --------------------------------------------------------------------------------------------


def test_reward_hand_values_in_float64():
    states = torch.tensor([[7, 7], [7, 0], [0, 0], [2, 2], [2, 13], [12, 13], [3, 3], [15, 15]])
    reward = grid.deceptive_reward(states, 16)
    assert reward.dtype == F64
    expected = [CROSS, CROSS, BACKGROUND, MODE, MODE, MODE, BACKGROUND, BACKGROUND]
    assert reward.tolist() == expected
    assert reward[0].item() == pytest.approx(0.1 + 1e-5, abs=1e-15)
    assert reward[2].item() == pytest.approx(1e-5, abs=1e-15)
    assert reward[3].item() == pytest.approx(2 + 1e-5, abs=1e-15)


def test_reward_matches_docstring_formula_on_every_state():
    states = grid.all_states(2, 16)
    expected = torch.tensor([official_reward(s, 16) for s in states.tolist()], dtype=F64)
    assert torch.equal(grid.deceptive_reward(states, 16), expected)
    states = grid.all_states(3, 8)
    expected = torch.tensor([official_reward(s, 8) for s in states.tolist()], dtype=F64)
    assert torch.equal(grid.deceptive_reward(states, 8), expected)


def test_band_edges_at_height_16_are_decided_by_float64_rounding():
    assert 12 / 15 * 2 - 1 == 0.6000000000000001  # inside the open band
    assert 3 / 15 * 2 - 1 == -0.6  # exactly on the edge: outside
    assert grid.deceptive_reward(torch.tensor([12, 12]), 16).item() == MODE
    assert grid.deceptive_reward(torch.tensor([3, 3]), 16).item() == BACKGROUND
    assert grid.mode_coordinates(16) == [2, 12, 13]


def test_reward_accepts_numpy_and_batch_shapes():
    states = np.array([[[2, 2], [0, 0]], [[7, 1], [13, 12]]])
    reward = grid.deceptive_reward(states, 16)
    assert reward.shape == (2, 2)
    assert reward.tolist() == [[MODE, BACKGROUND], [CROSS, MODE]]


def test_mode_counts():
    assert grid.n_mode_states(4, 16) == 81
    assert grid.n_mode_states(2, 16) == 9
    assert grid.n_mode_states(2, 32) == 36
    assert grid.n_mode_states(2, 64) == 144
    assert grid.mode_coordinates(8) == [1, 6]
    assert grid.n_mode_states(2, 8) == 4


@pytest.mark.parametrize("height", [32, 64])
def test_mode_counts_agree_with_torchgfn_where_no_coordinate_sits_on_a_band_edge(height):
    states = grid.all_states(2, height)
    theirs = DeceptiveReward(height, 2, R0=1e-5, R1=0.1, R2=2.0)(states.to(F64))
    assert int((theirs >= 2).sum()) == grid.n_mode_states(2, height)


def test_torchgfn_deceptive_reward_differs_only_at_the_band_edge_coordinate():
    states = grid.all_states(4, 16)
    theirs = DeceptiveReward(16, 4, R0=1e-5, R1=0.1, R2=2.0)(states.to(F64)).to(F64)
    ours = grid.deceptive_reward(states, 16)
    their_modes, our_modes = theirs >= 2, ours >= 2
    assert int(their_modes.sum()) == 16 and int(our_modes.sum()) == 81
    assert bool((our_modes | ~their_modes).all())  # theirs is a subset of ours
    in_band = torch.isin(states, torch.tensor([2, 12, 13])).all(-1)
    on_edge = in_band & (states == 12).any(-1)
    assert torch.equal(their_modes, in_band & ~on_edge)
    # beyond float32 rounding of torchgfn's output, the two rewards differ only there
    assert torch.equal((theirs - ours).abs() > 1e-6, on_edge)


@pytest.mark.parametrize(
    "states, match",
    [
        (torch.tensor([[0, 16]]), r"\[0, 15\]"),
        (torch.tensor([[-1, 0]]), r"\[0, 15\]"),
        (torch.tensor(3), "scalar"),
    ],
)
def test_reward_rejects_bad_states(states, match):
    with pytest.raises(ValueError, match=match):
        grid.deceptive_reward(states, 16)


@pytest.mark.parametrize(
    "ndim, height, match",
    [
        (0, 16, "ndim"),
        (2.0, 16, "ndim"),
        (2, 1, "height"),
        (2, 16.0, "height"),
        (2, 4, "mode band"),
        (2, 5, "mode band"),
    ],
)
def test_grid_functions_reject_bad_grids(ndim, height, match):
    for fn in (grid.n_mode_states, grid.all_states, grid.make_deceptive_grid, grid.mode_mask):
        with pytest.raises(ValueError, match=match):
            fn(ndim, height)


def test_reward_rejects_a_height_below_two():
    with pytest.raises(ValueError, match="height"):
        grid.deceptive_reward(torch.zeros(1, 2, dtype=torch.long), 1)


# --------------------------------------------------------------------------------------------
# grid: states, masks, target, L1
# --------------------------------------------------------------------------------------------


def test_all_states_and_state_index_round_trip():
    states = grid.all_states(3, 8)
    assert states.shape == (512, 3) and states.dtype == torch.long
    assert torch.equal(grid.state_index(states, 8), torch.arange(512))
    assert states[0].tolist() == [0, 0, 0] and states[1].tolist() == [0, 0, 1]
    assert states[8].tolist() == [0, 1, 0] and states[-1].tolist() == [7, 7, 7]
    assert grid.state_index(torch.tensor([[1, 2], [15, 15]]), 16).tolist() == [18, 255]


def test_mode_mask_counts_and_positions():
    mask = grid.mode_mask(2, 16)
    assert mask.shape == (256,) and mask.dtype == bool
    assert int(mask.sum()) == 9
    expected = {16 * a + b for a in (2, 12, 13) for b in (2, 12, 13)}
    assert set(np.flatnonzero(mask).tolist()) == expected
    assert int(grid.mode_mask(4, 16).sum()) == 81


def test_terminal_mask_counts():
    assert int(grid.terminal_mask(4, 16).sum()) == 65536 - 1411 == 64125
    assert int(grid.terminal_mask(2, 16).sum()) == 255
    mask = grid.terminal_mask(2, 16)
    assert not mask[255] and mask[15] and mask[240]  # (15, 15) out; (0, 15), (15, 0) in


def test_target_distribution_is_reward_over_its_sum():
    target = grid.target_distribution(2, 16)
    reward = grid.deceptive_reward(grid.all_states(2, 16), 16).numpy()
    assert target.dtype == np.float64 and target.shape == (256,)
    assert target.sum() == pytest.approx(1.0, abs=1e-12)
    terminal = grid.terminal_mask(2, 16)
    assert target[~terminal].tolist() == [0.0]  # (15, 15) cannot be reached
    reward = reward[terminal]
    np.testing.assert_allclose(target[terminal] / reward, 1 / reward.sum(), rtol=1e-12)


def test_empirical_l1_hand_case():
    out = grid.empirical_l1(np.array([1, 1, 0, 0]), np.array([0.25] * 4))
    assert out == {"mean": 0.25, "sum": 1.0}
    out = grid.empirical_l1([3, 1], [0.5, 0.5])  # p_hat = (0.75, 0.25)
    assert out == {"mean": 0.25, "sum": 0.5}
    assert grid.empirical_l1([2, 2], [0.5, 0.5]) == {"mean": 0.0, "sum": 0.0}


def test_empirical_l1_sum_is_mean_times_states():
    rng = np.random.default_rng(0)
    target = grid.target_distribution(2, 16)
    out = grid.empirical_l1(rng.integers(0, 5, size=256), target)
    assert out["sum"] == pytest.approx(out["mean"] * 256, rel=1e-12)
    assert 0 <= out["sum"] <= 2


@pytest.mark.parametrize(
    "counts, target, match",
    [
        ([1, 1, 1], [0.5, 0.5], "same length"),
        ([[1, 1]], [[0.5, 0.5]], "1-D"),
        ([0, 0], [0.5, 0.5], "at least one sample"),
    ],
)
def test_empirical_l1_validation(counts, target, match):
    with pytest.raises(ValueError, match=match):
        grid.empirical_l1(np.array(counts), np.array(target))


def test_make_deceptive_grid_carries_the_official_reward():
    env = grid.make_deceptive_grid(2, 16)
    assert env.ndim == 2 and env.height == 16 and env.n_actions == 3
    assert grid.make_deceptive_grid(3, 8).n_actions == 4
    states = grid.all_states(2, 16)
    reward = env.reward(env.States(states))
    assert reward.dtype == torch.float32
    assert torch.equal(reward, grid.deceptive_reward(states, 16).to(torch.float32))


# --------------------------------------------------------------------------------------------
# training: the teacher's reward, the buffer
# --------------------------------------------------------------------------------------------


def test_teacher_reward_hand_values():
    delta = torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=F64)
    reward = torch.ones(4, dtype=F64)
    out = training.teacher_reward(delta, reward, C=19.0)
    expected = [math.log(1.001), math.log(1.001 + 20), math.log(1.001 + 1), math.log(1.001 + 80)]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=F64), atol=1e-12, rtol=0)
    # C = 0: symmetric in delta
    out = training.teacher_reward(delta[1:3], reward[1:3], C=0.0)
    assert out[0].item() == out[1].item() == pytest.approx(math.log(2.001), abs=1e-12)


def test_teacher_reward_alpha_multiplies_by_reward_power():
    delta = torch.tensor([0.0, -1.0], dtype=F64)
    reward = torch.tensor([4.0, 9.0], dtype=F64)
    out = training.teacher_reward(delta, reward, C=19.0, alpha=0.5)
    expected = torch.tensor([math.log(1.001) * 2, math.log(2.001) * 3], dtype=F64)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    base = training.teacher_reward(delta, reward, C=19.0, alpha=0.0)
    torch.testing.assert_close(base, torch.tensor([math.log(1.001), math.log(2.001)], dtype=F64))


@pytest.mark.parametrize(
    "delta, reward, C, match",
    [
        (torch.zeros(3), torch.ones(2), 19.0, "one shape"),
        (torch.zeros(2), torch.ones(2), -1.0, "C must be"),
        (torch.zeros(2), torch.tensor([1.0, 0.0]), 19.0, "positive"),
        (torch.zeros(2), torch.tensor([1.0, -2.0]), 19.0, "positive"),
    ],
)
def test_teacher_reward_validation(delta, reward, C, match):
    with pytest.raises(ValueError, match=match):
        training.teacher_reward(delta, reward, C=C)


def _keys(buffer):
    return list(buffer._items)


def test_buffer_evicts_oldest_at_capacity():
    buffer = RankPrioritizedBuffer(3)
    buffer.add(torch.tensor([[0, 0], [0, 1], [0, 2]]), torch.tensor([1.0, 2.0, 3.0]))
    assert len(buffer) == 3
    buffer.add(torch.tensor([[1, 0]]), torch.tensor([0.5]))
    assert len(buffer) == 3
    assert _keys(buffer) == [(0, 1), (0, 2), (1, 0)]


def test_buffer_readding_refreshes_key_and_priority():
    buffer = RankPrioritizedBuffer(3)
    buffer.add(torch.tensor([[0, 0], [0, 1], [0, 2]]), torch.tensor([1.0, 2.0, 3.0]))
    buffer.add(torch.tensor([[0, 0]]), torch.tensor([5.0]))  # refresh: no eviction
    assert len(buffer) == 3
    assert _keys(buffer) == [(0, 1), (0, 2), (0, 0)]
    assert buffer._items[(0, 0)] == 5.0
    buffer.add(torch.tensor([[2, 2]]), torch.tensor([0.1]))  # evicts (0, 1), now the oldest
    assert _keys(buffer) == [(0, 2), (0, 0), (2, 2)]
    # duplicates inside one batch are stored once
    buffer = RankPrioritizedBuffer(5)
    buffer.add(torch.tensor([[1, 1], [1, 1]]), torch.tensor([1.0, 7.0]))
    assert len(buffer) == 1 and buffer._items[(1, 1)] == 7.0


def test_buffer_weights_hand_case():
    buffer = RankPrioritizedBuffer(10, rank_weight=1.0)
    buffer.add(torch.tensor([[0, 0], [0, 1], [0, 2]]), torch.tensor([1.0, 3.0, 2.0]))
    # ranks (0 = highest priority): [2, 0, 1]; k N = 3 -> raw weights 1/5, 1/3, 1/4
    raw = np.array([1 / 5, 1 / 3, 1 / 4])
    np.testing.assert_allclose(buffer.weights(), raw / raw.sum(), rtol=1e-12)
    # default k = 1e-2, N = 2: ranks [1, 0] -> 1/1.02, 1/0.02
    buffer = RankPrioritizedBuffer(10)
    buffer.add(torch.tensor([[0, 0], [0, 1]]), torch.tensor([1.0, 2.0]))
    raw = np.array([1 / 1.02, 1 / 0.02])
    np.testing.assert_allclose(buffer.weights(), raw / raw.sum(), rtol=1e-12)


def test_buffer_weights_break_ties_by_insertion_order():
    buffer = RankPrioritizedBuffer(10, rank_weight=1.0)
    buffer.add(torch.tensor([[0, 0], [0, 1]]), torch.tensor([2.0, 2.0]))
    raw = np.array([1 / 2, 1 / 3])  # ranks [0, 1]
    np.testing.assert_allclose(buffer.weights(), raw / raw.sum(), rtol=1e-12)


def test_buffer_sample_returns_stored_states():
    buffer = RankPrioritizedBuffer(10)
    stored = torch.tensor([[0, 3], [5, 1], [2, 2]])
    buffer.add(stored, torch.tensor([0.1, 2.0, 1.0]))
    out = buffer.sample(200, np.random.default_rng(0))
    assert out.shape == (200, 2) and out.dtype == torch.long
    assert {tuple(s) for s in out.tolist()} <= {tuple(s) for s in stored.tolist()}
    # the top-ranked state dominates: weight 1/0.03 against 1/1.03 and 1/2.03
    top = sum(tuple(s) == (5, 1) for s in out.tolist())
    assert top > 150
    again = buffer.sample(200, np.random.default_rng(0))
    assert torch.equal(out, again)


def test_buffer_validation():
    with pytest.raises(ValueError, match="empty buffer"):
        RankPrioritizedBuffer(3).sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="capacity"):
        RankPrioritizedBuffer(0)
    with pytest.raises(ValueError, match="rank_weight"):
        RankPrioritizedBuffer(3, rank_weight=0.0)
    with pytest.raises(ValueError, match="rank_weight"):
        RankPrioritizedBuffer(3, rank_weight=-1.0)


def test_buffer_capacity():
    assert training.buffer_capacity(4, 16) == int(0.1 * 19 * 15**3) == 6412
    assert training.buffer_capacity(2, 16) == 25  # int(0.1 * 17 * 15)
    assert training.buffer_capacity(2, 8) == 6  # int(0.1 * 9 * 7)
    assert training.buffer_capacity(1, 2) == 1  # int(0.2) = 0, floored at 1


# --------------------------------------------------------------------------------------------
# training: the GFlowNet and one TB step
# --------------------------------------------------------------------------------------------


def _sample(gflownet, env, n, seed=0):
    torch.manual_seed(seed)
    return Sampler(gflownet.pf).sample_trajectories(env, n=n)


def _hand_log_probs(gflownet, trajectories, height, official=False):
    """log P_F (masked softmax of the MLP on one-hot coordinates; on the edge only "exit") and
    log P_B (uniform over each child's parents that are off the edge; ``official``: over every
    coordinate above 0, as the official trainer) of every trajectory, summed along its path."""
    states = trajectories.states.tensor
    actions = trajectories.actions.tensor[..., 0]
    ndim = states.shape[-1]
    log_pf, log_pb = [], []
    for b in range(states.shape[1]):
        length = int(trajectories.terminating_idx[b])  # actions taken, the exit included
        pf = pb = 0.0
        for t in range(length):
            x = states[t, b]
            logits = gflownet.pf.module(F.one_hot(x.long(), height).flatten().float())
            on_edge = bool((x == height - 1).any())
            valid = torch.cat([(x < height - 1) & (not on_edge), torch.tensor([True])])
            logp = torch.log_softmax(logits.masked_fill(~valid, -math.inf), -1)
            action = int(actions[t, b])
            pf += float(logp[action].detach())
            if action != ndim:  # a move: P_B(x_t | x_t+1) = 1 / #parents of x_t+1 off the edge
                child = states[t + 1, b]
                assert int((child - x).abs().sum()) == 1
                parents = [child - torch.eye(ndim, dtype=child.dtype)[i] for i in range(ndim)]
                n_valid = sum(
                    int(child[i] > 0 and (official or not (p == height - 1).any()))
                    for i, p in enumerate(parents)
                )
                pb -= math.log(n_valid)
            else:
                assert t == length - 1
        log_pf.append(pf)
        log_pb.append(pb)
    return torch.tensor(log_pf), torch.tensor(log_pb)


def test_tb_gflownet_architecture():
    env = grid.make_deceptive_grid(2, 16)
    gflownet = training.build_tb_gflownet(env, hidden_dim=24, n_layers=2)
    linears = [m for m in gflownet.pf.module.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 24), (24, 24), (24, 3)]
    pb_out = gflownet.pb.module(torch.randn(5, 32))
    assert torch.equal(pb_out, torch.zeros(5, 2))
    assert gflownet.logZ.item() == 0.0


def test_backward_policy_is_uniform_over_valid_parents():
    env = grid.make_deceptive_grid(2, 16)
    gflownet = training.build_tb_gflownet(env, hidden_dim=16)
    trajectories = _sample(gflownet, env, 8)
    hand_pf, hand_pb = _hand_log_probs(gflownet, trajectories, 16)
    with torch.no_grad():
        log_pf, log_pb = gflownet.get_pfs_and_pbs(trajectories, recalculate_all_logprobs=True)
    torch.testing.assert_close(log_pb.sum(0), hand_pb, atol=1e-5, rtol=0)
    torch.testing.assert_close(log_pf.sum(0), hand_pf, atol=1e-5, rtol=0)
    assert (hand_pb < 0).any()  # some trajectory has a step with two valid parents


def test_official_log_pb_shift_hand_cases():
    states = torch.tensor([[0, 15], [3, 15], [3, 15, 2][:2], [15, 0], [2, 3], [0, 0], [1, 14]])
    shift = grid.official_log_pb_shift(states, 16)
    expected = [0.0, -math.log(2), -math.log(2), 0.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(shift, torch.tensor(expected))
    three = grid.official_log_pb_shift(torch.tensor([[4, 15, 1], [4, 15, 0]]), 16)
    torch.testing.assert_close(three, torch.tensor([-math.log(3), -math.log(2)]))
    with pytest.raises(ValueError, match="batch, d"):
        grid.official_log_pb_shift(torch.tensor([1, 15]), 16)
    with pytest.raises(ValueError, match="must lie in"):
        grid.official_log_pb_shift(torch.tensor([[1, 16]]), 16)


def test_official_shift_turns_our_log_pb_into_the_official_one():
    env = grid.make_deceptive_grid(3, 8)
    gflownet = training.build_tb_gflownet(env, hidden_dim=16)
    ends = torch.tensor([[3, 7, 1], [7, 5, 0], [0, 7, 0], [2, 2, 2], [7, 1, 1], [0, 0, 4]])
    torch.manual_seed(0)  # trajectories into these ends, drawn backwards as the replay buffer's
    backward = Sampler(gflownet.pb).sample_trajectories(env, states=env.States(ends))
    trajectories = backward.reverse_backward_trajectories()
    assert torch.equal(trajectories.terminating_states.tensor, ends)
    _, official_pb = _hand_log_probs(gflownet, trajectories, 8, official=True)
    with torch.no_grad():
        _, log_pb = gflownet.get_pfs_and_pbs(trajectories, recalculate_all_logprobs=True)
    shift = grid.official_log_pb_shift(ends, 8)
    torch.testing.assert_close(shift[:3], -torch.log(torch.tensor([3.0, 2.0, 1.0])))
    torch.testing.assert_close(log_pb.sum(0) + shift, official_pb, atol=1e-5, rtol=0)
    assert not torch.allclose(log_pb.sum(0), official_pb)  # the two conventions do differ


def test_backward_setting_is_checked():
    with pytest.raises(ValueError, match="backward must be one of official, valid"):
        TrainSettings(n_iterations=1, backward="learned")


def test_tb_step_returns_the_residual_before_the_update():
    env = grid.make_deceptive_grid(2, 16)
    torch.manual_seed(0)
    gflownet = training.build_tb_gflownet(env, hidden_dim=16)
    settings = TrainSettings(n_iterations=1)
    optimizer = training._optimizer(gflownet, settings)
    trajectories = _sample(gflownet, env, 6)
    with torch.no_grad():
        hand_pf, hand_pb = _hand_log_probs(gflownet, trajectories, 16)
    final = trajectories.terminating_states.tensor
    log_r = grid.deceptive_reward(final, 16).to(torch.float32).log()
    expected = log_r + hand_pb - 0.0 - hand_pf  # log Z starts at 0
    logz_before = gflownet.logZ.item()
    weights_before = [p.detach().clone() for p in gflownet.pf.parameters()]
    delta = training._tb_step(gflownet, optimizer, trajectories, clip=1.0)
    assert delta.shape == (6,) and not delta.requires_grad
    assert torch.isfinite(delta).all()
    torch.testing.assert_close(delta, expected, atol=1e-4, rtol=0)
    assert gflownet.logZ.item() != logz_before
    after = list(gflownet.pf.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, after, strict=True))


def test_tb_step_uses_given_log_rewards():
    env = grid.make_deceptive_grid(2, 16)
    torch.manual_seed(0)
    gflownet = training.build_tb_gflownet(env, hidden_dim=16)
    optimizer = training._optimizer(gflownet, TrainSettings(n_iterations=1))
    trajectories = _sample(gflownet, env, 4)
    with torch.no_grad():
        hand_pf, hand_pb = _hand_log_probs(gflownet, trajectories, 16)
    log_rewards = torch.tensor([0.0, 1.0, -2.0, 3.0])
    delta = training._tb_step(gflownet, optimizer, trajectories, 0.0, log_rewards)
    torch.testing.assert_close(delta, log_rewards + hand_pb - hand_pf, atol=1e-4, rtol=0)


def test_sample_counts():
    env = grid.make_deceptive_grid(2, 8)
    torch.manual_seed(0)
    gflownet = training.build_tb_gflownet(env, hidden_dim=8)
    counts = training.sample_counts(gflownet, env, 7, batch=3)
    assert counts.shape == (64,) and counts.dtype == np.int64 and counts.sum() == 7
    with pytest.raises(ValueError, match="n must be"):
        training.sample_counts(gflownet, env, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_iterations": 0}, "n_iterations"),
        ({"n_iterations": 5, "batch_size": 0}, "batch_size"),
        ({"n_iterations": 5, "record_every": 0}, "record_every"),
        ({"n_iterations": 5, "hidden_dim": 0}, "hidden_dim"),
        ({"n_iterations": 5, "eval_batch": 0}, "eval_batch"),
        ({"n_iterations": 5, "epsilon": 1.5}, "epsilon"),
        ({"n_iterations": 5, "epsilon": -0.1}, "epsilon"),
    ],
)
def test_train_settings_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainSettings(**kwargs)


@pytest.mark.parametrize("name", ["train_l1_window", "n_layers", "eval_samples"])
def test_train_settings_rejects_non_positive_sizes(name):
    with pytest.raises(ValueError, match=name):
        TrainSettings(n_iterations=5, **{name: 0})


# --------------------------------------------------------------------------------------------
# training: train_arm on a tiny grid
# --------------------------------------------------------------------------------------------

TINY = dict(
    n_iterations=20, hidden_dim=16, eval_samples=200, eval_batch=200, record_every=5
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_env():
    return grid.make_deceptive_grid(2, 8)


@pytest.fixture(scope="module")
def tiny_runs(tiny_env, one_torch_thread):
    settings = TrainSettings(**TINY)
    return {arm: training.train_arm(arm, tiny_env, settings, 0, progress=False) for arm in ARMS}


@pytest.mark.parametrize("arm", ARMS)
def test_train_arm_records(arm, tiny_runs):
    run = tiny_runs[arm]
    n_fresh = 16 * 20
    iterations = 40 if arm == "tb_prt" else 20
    assert run.arm == arm and run.seed == 0 and run.n_mode_states == 4
    assert run.iterations == iterations
    assert len(run.samples) == len(run.modes_found) == iterations // 5 + 1
    assert run.samples[0] == 0 and run.modes_found[0] == 0
    assert run.samples[-1] == n_fresh
    assert all(b > a for a, b in zip(run.samples, run.samples[1:], strict=False))
    assert all(b >= a for a, b in zip(run.modes_found, run.modes_found[1:], strict=False))
    assert 0 <= run.modes_found[-1] <= 4
    if arm == "tb_prt":  # 20 student steps = iteration 20 of 40, curve index 20 // 5
        assert run.modes_at_equal_steps == run.modes_found[4] <= run.modes_found[-1]
    else:
        assert run.modes_at_equal_steps == run.modes_found[-1]
    assert run.visit_counts.shape == (64,) and run.visit_counts.sum() == n_fresh
    found = int((run.visit_counts[grid.mode_mask(2, 8)] > 0).sum())
    assert run.modes_found[-1] == found
    for l1 in (run.train_l1, run.eval_l1):
        assert set(l1) == {"mean", "sum"}
        assert l1["sum"] == pytest.approx(l1["mean"] * 63, rel=1e-12)  # 63 terminal states
        assert 0 <= l1["sum"] <= 2
    assert 0 <= run.eval_modes <= 4
    # below the window, the train L1 is the L1 of all the visit counts
    terminal = grid.terminal_mask(2, 8)
    target = grid.target_distribution(2, 8)[terminal]
    assert run.train_l1 == grid.empirical_l1(run.visit_counts[terminal], target)
    summary = run.summary()
    assert summary["final_modes"] == run.modes_found[-1]
    assert summary["ms_per_iteration"] == pytest.approx(1000 * run.seconds / iterations)


def test_prt_records_at_fresh_sample_counts(tiny_runs):
    # replays happen on odd iterations, so after 5 iterations 3 batches were fresh
    assert tiny_runs["tb_prt"].samples == [0, 48, 80, 128, 160, 208, 240, 288, 320]
    assert tiny_runs["tb"].samples == [0, 80, 160, 240, 320]


@pytest.mark.parametrize("arm", ARMS)
def test_train_arm_is_deterministic(arm, tiny_env, tiny_runs):
    again = training.train_arm(arm, tiny_env, TrainSettings(**TINY), 0, progress=False)
    first = tiny_runs[arm]
    assert again.modes_found == first.modes_found and again.samples == first.samples
    assert np.array_equal(again.visit_counts, first.visit_counts)
    assert again.eval_l1 == first.eval_l1 and again.train_l1 == first.train_l1


def test_epsilon_arm_equals_tb_at_zero_epsilon_and_explores_at_one(tiny_env, tiny_runs):
    zero = training.train_arm(
        "tb_eps", tiny_env, TrainSettings(**TINY, epsilon=0.0), 0, progress=False
    )
    assert np.array_equal(zero.visit_counts, tiny_runs["tb"].visit_counts)
    one = training.train_arm("tb_eps", tiny_env, TrainSettings(**TINY, epsilon=1.0), 0, False)
    assert not np.array_equal(one.visit_counts, tiny_runs["tb"].visit_counts)
    # epsilon only changes exploration: tb ignores it
    tb = training.train_arm("tb", tiny_env, TrainSettings(**TINY, epsilon=1.0), 0, False)
    assert np.array_equal(tb.visit_counts, tiny_runs["tb"].visit_counts)


def test_summary_samples_to_all_modes():
    run = ArmRun("tb", 0, 3, samples=[16, 32, 48], modes_found=[1, 3, 3])
    assert run.summary()["samples_to_all_modes"] == 32
    run = ArmRun("tb", 0, 3, samples=[16, 32, 48], modes_found=[1, 2, 2])
    assert run.summary()["samples_to_all_modes"] is None


def test_train_arm_rejects_unknown_arm(tiny_env):
    with pytest.raises(ValueError, match="unknown arm 'nope'"):
        training.train_arm("nope", tiny_env, TrainSettings(n_iterations=1), 0, progress=False)


# --------------------------------------------------------------------------------------------
# study: config, grid facts, a tiny end-to-end run
# --------------------------------------------------------------------------------------------


def test_resolve_config_profiles():
    smoke = study.resolve_config("smoke")
    assert (smoke.ndim, smoke.height, smoke.arms, smoke.n_seeds) == (3, 16, ["tb", "teacher"], 2)
    assert smoke.batch_size == 16 and smoke.C == 19.0 and smoke.workers == 2
    full = study.resolve_config("full", n_seeds=2, epsilon=0.05)
    assert full.arms == list(ARMS) and full.n_seeds == 2 and full.epsilon == 0.05
    assert (full.ndim, full.height, full.n_iterations) == (4, 16, 6000)  # the official budget
    short = study.resolve_config("short")
    assert (short.ndim, short.height, short.n_iterations, short.n_seeds) == (4, 16, 1500, 3)
    assert study.resolve_config("smoke", height=None).height == 16


@pytest.mark.parametrize(
    "profile, overrides, match",
    [
        ("nope", {}, "unknown profile"),
        ("smoke", {"arms": ["nope"]}, "arms must be"),
        ("smoke", {"arms": ["tb", "tb"]}, "arms must be"),
        ("smoke", {"arms": []}, "arms must be"),
        ("smoke", {"map_arms": ["x"]}, "map_arms must be"),
        ("smoke", {"height": 3}, "height must be"),
        ("smoke", {"height": 65}, "height must be"),
        ("smoke", {"workers": 0}, "workers must be"),
        ("smoke", {"map_height": 4}, "map_height must be"),
        ("smoke", {"epsilon": 2.0}, "epsilon must be"),
        ("smoke", {"C": -1.0}, "C must be"),
        ("smoke", {"ndim": 7}, "ndim must be"),
        ("smoke", {"n_iterations": 9}, "n_iterations must be"),
        ("smoke", {"eval_samples": 99}, "eval_samples must be"),
        ("smoke", {"height": 16.0}, "height must be of type int"),
        ("smoke", {"depth": 3}, "unknown setting"),
    ],
)
def test_resolve_config_rejects_bad_overrides(profile, overrides, match):
    with pytest.raises(ValueError, match=match):
        study.resolve_config(profile, **overrides)


@pytest.mark.parametrize("knob", ["height", "map_height"])
def test_height_without_band_gets_a_clear_message(knob):
    with pytest.raises(ValueError) as err:
        study.resolve_config("smoke", **{knob: 5})
    assert "mode band" in str(err.value)


def test_train_settings_from_config():
    config = study.resolve_config("smoke", C=3.0, epsilon=0.5, alpha=1.0)
    settings = study.train_settings(config, 12, 300)
    assert (settings.n_iterations, settings.eval_samples) == (12, 300)
    assert (settings.C, settings.epsilon, settings.alpha) == (3.0, 0.5, 1.0)
    assert (settings.batch_size, settings.hidden_dim, settings.n_layers) == (16, 256, 2)
    assert (settings.lr, settings.lr_logz, settings.rank_weight) == (1e-3, 1e-1, 1e-2)


def test_grid_facts_2d_16():
    facts = study.grid_facts(2, 16)
    assert facts["ndim"] == 2 and facts["height"] == 16
    assert facts["mode_coordinates"] == [2, 12, 13] and facts["n_mode_states"] == 9
    assert facts["torchgfn_mode_coordinates"] == [2, 13]
    assert facts["torchgfn_n_mode_states"] == 4
    assert facts["n_states"] == 256 and facts["n_terminal_states"] == 255
    assert facts["buffer_capacity"] == 25
    target = grid.target_distribution(2, 16)
    assert facts["target_mass_on_modes"] == pytest.approx(target[grid.mode_mask(2, 16)].sum())
    reward = grid.deceptive_reward(grid.all_states(2, 16), 16)
    z = reward[torch.from_numpy(grid.terminal_mask(2, 16))].sum().item()
    assert facts["target_mass_on_modes"] == pytest.approx(9 * MODE / z, rel=1e-12)


def test_grid_facts_4d_16():
    facts = study.grid_facts(4, 16)
    assert facts["n_mode_states"] == 81 and facts["torchgfn_n_mode_states"] == 16
    assert facts["n_states"] == 65536 and facts["n_terminal_states"] == 64125
    assert facts["buffer_capacity"] == 6412


def test_mode_discovery_rejects_no_seeds():
    with pytest.raises(ValueError, match="seeds"):
        study.mode_discovery(study.resolve_config("smoke"), [])


def test_run_all_tiny(one_torch_thread):
    config = study.resolve_config(
        "smoke", ndim=2, height=8, n_iterations=10, eval_samples=100, map_height=8,
        map_iterations=10, map_arms=["teacher"], hidden_dim=8, workers=1,
    )  # fmt: skip
    metrics = study.run_all(config, [0], progress=False)
    assert set(metrics["runs"]) == {"tb", "teacher"} and len(metrics["runs"]["tb"]) == 1
    assert metrics["grid"]["n_mode_states"] == 4
    assert metrics["aggregate"]["tb"]["samples"] == 160
    sample_map = metrics["map"]
    assert sample_map["height"] == 8 and set(sample_map["arms"]) == {"teacher"}
    counts = np.asarray(sample_map["arms"]["teacher"]["counts"])
    assert counts.shape == (8, 8) and counts.sum() == 160
    assert np.asarray(sample_map["target"]).sum() == pytest.approx(1.0)
    metrics["claims"] = chapter.check_claims(metrics)
    assert report.can_read(chapter, metrics)
    assert metrics["claims"]["curves_monotone"] and metrics["claims"]["l1_conventions_agree"]
    assert metrics["claims"]["equal_samples"]


def test_runs_in_worker_processes_match_runs_in_this_process(one_torch_thread):
    config = study.resolve_config(
        "smoke", ndim=2, height=8, n_iterations=12, eval_samples=100, hidden_dim=8, workers=1,
    )  # fmt: skip
    inline = study.mode_discovery(config, [0, 1], progress=False)
    pooled = study.mode_discovery(dict_config(config, workers=2), [0, 1], progress=False)
    for arm in config.arms:
        assert [r["seed"] for r in pooled[arm]] == [0, 1]
        for a, b in zip(inline[arm], pooled[arm], strict=True):
            same = {k: v for k, v in a.items() if k not in ("seconds", "ms_per_iteration")}
            assert same == {k: v for k, v in b.items() if k not in ("seconds", "ms_per_iteration")}


def dict_config(config, **changes):
    return type(config)({**config, **changes})


# --------------------------------------------------------------------------------------------
# study.aggregate and the report (claims, notes, tables, prose numbers) on hand-made metrics
# --------------------------------------------------------------------------------------------

GRID_2_16 = study.grid_facts(2, 16)


def fake_run(arm, seed, modes_found, l1_mean=1e-3, eval_modes=2, samples=(16, 32, 48)):
    run = ArmRun(
        arm, seed, 9, samples=list(samples), modes_found=list(modes_found),
        train_l1={"mean": l1_mean, "sum": l1_mean * 255},
        eval_l1={"mean": 2 * l1_mean, "sum": 2 * l1_mean * 255},
        eval_modes=eval_modes, seconds=1.5, iterations=3, modes_at_equal_steps=modes_found[-1],
        student_modes=modes_found[-1] - (2 if arm == "teacher" else 0),
    )  # fmt: skip
    return run.summary()


def fake_metrics(runs):
    metrics = {
        "metrics_version": study.METRICS_VERSION, "grid": GRID_2_16, "n_iterations": 3,
        "batch_size": 16, "eval_samples": 1000,
        "n_seeds": len(next(iter(runs.values()))), "seeds": [0, 1], "C": 19.0, "alpha": 0.0,
        "epsilon": 0.01, "runs": runs, "aggregate": study.aggregate(runs), "map": {},
    }  # fmt: skip
    metrics["claims"] = chapter.check_claims(metrics)
    return metrics


@pytest.fixture()
def teacher_wins():
    return fake_metrics(
        {
            "tb": [fake_run("tb", 0, [1, 2, 3], 1e-3), fake_run("tb", 1, [1, 1, 2], 3e-3)],
            "tb_eps": [fake_run("tb_eps", 0, [0, 2, 4]), fake_run("tb_eps", 1, [1, 2, 2])],
            "teacher": [
                fake_run("teacher", 0, [2, 4, 6], 2e-3, 4),
                fake_run("teacher", 1, [3, 9, 9], 4e-3, 6),
            ],
        }
    )


@pytest.fixture()
def teacher_loses():
    return fake_metrics(
        {
            "tb": [fake_run("tb", 0, [1, 2, 3]), fake_run("tb", 1, [1, 1, 2])],
            "tb_prt": [fake_run("tb_prt", 0, [2, 5, 7]), fake_run("tb_prt", 1, [3, 5, 6])],
            "teacher": [fake_run("teacher", 0, [2, 4, 4]), fake_run("teacher", 1, [1, 3, 5])],
        }
    )


def test_aggregate_hand_case(teacher_wins):
    agg = teacher_wins["aggregate"]
    assert list(agg) == ["tb", "tb_eps", "teacher"]
    tb, teacher = agg["tb"], agg["teacher"]
    assert tb["label"] == "TB" and teacher["label"] == "Teacher" and tb["n_seeds"] == 2
    assert tb["final_modes"] == 2.5 and tb["final_modes_se"] == pytest.approx(0.5)
    assert teacher["final_modes"] == 7.5 and teacher["final_modes_se"] == pytest.approx(1.5)
    assert teacher["final_modes_per_seed"] == [6, 9]
    assert teacher["samples_to_all_modes_per_seed"] == [None, 32]
    assert tb["train_l1_mean"] == pytest.approx(2e-3)
    assert tb["train_l1_mean_se"] == pytest.approx(1e-3)  # std 1.414e-3 / sqrt 2
    assert tb["eval_l1_mean"] == pytest.approx(4e-3)
    assert tb["eval_l1_sum"] == pytest.approx(4e-3 * 255)
    assert teacher["eval_modes"] == 5.0 and teacher["eval_modes_per_seed"] == [4, 6]
    assert teacher["student_modes"] == 5.5 and teacher["student_modes_per_seed"] == [4, 7]
    assert tb["ms_per_iteration"] == pytest.approx(500.0)
    assert tb["samples"] == 48


def test_aggregate_single_seed_has_zero_standard_error():
    agg = study.aggregate({"tb": [fake_run("tb", 0, [1, 2, 3])]})
    assert agg["tb"]["final_modes"] == 3.0 and agg["tb"]["final_modes_se"] == 0.0
    assert agg["tb"]["eval_l1_mean_se"] == 0.0


def test_check_claims_when_teacher_wins(teacher_wins):
    assert teacher_wins["claims"] == {
        "curves_monotone": True,
        "l1_conventions_agree": True,
        "equal_samples": True,
        "teacher_beats_tb": True,  # 6 > 3 and 9 > 2
        "teacher_beats_tb_eps": True,  # 6 > 4 and 9 > 2
        "student_beats_tb_fresh": True,  # 4 > 2 and 6 > 2 fresh modes
    }


def test_check_claims_when_teacher_loses_to_a_baseline(teacher_loses):
    claims = teacher_loses["claims"]
    assert claims["teacher_beats_tb"] is True  # 4 > 3 and 5 > 2
    assert claims["teacher_beats_tb_prt"] is False  # 4 < 7
    assert claims["teacher_beats_tb_prt_at_equal_steps"] is False
    assert claims["student_beats_tb_fresh"] is False  # 2 = 2 fresh modes
    assert claims["curves_monotone"] and claims["equal_samples"]


def test_check_claims_need_every_seed_and_pair_by_seed():
    runs = {
        "tb": [fake_run("tb", 1, [1, 2, 3]), fake_run("tb", 0, [1, 1, 8])],
        "teacher": [fake_run("teacher", 0, [1, 3, 9]), fake_run("teacher", 1, [1, 3, 3])],
    }
    metrics = fake_metrics(runs)  # seed 0: 9 > 8; seed 1: a tie, so not "more in every seed"
    assert metrics["claims"]["teacher_beats_tb"] is False
    assert chapter.per_seed(metrics, "tb", "final_modes") == [8, 3]  # sorted by seed
    runs["teacher"][1] = fake_run("teacher", 1, [1, 3, 4])
    assert fake_metrics(runs)["claims"]["teacher_beats_tb"] is True
    paired = chapter.comparison(fake_metrics(runs), "tb")
    assert paired.diffs == (1.0, 1.0) and paired.wins == 2


def test_check_claims_sanity_failures(teacher_wins):
    runs = copy.deepcopy(teacher_wins["runs"])
    runs["tb"][0]["modes_found"] = [1, 3, 2]  # not monotone
    runs["tb"][0]["final_modes"] = 2
    assert chapter.check_claims(fake_metrics(runs))["curves_monotone"] is False
    runs = copy.deepcopy(teacher_wins["runs"])
    runs["tb"][1]["final_modes"] = 5  # curve does not end at its final count
    assert chapter.check_claims(fake_metrics(runs))["curves_monotone"] is False
    runs = copy.deepcopy(teacher_wins["runs"])
    runs["teacher"][0]["eval_l1"]["sum"] *= 1.01
    assert chapter.check_claims(fake_metrics(runs))["l1_conventions_agree"] is False
    runs = copy.deepcopy(teacher_wins["runs"])
    runs["tb_eps"] = [fake_run("tb_eps", s, [0, 1, 2], samples=(16, 32, 64)) for s in (0, 1)]
    assert chapter.check_claims(fake_metrics(runs))["equal_samples"] is False


def test_check_claims_without_teacher_has_only_sanity_claims():
    metrics = fake_metrics({"tb": [fake_run("tb", 0, [1, 2, 3])]})
    assert set(metrics["claims"]) == {"curves_monotone", "l1_conventions_agree", "equal_samples"}
    metrics = fake_metrics({"teacher": [fake_run("teacher", 0, [1, 2, 3])]})
    assert "teacher_beats_tb" not in metrics["claims"]
    assert "student_beats_tb_fresh" not in metrics["claims"]


def test_can_read(teacher_wins):
    assert report.can_read(chapter, teacher_wins)
    assert not report.can_read(chapter, {**teacher_wins, "metrics_version": 0})
    for key in ("grid", "runs", "aggregate", "map", "claims"):
        assert not report.can_read(chapter, {k: v for k, v in teacher_wins.items() if k != key})


def test_reading_notes_when_teacher_wins(teacher_wins):
    notes = chapter.reading_notes(teacher_wins)
    assert "paired by seed over 2 seeds" in notes
    assert (
        "- Teacher vs TB: 7.5 against 2.5 of 9 mode states; teacher − TB, paired by seed: "
        "+5.0 ± 2.0, one-sided paired t-test p = 0.12; more in 2 of 2."
    ) in notes
    assert "Teacher vs TB + ε-greedy: 7.5 against 3.0 of 9" in notes
    assert "its student's own batches found 5.5" in notes
    assert "the curriculum reached the amortized sampler" in notes
    assert "The lowest eval L1 is TB + ε-greedy's (0.002 mean over 255 terminal states)" in notes


def test_reading_notes_when_teacher_loses(teacher_loses):
    notes = chapter.reading_notes(teacher_loses)
    assert (
        "Teacher vs TB + PRT buffer: 4.5 against 6.5 of 9 mode states; teacher − TB + PRT" in notes
    )
    assert "the teacher's extra modes did not become the student's" in notes


def test_results_table(teacher_wins):
    table = chapter.results_table(teacher_wins["aggregate"], GRID_2_16)
    assert list(table.index) == ["TB", "TB + ε-greedy", "Teacher"]
    assert table.loc["Teacher", "modes found (of 9)"] == "7.5 ± 1.5"
    assert table.loc["Teacher", "per seed"] == "6/9"
    assert table.loc["Teacher", "samples to find all (per seed)"] == "—/32"
    assert table.loc["TB", "eval L1, mean (×1e-5)"] == "400.000 ± 200.000"
    assert table.loc["TB", "eval L1, sum"] == "1.020 ± 0.510"
    assert table.loc["TB", "train L1, sum"] == "0.510"
    assert table.loc["Teacher", "modes in eval samples (per seed)"] == "4/6"
    assert table.loc["Teacher", "modes in the student's own batches"] == "5.5"
    assert table.loc["TB", "ms / iteration"] == "500"


def test_miniature_findings(teacher_wins, teacher_loses):
    found = chapter.miniature_findings(teacher_wins)
    assert found["main_claim"] == (
        "modes found at equal samples, in every seed: teacher > TB: yes; "
        "teacher > TB + ε-greedy: yes; the teacher-guided student's own fresh samples > TB's: yes"
    )
    assert "d = 2, H = 16" in found["grid_setting"]
    assert "(9 mode states); 3 iterations" in found["grid_setting"]
    assert "(48 sampled trajectories) per arm, 2 seeds" in found["grid_setting"]
    assert "Teacher 7.5 of 9 (seeds: 6/9)" in found["grid_modes"]
    assert found["reference_run_modes"] == found["grid_modes"]
    assert "TB 400.000e-5 (sum 1.020)" in found["grid_l1"]
    assert found["settings"].startswith("C = 19, α = 0, ε = 0.01")
    lost = chapter.miniature_findings(teacher_loses)
    assert lost["main_claim"] == (
        "modes found at equal samples, in every seed: teacher > TB: yes; "
        "teacher > TB + PRT buffer: no; the teacher-guided student's own fresh samples > TB's: no"
    )


def test_miniature_findings_cover_every_anchor(teacher_wins):
    chapter_anchors = anchors.load_anchors("ch06-adaptive-teachers")
    found = chapter.miniature_findings(teacher_wins)
    assert set(found) <= set(chapter_anchors)
    assert set(found) == set(chapter_anchors)  # no "not measured here" row
    table = anchors.comparison_table(chapter_anchors, found)
    assert len(table) == len(chapter_anchors)
    assert (table["this miniature"].str.len() > 0).all()


def test_report_and_study_follow_the_chapter_protocols():
    assert report.protocol_gaps(chapter, report.ChapterReport) == []
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert chapter.METRICS_VERSION == study.METRICS_VERSION
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.CLAIMS)
    assert chapter.KEY_ANCHOR in anchors.load_anchors("ch06-adaptive-teachers")


def test_claims_are_all_described(teacher_wins, teacher_loses):
    for metrics in (teacher_wins, teacher_loses):
        assert set(metrics["claims"]) <= set(chapter.CLAIMS)
    every_arm = {f"teacher_beats_{arm}" for arm in training.ARMS if arm != "teacher"}
    assert every_arm <= set(chapter.CLAIMS)


def test_key_number_hand_case(teacher_wins):
    assert chapter.key_number(teacher_wins) == (
        "modes found of 9 at 48 samples per arm (mean ± SE over 2 seeds): Teacher 7.5 ± 1.5, "
        "TB 2.5 ± 0.5, TB + ε-greedy 3.0 ± 1.0"
    )
    one_seed = fake_metrics({"tb": [fake_run("tb", 0, [1, 2, 3])]})
    assert (
        chapter.key_number(one_seed) == "modes found of 9 at 48 samples per arm (one seed): TB 3.0"
    )


def test_prose_numbers_hand_case(teacher_wins):
    numbers = chapter.prose_numbers(teacher_wins)
    assert numbers["n_seeds"] == "2" and numbers["n_iterations"] == "3"
    assert numbers["samples_per_arm"] == "48" and numbers["eval_samples"] == "1,000"
    assert (numbers["grid_ndim"], numbers["grid_height"]) == ("2", "16")
    assert numbers["n_mode_states"] == "9" and numbers["torchgfn_n_mode_states"] == "4"
    assert numbers["n_terminal_states"] == "255"
    ratio = GRID_2_16["torchgfn_extra_terminal_mass"] / GRID_2_16["target_mass_on_modes"]
    assert numbers["extra_mass_vs_modes"] == f"{100 * ratio:.0f} %"
    assert numbers["modes_teacher"] == "7.5 ± 1.5" and numbers["modes_tb"] == "2.5 ± 0.5"
    assert numbers["modes_tb_eps"] == "3.0 ± 1.0"
    assert numbers["modes_equal_steps_teacher"] == "7.5"
    assert numbers["eval_modes_teacher"] == "5.0" and numbers["eval_modes_tb"] == "2.0"
    assert numbers["eval_l1_lowest"] == "TB + ε-greedy 200.000e-5"  # eval L1 = 2 × train L1
    assert numbers["eval_l1_highest"] == "Teacher 600.000e-5"
    for key in ("modes_tb_prt", "modes_equal_steps_tb_prt", "eval_modes_tb_prt"):
        assert numbers[key] == "not run"  # every arm's numbers exist, so every glue key does
    assert all(isinstance(v, str) and v for v in numbers.values())


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def test_plot_mode_discovery(teacher_wins):
    fig = plots.plot_mode_discovery(teacher_wins["runs"], 9)
    try:
        assert isinstance(fig, plt.Figure)
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel()
        assert "2 seeds" in ax.get_title()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["TB", "TB + ε-greedy", "Teacher", "all 9 mode states"]
        teacher_line = ax.get_lines()[2]
        assert list(teacher_line.get_xdata()) == [16, 32, 48]
        assert list(teacher_line.get_ydata()) == [2.5, 6.5, 7.5]
    finally:
        plt.close(fig)
    single = plots.plot_mode_discovery({"tb": [fake_run("tb", 0, [1, 2, 3])]}, 9)
    try:
        assert "band" not in single.axes[0].get_title()
    finally:
        plt.close(single)


def test_plot_sample_map():
    rng = np.random.default_rng(0)
    sample_map = {
        "height": 16, "iterations": 30, "seed": 0,
        "target": grid.target_distribution(2, 16).reshape(16, 16).tolist(),
        "arms": {
            arm: {"counts": rng.integers(0, 9, size=(16, 16)).tolist(), "final_modes": 3,
                  "n_mode_states": 9}
            for arm in ("tb", "teacher")
        },
    }  # fmt: skip
    fig = plots.plot_sample_map(sample_map)
    try:
        assert isinstance(fig, plt.Figure)
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert len(panels) == 3
        assert panels[1].get_title() == "TB\n3/9 modes"
        for ax in panels:
            assert ax.get_xlabel() == "x₁" and ax.get_ylabel() == "x₂"
        assert "d = 2, H = 16, 30 iterations, seed 0" in fig.get_suptitle()
    finally:
        plt.close(fig)


def test_grid_stops_on_the_edge_as_the_official_environment():
    env = grid.make_deceptive_grid(2, 6)
    states = env.States(torch.tensor([[5, 2], [3, 2], [0, 0], [2, 5]]))
    assert states.forward_masks.tolist() == [
        [False, False, True],  # a coordinate at H - 1: only "exit"
        [True, True, True],
        [True, True, True],
        [False, False, True],
    ]
    # backward: only parents off the edge; (5, 2) -> (4, 2) is allowed, (5, 1) is not
    assert states.backward_masks.tolist() == [[True, False], [True, True], [False, False],
                                              [False, True]]  # fmt: skip


def test_sampled_trajectories_respect_the_stopping_rule(one_torch_thread):
    torch.manual_seed(0)
    env = grid.make_deceptive_grid(2, 6)
    gflownet = training.build_tb_gflownet(env, 16, 2)
    final = Sampler(gflownet.pf).sample_trajectories(env, n=500).terminating_states.tensor
    assert ((final == 5).sum(-1) <= 1).all()
    assert grid.terminal_mask(2, 6)[grid.state_index(final, 6).numpy()].all()
    # a backward trajectory from an edge state, reversed, has a finite forward probability
    edge = env.States(torch.tensor([[5, 2], [2, 5], [5, 0]]))
    backward = Sampler(gflownet.pb).sample_trajectories(env, states=edge)
    scores = gflownet.get_scores(backward.reverse_backward_trajectories())
    assert torch.isfinite(scores).all()


# --------------------------------------------------------------------------------------------
# against the official code
# --------------------------------------------------------------------------------------------

OFFICIAL = {
    "repository": "alstn12088/adaptive-teacher", "commit": "8cfcb22", "script": "grid/trainer.py",
    "backward_study": {
        "n_iterations": 1500,
        "rows": [
            {"code": "official", "backward": "official", "backward_label": "every coordinate",
             "modes_per_seed": [10, 12]},
            {"code": "official", "backward": "valid", "backward_label": "valid parents",
             "modes_per_seed": [6, 8]},
            {"code": "this book", "backward": "official", "backward_label": "every coordinate",
             "modes_per_seed": [11, 11]},
            {"code": "this book", "backward": "valid", "backward_label": "valid parents",
             "modes_per_seed": [7, 7]},
        ],
    },
    "student_fresh_check": {
        "n_iterations": 3, "eval_samples": 20000,
        "rows": [
            {"arm": "teacher", "modes_per_seed": [9, 8], "fresh_modes_per_seed": [0, 1]},
            {"arm": "tb", "modes_per_seed": [3, 2], "fresh_modes_per_seed": [4, 2]},
        ],
    },
    "reference_runs": {
        "ndim": 2, "height": 16, "n_iterations": 3, "eval_samples": 1000,
        "rows": [
            {"arm": "teacher", "modes_per_seed": [5, 7], "fresh_modes_per_seed": [0, 0],
             "eval_l1_mean_per_seed": [1e-5, 3e-5]},
            {"arm": "tb", "modes_per_seed": [1, 2], "fresh_modes_per_seed": [3, 1],
             "eval_l1_mean_per_seed": [2e-5, 2e-5]},
        ],
    },
}  # fmt: skip


def test_official_backward_table_hand_case():
    table = chapter.official_backward_table(OFFICIAL)
    assert table.loc[("official", "every coordinate"), "modes found, per seed"] == "10/12"
    assert table.loc[("official", "every coordinate"), "mean ± SE"] == "11.0 ± 1.0"
    assert table.loc[("this book", "valid parents"), "mean ± SE"] == "7.0 ± 0.0"
    assert len(table) == 4


def test_official_reference_table_puts_each_arm_beside_this_run(teacher_wins):
    table = chapter.official_reference_table(OFFICIAL, teacher_wins)
    assert list(table.index) == [
        ("Teacher", "official"),
        ("Teacher", "this book"),
        ("TB", "official"),
        ("TB", "this book"),
    ]
    assert table.loc[("Teacher", "this book"), "modes found, per seed"] == "6/9"
    assert table.loc[("TB", "official"), "mean ± SE"] == "1.5 ± 0.5"
    fresh = "modes among 1,000 fresh student samples, per seed"
    assert table.loc[("Teacher", "official"), fresh] == "0/0"
    assert table.loc[("Teacher", "this book"), fresh] == "4/6"
    assert table.loc[("Teacher", "official"), "eval L1, mean (×1e-5)"] == "2.000 ± 1.000"
    assert table.loc[("TB", "this book"), "eval L1, mean (×1e-5)"] == "400.000 ± 200.000"
    other = chapter.official_reference_table(OFFICIAL, {**teacher_wins, "n_iterations": 9})
    assert list(other.index) == [("Teacher", "official"), ("TB", "official")]  # not comparable


def test_official_notes_pool_both_codes_and_judge_the_gap():
    notes = chapter.official_notes(OFFICIAL)
    # official P_B: 10, 12, 11, 11 -> 11.0 ± 0.4; valid: 6, 8, 7, 7 -> 7.0 ± 0.4
    assert "1,500 iterations, the teacher arm, 4 runs each" in notes
    assert "finds 11.0 ± 0.4 modes and the valid one 7.0 ± 0.4: a difference of +4.0 ± 0.6" in notes
    assert "the backward policy accounts for the gap" in notes
    close = copy.deepcopy(OFFICIAL)
    close["backward_study"]["rows"][1]["modes_per_seed"] = [12, 10]
    close["backward_study"]["rows"][3]["modes_per_seed"] = [11, 10]
    assert "seed noise cannot be ruled out" in chapter.official_notes(close)


def test_official_fresh_table_hand_case():
    table = chapter.official_fresh_table(OFFICIAL)
    assert list(table.index) == ["Teacher", "TB"]
    assert table.loc["Teacher", "modes among 20,000 fresh student samples, per seed"] == "0/1"
    assert table.loc["TB", "modes found in training, per seed"] == "3/2"
