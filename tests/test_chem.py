"""Tests of reprobook.chem: the fragment space, the synthetic biology, the GMC model and reward,
the oracle and the structure metrics. Hand cases on a 2-scaffold, 3-substituent space (162
molecules); networks train a few steps only."""

import math

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs

from reprobook.chem import contrastive, metrics, oracle
from reprobook.chem.biology import make_biology
from reprobook.chem.space import (
    FP_BITS,
    N_SITES,
    FragmentSpace,
    MoleculeCache,
    enumerate_space,
)

SPACE = FragmentSpace(2, 3)


@pytest.fixture(scope="module")
def table():
    return enumerate_space(SPACE)


@pytest.fixture(scope="module")
def biology(table):
    return make_biology(table, np.arange(SPACE.size), n_clusters=3, seed=0)


# --- the space --------------------------------------------------------------------------------


def test_space_size_and_index_round_trip():
    assert SPACE.size == 2 * 3**N_SITES
    index = np.arange(SPACE.size)
    assert (SPACE.index(SPACE.combos(index)) == index).all()
    assert SPACE.combos(1).tolist() == [0, 0, 0, 0, 1]  # last site least significant
    assert SPACE.combos(81).tolist() == [1, 0, 0, 0, 0]


def test_space_rejects_bad_input():
    with pytest.raises(ValueError, match="n_scaffolds"):
        FragmentSpace(9, 3)
    with pytest.raises(ValueError, match="n_substituents"):
        FragmentSpace(2, 1)
    with pytest.raises(ValueError, match="lie in"):
        SPACE.index([[0, 0, 0, 0, 3]])
    with pytest.raises(ValueError, match="last axis"):
        SPACE.index([[0, 0]])
    with pytest.raises(ValueError, match="indices"):
        SPACE.combos(SPACE.size)


def test_molecules_by_hand(table):
    # benzamide scaffold with hydrogen on every site: N-(pyridin-3-yl)benzamide
    expected = Chem.CanonSmiles("O=C(Nc1cccnc1)c1ccccc1")
    assert table.smiles(0) == expected
    # a fluorine on site 1 (para on the benzoyl ring)
    assert table.smiles(int(SPACE.index([0, 1, 0, 0, 0]))) == Chem.CanonSmiles(
        "O=C(Nc1cccnc1)c1ccc(F)cc1"
    )
    assert len(table) == SPACE.size  # enumerate_space checked they are distinct
    fp = table.fingerprint_tensor([0, 1])
    assert fp.shape == (2, FP_BITS) and set(fp.unique().tolist()) <= {0.0, 1.0}
    assert int(fp[0].sum()) == table.fingerprints([0])[0].GetNumOnBits()
    assert table.tanimoto(0, [0])[0] == 1.0
    assert np.allclose(table.descriptors([0])[0, 7], 0)  # no halogen
    assert table.descriptors([int(SPACE.index([0, 1, 1, 0, 0]))])[0, 7] == 2  # two fluorines
    with pytest.raises(ValueError, match="indices"):
        table.rows([SPACE.size])


def test_cache_builds_on_demand_and_forgets():
    cache = MoleculeCache(FragmentSpace(8, 20))
    assert cache.space.size == 8 * 20**4 and len(cache) == 0
    rows = cache.rows([5, 7, 5])
    assert rows.tolist() == [0, 1, 0] and len(cache) == 2
    cache.rows(np.arange(1500))  # grows past the first allocation
    assert cache.descriptors([1499]).shape == (1, 8) and len(cache) == 1500
    smiles = cache.smiles(1499)
    cache.forget_after(2)
    assert len(cache) == 2 and cache.smiles(1499) == smiles  # rebuilt the same


def test_analogue_shells_by_hand():
    target = int(SPACE.index([1, 0, 2, 1, 0]))
    shells = SPACE.analogue_shells(target, SPACE.size)
    assert sum(len(x) for x in shells) == SPACE.size - 1
    assert target not in np.concatenate(shells).tolist()
    for distance, shell in enumerate(shells, start=1):
        changed = (SPACE.combos(shell) != SPACE.combos(target)).sum(1)
        assert (changed == distance).all()
    assert len(shells[0]) == 1 + 4 * 2  # the other scaffold, two other values per site
    assert len(SPACE.analogue_shells(target, 5)) == 1  # the first shell already holds 5
    with pytest.raises(ValueError, match="n must be"):
        SPACE.analogue_shells(target, 0)


# --- the biology ------------------------------------------------------------------------------


def test_biology_profiles(table, biology):
    clusters = biology.cluster(np.arange(SPACE.size))
    assert clusters.shape == (SPACE.size,) and set(clusters.tolist()) == {0, 1, 2}
    rng = np.random.default_rng(0)
    wells = biology.profiles([0, 0], rng)
    assert wells.shape == (2, biology.profile_dim) and not np.allclose(wells[0], wells[1])
    mean = biology.mean_profile([0])[0]
    expected = biology.centroids[clusters[0]] + biology.activity([0])[0] @ biology.mixing
    assert np.allclose(mean, expected)
    with pytest.raises(ValueError, match="n_clusters"):
        make_biology(table, np.arange(SPACE.size), n_clusters=1)
    with pytest.raises(ValueError, match="noise"):
        make_biology(table, np.arange(SPACE.size), noise=-1)


