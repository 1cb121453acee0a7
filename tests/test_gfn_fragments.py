"""Tests of reprobook.gfn.fragments (the fragment environment on torchgfn, TB and soft Q-learning)
and of chapter 7's study and report (reprobook.gfn.morphology). A 2-scaffold, 3-substituent space
(162 molecules); training runs a few dozen steps with a 16-unit MLP."""

import dataclasses

import numpy as np
import pytest
import torch
from gfn.samplers import Sampler

from reprobook.chem.space import N_SITES, FragmentSpace
from reprobook.gfn import fragments
from reprobook.gfn.morphology import report as chapter
from reprobook.gfn.morphology import study

SPACE = FragmentSpace(2, 3)


def _env(seed: int = 0) -> fragments.FragmentEnv:
    table = np.log(np.random.default_rng(seed).uniform(0.1, 1, SPACE.size))
    env = fragments.FragmentEnv(SPACE, lambda index: table[index])
    env.table = torch.from_numpy(table).float()
    return env


def test_masks_by_hand():
    env = _env()
    n_actions = 2 + N_SITES * 3 + 1
    assert env.n_actions == n_actions
    s0 = env.reset(1)
    assert s0.forward_masks[0].tolist() == [True, True] + [False] * (n_actions - 2)
    after = env.States(torch.tensor([[1, -1, 2, -1, -1]]))
    fwd = after.forward_masks[0].tolist()
    assert fwd[:2] == [False, False] and fwd[-1] is False
    assert fwd[2:5] == [True] * 3 and fwd[5:8] == [False] * 3  # site 2 is filled
    bwd = after.backward_masks[0].tolist()  # only the filled site can be undone, not the scaffold
    assert bwd == [False, False] + [False] * 3 + [False, False, True] + [False] * 6
    full = env.States(torch.tensor([[0, 1, 2, 0, 1]]))
    assert full.forward_masks[0].tolist() == [False] * (n_actions - 1) + [True]
    scaffold_only = env.States(torch.tensor([[1, -1, -1, -1, -1]]))
    assert scaffold_only.backward_masks[0].tolist()[:2] == [False, True]


def test_step_and_backward_step_invert():
    env = _env()
    states = env.States(torch.tensor([[-1, -1, -1, -1, -1], [1, -1, -1, -1, -1]]))
    actions = env.actions_from_tensor(
        torch.tensor([[1], [2 + 3 * 2 + 1]])
    )  # scaffold 1; site 3 = 1
    after = env.step(states, actions)
    assert after.tensor.tolist() == [[1, -1, -1, -1, -1], [1, -1, -1, 1, -1]]
    assert env.backward_step(after, actions).tensor.tolist() == states.tensor.tolist()


def test_rejects_bad_reward():
    with pytest.raises(ValueError, match="function"):
        fragments.FragmentEnv(SPACE, torch.zeros(3))
    env = fragments.FragmentEnv(SPACE, lambda index: np.full(len(index), -np.inf))
    with pytest.raises(ValueError, match="non-finite"):
        env.log_reward(env.States(torch.tensor([[0, 1, 2, 0, 1]])))
    with pytest.raises(ValueError, match="n_iterations"):
        fragments.SamplerSettings(n_iterations=0)


def test_sampled_trajectories_are_complete_molecules():
    env = _env()
    settings = fragments.SamplerSettings(hidden_dim=16)
    gfn = fragments.build_tb(env, settings)
    traj = Sampler(gfn.pf).sample_trajectories(env, n=50)
    final = traj.terminating_states.tensor
    assert (final >= 0).all() and final.shape == (50, 1 + N_SITES)
    assert (traj.terminating_states.forward_masks[:, -1]).all()
    assert torch.allclose(traj.log_rewards, env.table[env.terminal_index(final)])
    assert (traj.actions.is_exit.sum(0) == 1).all()  # 1 scaffold + 4 sites + exit per trajectory
    assert ((~traj.actions.is_dummy).sum(0) == 1 + N_SITES + 1).all()


def test_tb_learns_log_z_and_sql_runs():
    env = _env()
    settings = fragments.SamplerSettings(n_iterations=150, hidden_dim=32, beta=1.0, lr_logz=0.1)
    run = fragments.train_tb(env, settings, seed=0)
    exact = float(torch.logsumexp(env.table, 0))  # Z = sum_x R(x)
    assert run.drawn.shape == (150 * 64,) and abs(run.log_z[-1] - exact) < 0.5
    assert np.mean(run.losses[-20:]) < np.mean(run.losses[:20])
    sql = fragments.train_sql(env, dataclasses.replace(settings, n_iterations=20), seed=0)
    assert sql.drawn.shape == (20 * 64,) and np.isfinite(sql.losses).all()
    uniform = fragments.uniform_sample(SPACE, 1000, np.random.default_rng(0))
    assert uniform.drawn.min() >= 0 and uniform.drawn.max() < SPACE.size
    with pytest.raises(ValueError, match="n must be"):
        fragments.uniform_sample(SPACE, 0, np.random.default_rng(0))


# --- the chapter's study and report -----------------------------------------------------------


