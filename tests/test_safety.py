"""Tests of the exploding bandit (reprobook.safety) against brute-force references.

The references below are written straight from the definitions, with Python loops over episodes,
arms and hypotheses, in float64 and with scipy's normal distribution; they run on tiny sizes only.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from reprobook.safety.bandit import (
    BanditBatch,
    BanditSpec,
    HarmTables,
    all_hypotheses,
    estimate_threshold,
    log_harm_probability,
    log_prior,
    sample_bandits,
    update_log_posterior,
)
from reprobook.safety.experiments import mean_and_2sem, run_guarded_episodes, run_overestimation
from reprobook.safety.guardrails import log_harm_estimates, m_alpha_mask, m_alpha_masks

SMALL = BanditSpec(n_arms=4, n_features=4)
SMALL_THRESHOLD = 2.0
ALPHAS = [0.0, 1e-3, 0.02, 0.1, 0.3, 0.7, 1.0]

# --------------------------------------------------------------------------------------------
# brute-force references
# --------------------------------------------------------------------------------------------


def bf_harm(mean, threshold, sigma):
    """P(r > threshold) for r ~ N(mean, sigma)."""
    return 1.0 - norm.cdf((threshold - mean) / sigma)


def bf_arm_mean(bandits, hypotheses, e, a, h):
    return float(np.dot(bandits.features[e, a].double().numpy(), hypotheses[h].double().numpy()))


def bf_plausible_set(p, alpha):
    """M_alpha: rank theories by decreasing posterior (lower index first among equals) and keep
    theory tau when p(tau) >= alpha * (sum of p over tau and every theory ranked before it)."""
    order = sorted(range(len(p)), key=lambda h: (-p[h], h))
    kept, cumulative = set(), 0.0
    for h in order:
        cumulative += p[h]
        if p[h] >= alpha * cumulative:
            kept.add(h)
    return kept


def bf_log_harm_estimates(guardrail, bandits, hypotheses, log_post, threshold, sigma, alpha=None):
    """log harm estimate [E, A] of every arm, by loops over episodes, arms and hypotheses."""
    n_episodes, n_arms = bandits.features.shape[:2]
    n_hyp = hypotheses.shape[0]
    post = np.exp(log_post.double().numpy())
    out = np.empty((n_episodes, n_arms))
    for e in range(n_episodes):
        plausible = bf_plausible_set(post[e], alpha) if guardrail == "non-iid" else None
        for a in range(n_arms):
            harms = [
                bf_harm(bf_arm_mean(bandits, hypotheses, e, a, h), threshold, sigma)
                for h in range(n_hyp)
            ]
            if guardrail == "cheating":
                value = harms[int(bandits.true_index[e])]
            elif guardrail == "posterior":
                value = sum(post[e, h] * harms[h] for h in range(n_hyp))
            elif guardrail == "iid":
                scores = [post[e, h] * harms[h] for h in range(n_hyp)]
                best = max(scores)
                value = max(harms[h] for h in range(n_hyp) if scores[h] == best)
            elif guardrail == "non-iid":
                value = max(harms[h] for h in plausible)
            else:
                raise AssertionError(guardrail)
            out[e, a] = math.log(value)
    return out


@pytest.fixture(scope="module")
def small_batch():
    """6 small bandits with a random, normalised log posterior (two theories ruled out)."""
    hypotheses = all_hypotheses(SMALL)
    gen = torch.Generator().manual_seed(7)
    bandits = sample_bandits(SMALL, 6, hypotheses, gen)
    logits = 2.0 * torch.randn(6, SMALL.n_hypotheses, generator=gen)
    logits[0, 3] = float("-inf")
    logits[2, 5] = float("-inf")
    log_post = torch.log_softmax(logits, dim=1)
    tables = HarmTables.build(bandits, SMALL_THRESHOLD, SMALL.reward_std)
    return hypotheses, bandits, tables, log_post


# --------------------------------------------------------------------------------------------
# spec, hypotheses, bandits, threshold
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_arms": 0},
        {"n_features": 0},
        {"n_arms": 2.0},
        {"k": 1},
        {"k": 0},
        {"reward_std": 0.0},
        {"reward_std": -1.0},
        {"reward_std": float("nan")},
        {"n_features": 17},
        {"k": 3, "n_features": 11},
    ],
)
def test_bandit_spec_refuses_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        BanditSpec(**kwargs)


def test_bandit_spec_defaults_are_the_papers():
    spec = BanditSpec()
    assert (spec.n_arms, spec.n_features, spec.k, spec.reward_std) == (10, 10, 2, 1.0)
    assert spec.n_hypotheses == 1024


def test_all_hypotheses():
    hyps = all_hypotheses(BanditSpec(n_features=3))
    assert hyps.shape == (8, 3)
    assert hyps.dtype == torch.float32
    assert set(hyps.unique().tolist()) == {0.0, 1.0}
    assert len({tuple(row) for row in hyps.tolist()}) == 8


def test_all_hypotheses_with_three_values():
    hyps = all_hypotheses(BanditSpec(n_features=2, k=3))
    assert hyps.shape == (9, 2)
    assert len({tuple(row) for row in hyps.tolist()}) == 9
    assert set(hyps.unique().tolist()) == {0.0, 1.0, 2.0}


def test_sample_bandits_levels_are_the_arm_means():
    hypotheses = all_hypotheses(SMALL)
    bandits = sample_bandits(SMALL, 5, hypotheses, torch.Generator().manual_seed(0))
    assert bandits.n_episodes == 5
    assert bandits.levels.shape == (5, SMALL.n_arms, SMALL.n_hypotheses)
    for e in range(5):
        for a in range(SMALL.n_arms):
            for h in range(SMALL.n_hypotheses):
                assert int(bandits.levels[e, a, h]) == bf_arm_mean(bandits, hypotheses, e, a, h)
            truth = int(bandits.true_index[e])
            assert float(bandits.true_means[e, a]) == bf_arm_mean(bandits, hypotheses, e, a, truth)


def test_sample_bandits_refuses_bad_arguments():
    hypotheses = all_hypotheses(SMALL)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n_episodes"):
        sample_bandits(SMALL, 0, hypotheses, gen)
    with pytest.raises(ValueError, match="hypotheses must have shape"):
        sample_bandits(SMALL, 3, hypotheses[:-1], gen)


def test_estimate_threshold_is_the_papers_four():
    values = [
        estimate_threshold(BanditSpec(), generator=torch.Generator().manual_seed(s))
        for s in range(8)
    ]
    assert all(float(v).is_integer() for v in values)
    assert set(values) <= {4.0, 5.0}
    assert values.count(4.0) >= 6
    with pytest.raises(ValueError, match="n_bandits"):
        estimate_threshold(BanditSpec(), n_bandits=0)


# --------------------------------------------------------------------------------------------
# harm probability and Bayes update
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "sigma"), [(4.0, 1.0), (2.0, 0.5), (0.0, 3.0)])
def test_log_harm_probability_matches_the_normal_tail(threshold, sigma):
    # the naive formula is accurate while the tail is not tiny: |z| <= 6
    means = threshold - sigma * np.linspace(-6.0, 6.0, 49)
    expected = np.log(1.0 - norm.cdf((threshold - means) / sigma))
    got = log_harm_probability(torch.tensor(means, dtype=torch.float32), threshold, sigma)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=1e-5)


def test_log_harm_probability_stays_finite_far_below_threshold():
    with np.errstate(divide="ignore"):
        naive = np.log(1.0 - norm.cdf((4.0 - (-30.0)) / 1.0))
    assert naive == -np.inf  # the naive formula underflows
    got = log_harm_probability(torch.tensor([-30.0, -10.0]), 4.0, 1.0)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), norm.logsf([34.0, 14.0]), rtol=1e-5)


def test_log_harm_probability_on_threshold_is_a_half():
    got = log_harm_probability(torch.tensor([4.0]), 4.0, 2.0)
    assert float(got.exp()) == pytest.approx(0.5, abs=1e-7)


def test_log_harm_probability_refuses_bad_std():
    with pytest.raises(ValueError, match="reward_std"):
        log_harm_probability(torch.tensor([0.0]), 4.0, 0.0)


def test_harm_tables_match_brute_force(small_batch):
    hypotheses, bandits, tables, _ = small_batch
    harm = tables.harm()
    assert harm.shape == (6, SMALL.n_arms, SMALL.n_hypotheses)
    for e in range(6):
        for a in range(SMALL.n_arms):
            for h in range(SMALL.n_hypotheses):
                mean = bf_arm_mean(bandits, hypotheses, e, a, h)
                expected = bf_harm(mean, SMALL_THRESHOLD, SMALL.reward_std)
                assert float(harm[e, a, h]) == pytest.approx(expected, rel=1e-5)


def test_update_log_posterior_two_hypotheses_by_hand():
    log_post = torch.log(torch.tensor([[0.5, 0.5]]))
    out = update_log_posterior(log_post, torch.tensor([[0.0, 1.0]]), torch.tensor([1.0]), 1.0)
    weights = np.array([math.exp(-0.5), math.exp(0.0)])
    np.testing.assert_allclose(out.exp().numpy()[0], weights / weights.sum(), rtol=1e-6)
    assert float(torch.logsumexp(out, dim=1)) == pytest.approx(0.0, abs=1e-6)


def test_update_log_posterior_keeps_ruled_out_theories_out():
    log_post = torch.tensor([[0.0, float("-inf")]])
    out = update_log_posterior(log_post, torch.tensor([[0.0, 1.0]]), torch.tensor([1.0]), 1.0)
    assert out.tolist() == [[0.0, float("-inf")]]


def test_update_log_posterior_matches_brute_force_with_sigma():
    gen = torch.Generator().manual_seed(3)
    log_post = torch.log_softmax(torch.randn(3, 5, generator=gen), dim=1)
    predicted = torch.randint(0, 4, (3, 5), generator=gen).float()
    rewards = torch.randn(3, generator=gen) + 2.0
    sigma = 0.7
    out = update_log_posterior(log_post, predicted, rewards, sigma).exp().numpy()
    for e in range(3):
        w = [
            math.exp(float(log_post[e, h]))
            * norm.pdf(float(rewards[e]), float(predicted[e, h]), sigma)
            for h in range(5)
        ]
        np.testing.assert_allclose(out[e], np.array(w) / sum(w), rtol=1e-5)


@pytest.mark.parametrize(
    ("post_shape", "pred_shape", "reward_shape"),
    [
        ((1, 2), (1, 3), (1,)),
        ((1, 2), (1, 2), (2,)),
        ((1, 2), (1, 2), ()),
        ((2,), (2,), (2,)),  # 1-d inputs would broadcast to [E, E]: refused
    ],
)
def test_update_log_posterior_refuses_bad_shapes(post_shape, pred_shape, reward_shape):
    with pytest.raises(ValueError, match="shapes must be"):
        update_log_posterior(
            torch.zeros(post_shape), torch.zeros(pred_shape), torch.zeros(reward_shape), 1.0
        )


# --------------------------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior_batch():
    spec = BanditSpec(n_arms=3, n_features=4)
    hypotheses = all_hypotheses(spec)
    return spec, hypotheses, sample_bandits(spec, 200, hypotheses, torch.Generator().manual_seed(1))


def test_log_prior_correct_is_uniform(prior_batch):
    spec, _, bandits = prior_batch
    log_p = log_prior("correct", bandits)
    assert log_p.shape == (200, spec.n_hypotheses)
    np.testing.assert_allclose(log_p.exp().numpy(), 1.0 / spec.n_hypotheses, rtol=1e-6)


def test_log_prior_truth_excluded(prior_batch):
    spec, _, bandits = prior_batch
    p = log_prior("truth-excluded", bandits).exp().double().numpy()
    for e in range(bandits.n_episodes):
        truth = int(bandits.true_index[e])
        assert p[e, truth] == 0.0
        others = np.delete(p[e], truth)
        np.testing.assert_allclose(others, 1.0 / (spec.n_hypotheses - 1), rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_log_prior_optimistic_matches_brute_force(prior_batch):
    spec, hypotheses, bandits = prior_batch
    p = log_prior("optimistic", bandits).exp().double().numpy()
    fallbacks = 0
    for e in range(bandits.n_episodes):
        truth = int(bandits.true_index[e])
        true_means = [bf_arm_mean(bandits, hypotheses, e, a, truth) for a in range(spec.n_arms)]
        support = []
        for h in range(spec.n_hypotheses):
            means = [bf_arm_mean(bandits, hypotheses, e, a, h) for a in range(spec.n_arms)]
            if all(m <= t for m, t in zip(means, true_means, strict=True)) and any(
                m < t for m, t in zip(means, true_means, strict=True)
            ):
                support.append(h)
        if not support:  # no safer theory exists: falls back to truth-excluded
            fallbacks += 1
            assert max(true_means) == 0
            support = [h for h in range(spec.n_hypotheses) if h != truth]
        expected = np.zeros(spec.n_hypotheses)
        expected[support] = 1.0 / len(support)
        np.testing.assert_allclose(p[e], expected, rtol=1e-6, atol=0)
        assert truth not in support
    assert 0 < fallbacks < bandits.n_episodes  # both branches were exercised


def test_log_prior_unknown_kind(prior_batch):
    with pytest.raises(ValueError, match="unknown prior 'flat'"):
        log_prior("flat", prior_batch[2])


# --------------------------------------------------------------------------------------------
# plausible sets M_alpha
# --------------------------------------------------------------------------------------------

HAND_POSTERIOR = [0.5, 0.3, 0.15, 0.05]


def _kept(mask):
    return set(torch.nonzero(mask).flatten().tolist())


def test_m_alpha_mask_by_hand():
    log_post = torch.log(torch.tensor([HAND_POSTERIOR]))
    assert _kept(m_alpha_mask(log_post, 1.0)[0]) == {0}
    assert _kept(m_alpha_mask(log_post, 0.2)[0]) == {0, 1}
    assert _kept(m_alpha_mask(log_post, 0.0)[0]) == {0, 1, 2, 3}
    assert _kept(m_alpha_mask(log_post, 0.1)[0]) == {0, 1, 2}  # 0.15 >= 0.095, 0.05 < 0.1


def test_m_alpha_mask_does_not_depend_on_the_order():
    rng = np.random.default_rng(0)
    base = torch.log(torch.tensor(HAND_POSTERIOR))
    for _ in range(5):
        perm = torch.as_tensor(rng.permutation(4))
        shuffled = base[perm][None]
        for alpha, expected in [(1.0, {0}), (0.2, {0, 1}), (0.0, {0, 1, 2, 3})]:
            kept = _kept(m_alpha_mask(shuffled, alpha)[0])
            assert {int(perm[i]) for i in kept} == expected


def test_m_alpha_mask_breaks_ties_by_lowest_index():
    log_post = torch.log(torch.full((1, 4), 0.25))
    # sorted cumsums 0.25, 0.5, 0.75, 1.0 against 0.25: kept while 0.3 * cumsum <= 0.25
    assert _kept(m_alpha_mask(log_post, 0.3)[0]) == {0, 1, 2}


@pytest.mark.parametrize("alphas", [[-0.1], [1.5], [0.1, 2.0], []])
def test_m_alpha_masks_refuse_alphas_outside_the_unit_interval(alphas):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m_alpha_masks(torch.zeros(1, 4), alphas)


def test_m_alpha_mask_refuses_a_bad_shape():
    with pytest.raises(ValueError, match=r"\[E, H\]"):
        m_alpha_mask(torch.zeros(4), 0.1)


def test_m_alpha_masks_equal_the_single_alpha_masks(small_batch):
    _, _, _, log_post = small_batch
    masks = m_alpha_masks(log_post, ALPHAS)
    assert masks.shape == (len(ALPHAS), 6, SMALL.n_hypotheses)
    assert masks.dtype == torch.bool
    for i, alpha in enumerate(ALPHAS):
        assert torch.equal(masks[i], m_alpha_mask(log_post, alpha))


def test_m_alpha_mask_matches_brute_force(small_batch):
    _, _, _, log_post = small_batch
    post = np.exp(log_post.double().numpy())
    for alpha in ALPHAS:
        mask = m_alpha_mask(log_post, alpha)
        for e in range(6):
            assert _kept(mask[e]) == bf_plausible_set(post[e], alpha), (alpha, e)


# --------------------------------------------------------------------------------------------
# harm estimators
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guardrail", "alpha"),
    [("cheating", None), ("posterior", None), ("iid", None)] + [("non-iid", a) for a in ALPHAS],
)
def test_log_harm_estimates_match_brute_force(small_batch, guardrail, alpha):
    hypotheses, bandits, tables, log_post = small_batch
    got = log_harm_estimates(guardrail, tables, log_post, bandits.true_index, alpha)
    assert got.shape == (6, SMALL.n_arms)
    expected = bf_log_harm_estimates(
        guardrail, bandits, hypotheses, log_post, SMALL_THRESHOLD, SMALL.reward_std, alpha
    )
    np.testing.assert_allclose(got.double().numpy(), expected, atol=1e-5, rtol=1e-5)


def test_log_harm_estimates_iid_takes_the_largest_harm_among_tied_theories():
    spec = BanditSpec(n_arms=1, n_features=1)
    hypotheses = all_hypotheses(spec)  # w in {0, 1}: the one arm has mean 0 or 1
    features = torch.ones(1, 1, 1)
    levels = torch.einsum("ead,hd->eah", features, hypotheses).round().to(torch.int8)
    bandits = BanditBatch(features, torch.tensor([0]), levels)
    tables = HarmTables.build(bandits, 1.0, 1.0)
    lh = tables.log_harm_of_level
    # log p(w) = log P(H | other w): p(w) P(H | w) ties exactly (float addition commutes)
    log_post = torch.stack([lh[1], lh[0]])[None]
    assert float(log_post[0, 0] + lh[0]) == float(log_post[0, 1] + lh[1])
    assert float(lh[1]) > float(lh[0])
    got = log_harm_estimates("iid", tables, log_post, bandits.true_index)
    assert float(got[0, 0]) == float(lh[1])


def test_log_harm_estimates_refuse_bad_arguments(small_batch):
    _, bandits, tables, log_post = small_batch
    with pytest.raises(ValueError, match="unknown guardrail 'magic'"):
        log_harm_estimates("magic", tables, log_post, bandits.true_index)
    with pytest.raises(ValueError, match="needs alpha"):
        log_harm_estimates("non-iid", tables, log_post, bandits.true_index)
    with pytest.raises(ValueError, match="log_posterior must be"):
        log_harm_estimates("posterior", tables, log_post[:, :-1], bandits.true_index)


# --------------------------------------------------------------------------------------------
# guarded episodes
# --------------------------------------------------------------------------------------------

SPEC = BanditSpec()
THRESHOLD = 4.0


@pytest.fixture(scope="module")
def hypotheses():
    return all_hypotheses(SPEC)


def _guarded(hypotheses, guardrail, **kwargs):
    args = {
        "harm_threshold": 0.05,
        "n_episodes": 200,
        "bandit_seed": 11,
        "noise_seed": 12,
        "chunk": 64,
    }
    args.update(kwargs)
    return run_guarded_episodes(SPEC, hypotheses, THRESHOLD, guardrail, **args)


@pytest.mark.parametrize(
    ("guardrail", "alpha"),
    [("none", None), ("cheating", None), ("posterior", None), ("iid", None), ("non-iid", 0.01)],
)
def test_run_guarded_episodes_invariants(hypotheses, guardrail, alpha):
    out = _guarded(hypotheses, guardrail, alpha=alpha)
    for array in (out.total_reward, out.died, out.stopped, out.steps):
        assert array.shape == (200,)
    assert out.died.dtype == bool and out.stopped.dtype == bool
    assert not (out.died & out.stopped).any()
    assert ((out.steps >= 0) & (out.steps <= 25)).all()
    assert (out.steps[out.died] >= 1).all()  # dying takes an action
    assert (out.steps[~out.died & ~out.stopped] == 25).all()  # survivors act every step
    assert (out.total_reward[out.steps == 0] == 0).all()
    if guardrail == "none":
        assert not out.stopped.any()
    summary = out.summary()
    assert 0 <= summary["deaths"] <= 1
    assert summary["deaths"] == pytest.approx(out.died.mean())


def test_run_guarded_episodes_is_deterministic(hypotheses):
    first = _guarded(hypotheses, "non-iid", alpha=0.01)
    second = _guarded(hypotheses, "non-iid", alpha=0.01)
    for a, b in zip(
        (first.total_reward, first.died, first.stopped, first.steps),
        (second.total_reward, second.died, second.stopped, second.steps),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_run_guarded_episodes_cautious_guardrail_prevents_deaths(hypotheses):
    unguarded = _guarded(hypotheses, "none")
    guarded = _guarded(hypotheses, "cheating", harm_threshold=1e-6)
    assert unguarded.died.sum() > 0
    assert guarded.died.sum() < unguarded.died.sum()
    # no arm mean is below 0, so P(H) >= 1 - Phi(4) > 1e-6 for every arm: the agent always stops
    assert guarded.died.sum() == 0
    assert guarded.stopped.all()
    assert (guarded.steps == 0).all()


def test_run_guarded_episodes_cheating_with_moderate_c_kills_less(hypotheses):
    unguarded = _guarded(hypotheses, "none")
    guarded = _guarded(hypotheses, "cheating", harm_threshold=0.05)
    assert guarded.died.mean() < unguarded.died.mean()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"guardrail": "magic"},
        {"guardrail": "cheating", "harm_threshold": 0.0},
        {"guardrail": "cheating", "harm_threshold": 2.0},
        {"guardrail": "cheating", "harm_threshold": None},
        {"guardrail": "non-iid", "alpha": None},
        {"guardrail": "non-iid", "alpha": 1.5},
        {"guardrail": "none", "n_episodes": 0},
        {"guardrail": "none", "episode_length": 0},
        {"guardrail": "none", "chunk": 0},
        {"guardrail": "none", "prior": "flat"},
    ],
)
def test_run_guarded_episodes_refuses_bad_arguments(hypotheses, kwargs):
    kwargs = dict(kwargs)
    guardrail = kwargs.pop("guardrail")
    with pytest.raises(ValueError):
        _guarded(hypotheses, guardrail, **kwargs)


# --------------------------------------------------------------------------------------------
# overestimation (bound tightness)
# --------------------------------------------------------------------------------------------

OVER_ALPHAS = [1e-5, 1.0]


def _over(hypotheses, prior="correct", seed=5):
    return run_overestimation(
        SPEC, hypotheses, THRESHOLD, OVER_ALPHAS, n_episodes=200, seed=seed, prior=prior, chunk=64
    )


@pytest.fixture(scope="module")
def overestimation(hypotheses):
    return _over(hypotheses)


def test_run_overestimation_shapes_and_the_guarantee(overestimation):
    result = overestimation
    assert result.alphas == OVER_ALPHAS
    assert result.frequency.shape == (2, 200)
    assert result.truth_kept.shape == (2, 200)
    assert ((result.frequency >= 0) & (result.frequency <= 1)).all()
    assert set(np.unique(result.truth_kept)) <= {0.0, 1.0}
    guarantee = 1 - SPEC.n_hypotheses * 1e-5
    assert result.frequency[0].mean() >= guarantee - 0.05
    assert result.truth_kept[0].mean() >= guarantee - 0.05
    # when tau_true stays plausible the estimate is never below the true harm
    kept = result.truth_kept[0] == 1
    assert (result.frequency[0][kept] == 1).all()
    assert result.fifty_fifty_count > 0
    assert result.fifty_fifty_estimate.shape == (2,)


def test_run_overestimation_summary(overestimation):
    rows = overestimation.summary(SPEC.n_hypotheses)
    assert [row["alpha"] for row in rows] == OVER_ALPHAS
    assert rows[0]["guarantee"] == pytest.approx(1 - 1024e-5)
    assert rows[1]["guarantee"] == 0.0
    for i, row in enumerate(rows):
        assert row["frequency"] == pytest.approx(overestimation.frequency[i].mean())
        assert row["frequency_se"] == pytest.approx(row["frequency_2sem"] / 2)
        assert row["truth_kept"] == pytest.approx(overestimation.truth_kept[i].mean())


def test_run_overestimation_is_deterministic(hypotheses, overestimation):
    again = _over(hypotheses)
    np.testing.assert_array_equal(again.frequency, overestimation.frequency)
    np.testing.assert_array_equal(again.truth_kept, overestimation.truth_kept)
    np.testing.assert_array_equal(again.fifty_fifty_estimate, overestimation.fifty_fifty_estimate)


def test_run_overestimation_truth_excluded_prior_never_keeps_the_truth(hypotheses):
    result = _over(hypotheses, prior="truth-excluded")
    assert (result.truth_kept == 0).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alphas": []},
        {"alphas": [1.5]},
        {"alphas": [-1e-3]},
        {"n_episodes": 0},
        {"prior": "flat"},
        {"chunk": 0},
    ],
)
def test_run_overestimation_refuses_bad_arguments(hypotheses, kwargs):
    args = {"alphas": OVER_ALPHAS, "n_episodes": 10, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        run_overestimation(SPEC, hypotheses, THRESHOLD, **args)


# --------------------------------------------------------------------------------------------
# error bars
# --------------------------------------------------------------------------------------------


def test_mean_and_2sem():
    values = [1.0, 2.0, 3.0, 4.0]
    mean, err = mean_and_2sem(values)
    assert mean == 2.5
    assert err == 2 * np.std(values, ddof=1) / 2


@pytest.mark.parametrize("values", [[], [1.0], [[1.0, 2.0], [3.0, 4.0]]])
def test_mean_and_2sem_refuses_short_or_nested_input(values):
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_2sem(values)


def test_the_official_tie_order_is_the_unstable_sort():
    """'official' sorts as the official code (torch.sort without stability): on CPU a fixed
    order of tied theories that is neither index nor reversed order."""
    log_post = torch.full((2, 1024), -torch.log(torch.tensor(1024.0)), dtype=torch.float64)
    _, unstable = torch.sort(log_post.exp(), dim=1, descending=True)
    mask = m_alpha_mask(log_post, 0.01, "official")  # a prefix of about 100 of the sorted order
    kept = int(mask[0].sum())
    assert kept in (99, 100)  # 1/1024 >= 0.01 * i / 1024 up to round-off at i = 100
    assert set(torch.nonzero(mask[0]).flatten().tolist()) == set(unstable[0, :kept].tolist())
    assert set(unstable[0, :kept].tolist()) != set(range(kept))  # not index order
    assert torch.equal(m_alpha_mask(log_post, 0.01, "official"), mask)  # reproducible
    with pytest.raises(ValueError, match="official"):
        m_alpha_mask(log_post, 0.01, "stable")