# --- the contrastive model and the reward -----------------------------------------------------


def test_nt_xent_by_hand():
    z_joint = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    z_mod = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0]]), dim=-1)
    t = 0.5
    out = torch.cat([z_joint, z_mod])
    sims = out @ out.T / t
    expected = 0.0
    for i in range(4):
        partner = (i + 2) % 4
        others = [j for j in range(4) if j != i]
        expected += -(sims[i, partner] - torch.logsumexp(sims[i, others], 0))
    assert torch.isclose(contrastive.nt_xent(z_joint, z_mod, t), expected / 4, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        contrastive.nt_xent(z_joint, z_mod, 0.0)
    with pytest.raises(ValueError, match="latents"):
        contrastive.nt_xent(z_joint, z_mod[:1], t)


def test_flat_reward_by_hand():
    z_t = np.array([1.0, 0.0])
    z = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert np.allclose(contrastive.flat_reward(z_t, z), [1.0, 0.5, contrastive.REWARD_MIN])
    angle = np.array([[math.cos(1.0), math.sin(1.0)]])
    assert np.isclose(contrastive.flat_reward(z_t, angle)[0], (math.cos(1.0) + 1) / 2)
    with pytest.raises(ValueError, match="latent sizes"):
        contrastive.flat_reward(z_t, np.zeros((1, 3)))


def test_gmc_trains_and_retrieves(table, biology):
    settings = contrastive.ContrastiveSettings(steps=60, batch_size=32, hidden=32, latent=8)
    index = np.arange(SPACE.size)
    model, losses = contrastive.train_gmc(table, biology, index, settings, seed=0)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    z = contrastive.struct_latents(model, table, [0, 1, 2])
    assert z.shape == (3, 8) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    out = contrastive.retrieval_accuracy(
        model, table, biology, index[:20], np.random.default_rng(0)
    )
    assert 0 <= out["top1"] <= out["top5"] <= 1 and out["chance_top1"] == 1 / 20
    with pytest.raises(ValueError, match="batch_size"):
        contrastive.ContrastiveSettings(batch_size=1)


# --- the oracle -------------------------------------------------------------------------------


def test_oracle(table, biology):
    index = np.arange(0, len(table), 2)
    model = oracle.train_oracle(SPACE, index, biology.cluster(index), seed=0, max_iter=50)
    p = oracle.hit_probability(model, SPACE, [1, 3], int(biology.cluster([1])[0]))
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    assert oracle.count_fingerprints(SPACE, [0]).shape == (1, 2048)
    with pytest.raises(ValueError, match="not among"):
        oracle.hit_probability(model, SPACE, [1], 99)
    with pytest.raises(ValueError, match="differ in length"):
        oracle.train_oracle(SPACE, index, biology.cluster([0, 1, 2]), seed=0)


# --- the metrics ------------------------------------------------------------------------------


def _bits(*on: int):
    fp = DataStructs.ExplicitBitVect(8)
    for b in on:
        fp.SetBit(b)
    return fp


def test_mode_curve_by_hand():
    fps = dict(enumerate([_bits(0, 1), _bits(0, 1, 2), _bits(5, 6), _bits(0, 7), _bits(3)]))
    reward = np.array([0.9, 0.95, 0.9, 0.9, 0.1])
    # 0 is a mode; 1 is similar to 0 (2/3); 2 is new; 0 again is a repeat; 3 has sim 1/3 to 0
    # (>= 0.3, merged); 4 is below the threshold
    drawn = np.array([0, 1, 2, 0, 3, 4])
    curve, modes = metrics.mode_curve(drawn, reward[drawn], fps, threshold=0.5, sim=0.3)
    assert curve.tolist() == [1, 1, 2, 2, 2, 2] and modes == [0, 2]
    curve, modes = metrics.mode_curve([0, 3], reward[[0, 3]], fps, threshold=0.5, sim=0.5)
    assert modes == [0, 3]  # 1/3 < 0.5
    with pytest.raises(ValueError, match="sim"):
        metrics.mode_curve([0], reward[:1], fps, 0.5, sim=0)
    with pytest.raises(ValueError, match="one reward per draw"):
        metrics.mode_curve([0, 1], reward[:1], fps, 0.5)


def test_threshold_top_k_and_similarity():
    assert metrics.reward_threshold([np.arange(11) / 10], window=11) == 0.9
    assert metrics.reward_threshold([np.array([0.0, 1.0]), np.array([0.5])], window=1) == 0.95
    reward = np.array([0.1, 0.9, 0.5])
    drawn = np.array([0, 1, 1, 2])
    assert metrics.top_k(drawn, reward[drawn], 2).tolist() == [1, 2]
    fps = [_bits(0, 1), _bits(0, 1, 2), _bits(5)]
    assert np.isclose(metrics.mean_pairwise_similarity(fps), (2 / 3) / 3)
    with pytest.raises(ValueError, match="two molecules"):
        metrics.mean_pairwise_similarity(fps[:1])
    with pytest.raises(ValueError, match="window"):
        metrics.reward_threshold([reward], window=0)