def test_config_checks():
    assert study.resolve_config("smoke").beta == 64
    with pytest.raises(ValueError, match="n_targets"):
        study.resolve_config("smoke", n_targets=10)
    with pytest.raises(ValueError, match="beta"):
        study.resolve_config("smoke", beta=0.0)
    with pytest.raises(ValueError, match="half the space"):
        study.resolve_config("smoke", n_substituents=3)


def test_split_and_targets():
    library = np.arange(100, 200)
    parts = study.split(library, 10, np.random.default_rng(0))
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == library.tolist()
    assert len(parts["contrastive"]) == 50 and len(parts["oracle"]) == 10
    with pytest.raises(ValueError, match="oracle_size"):
        study.split(library, 60, np.random.default_rng(0))
    candidates = np.array([10, 11, 12, 13])
    clusters = np.array([0, 0, 1, 2])
    p_own = np.array([0.9, 0.1, 0.5, 0.2])  # 13 is not eligible: the oracle doubts it
    targets = study.choose_targets(clusters, candidates, p_own, 2, np.random.default_rng(0))
    assert sorted(targets) == [10, 12]
    with pytest.raises(ValueError, match="eligible"):
        study.choose_targets(clusters, candidates, p_own, 3, np.random.default_rng(0))


def _fake_metrics(gfn_modes, base_modes, n_runs=3):
    def method(modes, oracle_rate, dissim, last):
        return {
            "modes": modes, "hits": modes * 3, "oracle_hit_rate": oracle_rate,
            "dissimilar_same_cluster_rate": dissim, "top_reward": 0.9, "max_reward": 0.99,
            "last_window_reward": last, "cluster_rate": 0.9, "top_similarity": 0.3,
            "max_similarity": 0.8, "top_pairwise_similarity": 0.4,
        }  # fmt: skip

    runs = []
    for s in range(n_runs):
        targets = []
        for t in range(3):
            targets.append({
                "target_reward": 0.9, "target_reward_by_hand": 0.9,
                "methods": {
                    "gfn": method(gfn_modes + s + t, 0.9, 0.5, 0.9),
                    "sql": method(base_modes, 0.8 - 0.01 * t, 0.3, 0.5),
                    "random": method(base_modes, 0.7 - 0.01 * s, 0.3, 0.5),
                    "similarity": method(base_modes, 0.8, 0.0, 0.5),
                },
            })  # fmt: skip
        runs.append({"retrieval": {"top1": 0.5}, "targets": targets})
    return {"runs": runs}


def test_claims_on_hand_made_metrics():
    claims = chapter.check_claims(_fake_metrics(5, 2))
    assert all(claims.values()), claims
    claims = chapter.check_claims(_fake_metrics(0, 5))
    assert not claims["more_modes"] and claims["oracle_above_random"]
    one_run = _fake_metrics(5, 2, n_runs=1)
    one_run["runs"][0]["retrieval"]["top1"] = 0.02  # 2 of 100 at chance 0.01: not significant
    assert not chapter.check_claims(one_run)["retrieval_above_chance"]


def test_similarity_search_orders_shells_by_tanimoto():
    from reprobook.chem.space import MoleculeCache

    cache = MoleculeCache(SPACE)
    target = int(SPACE.index([0, 1, 2, 0, 1]))
    order = study.similarity_search(cache, target, 30)
    assert len(order) == 30 and len(set(order.tolist())) == 30
    changed = (SPACE.combos(order) != SPACE.combos(target)).sum(1)
    assert (np.diff(changed) >= 0).all()
    first = order[changed == 1]
    sims = cache.tanimoto(target, first)
    assert (np.diff(sims) <= 0).all()


def _committed_full() -> dict:
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "results" / "ch07-morphology-molecules" / "full"
    return json.loads((path / "metrics.json").read_text())


def test_report_reads_the_committed_full_run():
    from reprobook import anchors

    metrics = _committed_full()
    assert chapter.check_claims(metrics) == metrics["claims"]
    prose = chapter.prose_numbers(metrics)
    for name, held in metrics["claims"].items():
        assert prose[f"held_{name}"] == ("holds" if held else "does not hold")
    n_pairs = len(chapter.rows(metrics))
    table = chapter.comparison_table(metrics)
    assert len(table) == 4 * len(chapter.BASELINES)
    assert all(cell.endswith(f"of {n_pairs}") for cell in table["GFlowNet higher in"])
    assert len(chapter.method_table(metrics)) == len(study.METHODS)
    assert len(chapter.target_table(metrics)) == n_pairs
    assert len(chapter.setup_table(metrics)) == len(metrics["runs"])
    ids = set(anchors.load_anchors("ch07-morphology-molecules"))
    assert set(chapter.miniature_findings(metrics)) <= ids
    assert "GFlowNet" in chapter.key_number(metrics)


def test_report_on_ties_claims_nothing():
    import copy

    metrics = copy.deepcopy(_committed_full())
    for target in chapter.rows(metrics):
        for method in chapter.BASELINES:
            target["methods"][method] = copy.deepcopy(target["methods"]["gfn"])
    claims = chapter.check_claims(metrics)
    for name in ("more_modes", "more_hits", "oracle_above_random", "dissimilar_same_phenotype"):
        assert claims[name] is False, name
    table = chapter.comparison_table(metrics)
    assert all(cell.startswith("0 of") for cell in table["GFlowNet higher in"])
    assert all(cell.startswith("+0.00 ± 0.00") for cell in table["GFlowNet minus baseline"])
