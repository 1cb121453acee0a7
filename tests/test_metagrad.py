"""Unit tests for reprobook.metagrad: the differentiable inner loop against torch's optimizers,
metagradients against finite differences and a closed form, the official targets, rewards,
GRPO, the chapter's study on a tiny configuration, and its report (claims, tables, numbers)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from reprobook import anchors, report
from reprobook.lm.models import GPTConfig, TinyGPT
from reprobook.metagrad import gradient_check, inner, judge, plots, policy, rewards, study, targets
from reprobook.metagrad import report as chapter

matplotlib.use("Agg")
CHAPTER = "ch03-dataset-policy-gradient"


def model64(vocab=8, d_model=6, seed=0):
    torch.manual_seed(seed)
    return TinyGPT(GPTConfig(vocab, d_model, 1, 2, 8)).double()


def batch(n=6, length=6, vocab=8, seed=0):
    return torch.randint(vocab, (n, length), generator=torch.Generator().manual_seed(seed))


# --- the inner loop -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(optimizer="rmsprop"), "unknown optimizer"),
        (dict(steps=0), "steps"),
        (dict(lr=0.0), "lr"),
        (dict(b2=1.0), "b1 and b2"),
        (dict(eps_root=-1.0), "eps_root"),
    ],
)
def test_inner_loop_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inner.InnerLoop(**kwargs)


def test_step_order_is_a_permutation_in_chunks():
    order = inner.step_order(12, inner.InnerLoop(steps=3), torch.Generator().manual_seed(0))
    assert order.shape == (3, 4)
    assert sorted(order.flatten().tolist()) == list(range(12))
    with pytest.raises(ValueError, match="split evenly"):
        inner.step_order(10, inner.InnerLoop(steps=3), torch.Generator())


def _torch_reference(model, tokens, order, optimizer):
    for chunk in order:
        loss = inner.per_example_loss(model, dict(model.named_parameters()), tokens[chunk]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach() for k, v in model.named_parameters()}


def test_adamw_matches_torch_adamw_when_eps_root_is_zero():
    model, tokens = model64(), batch()
    loop = inner.InnerLoop(steps=3, lr=1e-2, eps_root=0.0)
    order = inner.step_order(6, loop, torch.Generator().manual_seed(1))
    ours = inner.train_detached(model, inner.initial_params(model), tokens, order, loop)
    reference = torch.optim.AdamW(
        model.parameters(), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4
    )
    expected = _torch_reference(model, tokens, order, reference)
    for name in expected:
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-9, atol=1e-12)


def test_sgd_matches_torch_sgd():
    model, tokens = model64(), batch()
    loop = inner.InnerLoop(optimizer="sgd", steps=2, lr=0.3)
    order = inner.step_order(6, loop, torch.Generator().manual_seed(1))
    ours = inner.train_detached(model, inner.initial_params(model), tokens, order, loop)
    expected = _torch_reference(model, tokens, order, torch.optim.SGD(model.parameters(), lr=0.3))
    for name in expected:
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-10, atol=1e-12)


def test_train_does_not_modify_its_start_and_validates():
    model, tokens = model64(), batch()
    start = inner.initial_params(model)
    kept = {k: v.clone() for k, v in start.items()}
    loop = inner.InnerLoop(steps=2)
    order = inner.step_order(6, loop, torch.Generator())
    inner.train_detached(model, start, tokens, order, loop)
    for name in kept:
        assert torch.equal(start[name], kept[name])
    with pytest.raises(ValueError, match="weights"):
        inner.train(model, start, tokens, torch.ones(5, dtype=torch.float64), order, loop)
    with pytest.raises(ValueError, match="order"):
        inner.train(model, start, tokens, torch.ones(6, dtype=torch.float64), order[:1], loop)


def test_weighted_loss_is_the_weighted_mean():
    model, tokens = model64(), batch()
    params = inner.initial_params(model)
    per_example = inner.per_example_loss(model, params, tokens)
    weights = torch.arange(6, dtype=torch.float64)
    got = inner.weighted_loss(model, params, tokens, weights)
    torch.testing.assert_close(got, (weights * per_example).sum() / 6)


def _finite_differences(model, start, tokens, order, loop, phi, h=1e-6):
    ones = torch.ones(tokens.shape[0], dtype=torch.float64)
    out = []
    for i in range(tokens.shape[0]):
        bump = torch.zeros_like(ones)
        bump[i] = h
        plus = phi(inner.train(model, start, tokens, ones + bump, order, loop))
        minus = phi(inner.train(model, start, tokens, ones - bump, order, loop))
        out.append(float(plus - minus) / (2 * h))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("target_name", ["sixseven", "l2_norm"])
def test_metagradient_matches_finite_differences(optimizer, target_name):
    model, tokens = model64(), batch()
    start = inner.initial_params(model)
    target = targets.make_target(target_name, "head.weight", start)
    loop = inner.InnerLoop(optimizer=optimizer, steps=3, lr=1e-2 if optimizer == "adamw" else 0.5)
    order = inner.step_order(6, loop, torch.Generator().manual_seed(3))
    tau, value, trained = inner.metagradient(model, start, tokens, target.phi, order, loop)
    finite = _finite_differences(model, start, tokens, order, loop, target.phi)
    torch.testing.assert_close(tau, finite, rtol=1e-4, atol=1e-9 * finite.abs().max().item())
    assert float(value) == pytest.approx(float(target.phi(trained)))


def test_metagradient_of_one_sgd_step_has_a_closed_form():
    """theta_1 = theta_0 - (lr / n) sum_i w_i g_i, so tau_i = -(lr / n) grad Phi(theta_1) . g_i."""
    model, tokens = model64(), batch(n=4)
    start = inner.initial_params(model)
    target = targets.make_target("l2_norm", "head.weight", start)
    loop = inner.InnerLoop(optimizer="sgd", steps=1, lr=0.2)
    order = torch.arange(4).reshape(1, 4)
    tau, _, trained = inner.metagradient(model, start, tokens, target.phi, order, loop)
    grad_phi = torch.func.grad(target.phi)(trained)
    expected = []
    for i in range(4):
        g = torch.func.grad(lambda p, i=i: inner.per_example_loss(model, p, tokens[i : i + 1])[0])(
            start
        )
        expected.append(-0.2 / 4 * sum((grad_phi[k] * g[k]).sum() for k in g))
    torch.testing.assert_close(tau, torch.stack(expected))


def test_one_adam_step_has_a_nearly_vanishing_metagradient():
    """Why the chapter refuses M < 2: one Adam step from zero moments moves each weight by
    g / (sqrt(g^2 + eps_root) + eps), about lr * sign(g), flat in g except where |g| is as small
    as sqrt(eps_root)."""
    model, tokens = model64(), batch()
    start = inner.initial_params(model)
    target = targets.make_target("sixseven", "head.weight", start)
    one = torch.arange(6).reshape(1, 6)
    order2 = inner.step_order(6, inner.InnerLoop(steps=2), torch.Generator().manual_seed(0))
    for eps_root, ratio in ((1e-9, 0.1), (1e-16, 1e-3)):
        loop1 = inner.InnerLoop(steps=1, eps_root=eps_root)
        loop2 = inner.InnerLoop(steps=2, eps_root=eps_root)
        tau1, _, _ = inner.metagradient(model, start, tokens, target.phi, one, loop1)
        tau2, _, _ = inner.metagradient(model, start, tokens, target.phi, order2, loop2)
        assert tau1.abs().max() < ratio * tau2.abs().max()


def test_eps_root_keeps_the_metagradient_finite():
    """d sqrt(v)/dv is infinite at v = 0, where Adam's second moment sits for any parameter whose
    gradient is exactly zero (token 7 never appears in this batch, so its embedding row gets
    none). Whether that infinity reaches the metagradient as NaN depends on the CPU's kernels
    (NaN on the machines the book was first tested on, finite on an AMD EPYC), so the
    mechanism is checked directly and the metagradient with eps_root > 0, as the paper uses,
    must be finite everywhere."""
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (bare_slope,) = torch.autograd.grad((v + 0.0).sqrt().sum(), v)
    (safe_slope,) = torch.autograd.grad((v + inner.InnerLoop().eps_root).sqrt().sum(), v)
    assert torch.isinf(bare_slope).all() and torch.isfinite(safe_slope).all()
    model, tokens = model64(seed=2), batch(seed=2) % 7  # token 7 absent
    start = inner.initial_params(model)
    target = targets.make_target("l2_norm", "head.weight", start)
    order = inner.step_order(6, inner.InnerLoop(steps=2), torch.Generator().manual_seed(0))
    safe, _, _ = inner.metagradient(
        model, start, tokens, target.phi, order, inner.InnerLoop(steps=2)
    )
    assert torch.isfinite(safe).all()


# --- targets -------------------------------------------------------------------------------


def test_patch_orientation_is_hidden_units_by_tokens():
    head = torch.zeros(10, 8, dtype=torch.float64)  # (vocab, d_model)
    head[4, 2] = 1.0  # token 4, hidden unit 2
    patch = targets.head_patch(head)
    assert patch.shape == (6, 7) and patch[2, 4] == 1.0 and patch.sum() == 1.0
    with pytest.raises(ValueError, match="vocab >= 7"):
        targets.head_patch(torch.zeros(6, 8))
    with pytest.raises(ValueError, match="d_model >= 6"):
        targets.head_patch(torch.zeros(8, 5))


def test_sixseven_phi_and_accuracy_by_hand():
    head0 = torch.randn(9, 7, dtype=torch.float64)
    picture = targets.target_picture()
    assert picture.shape == (6, 7) and set(picture.unique().tolist()) == {-1.0, 1.0}
    assert float(targets.sixseven_phi(head0, head0)) == pytest.approx(-math.log(2))
    moved = head0.clone()
    moved.T[:6, :7] += 0.05 * picture
    assert targets.pixel_accuracy(moved, head0) == 1.0
    assert float(targets.sixseven_phi(moved, head0)) == pytest.approx(-math.log1p(math.exp(-1)))
    flipped = head0.clone()
    flipped.T[:6, :7] -= 0.05 * picture
    flipped.T[0, 0] += 0.1  # one pixel right again
    assert targets.pixel_accuracy(flipped, head0) == pytest.approx(1 / 42)
    with pytest.raises(ValueError, match="differ"):
        targets.sixseven_phi(head0, head0[:8])


def test_pictures_round_trip_through_text():
    picture = torch.tensor([[1, -1, 0], [0, 1, 1]])
    assert targets.picture_to_text(picture) == ["+-0", "0++"]
    assert torch.equal(targets.picture_from_text(["+-0", "0++"]), picture)
    with pytest.raises(ValueError, match="only -1, 0 and"):
        targets.picture_to_text(torch.tensor([[2]]))
    with pytest.raises(ValueError, match="unknown pixel"):
        targets.picture_from_text(["+x"])


def test_l2_target_and_registry():
    head = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert float(targets.l2_phi(head)) == pytest.approx(-5.0)
    start = {"head.weight": torch.randn(9, 7)}
    target = targets.make_target("l2_norm", "head.weight", start)
    described = target.describe(start)
    assert set(described) == {"phi", "pixel_accuracy", "head_norm"}
    assert described["phi"] == pytest.approx(-described["head_norm"])
    with pytest.raises(ValueError, match="unknown target"):
        targets.make_target("qr", "head.weight", start)
    with pytest.raises(ValueError, match="no parameter"):
        targets.make_target("l2_norm", "lm_head.weight", start)
    with pytest.raises(ValueError, match="patch needs"):
        targets.make_target("sixseven", "head.weight", {"head.weight": torch.zeros(9, 5)})


# --- rewards and GRPO ----------------------------------------------------------------------


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 3.0], [2.0, 2.0]], dtype=torch.float64)
    adv = rewards.group_advantages(r)
    s = math.sqrt(2.0)  # unbiased std of (1, 3)
    torch.testing.assert_close(adv[0], torch.tensor([-1 / s, 1 / s], dtype=torch.float64) * (
        s / (s + 1e-6)
    ))  # fmt: skip
    assert torch.equal(adv[1], torch.zeros(2, dtype=torch.float64))  # ties give no signal
    with pytest.raises(ValueError, match="rollouts >= 2"):
        rewards.group_advantages(torch.ones(3, 1))
    flat = rewards.groupless_advantages(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert abs(flat.mean()) < 1e-6 and flat.std() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        rewards.groupless_advantages(torch.ones(1))


def test_naive_rewards_give_each_inverse_group_its_targets_phi():
    model = model64()
    start = inner.initial_params(model)
    target = targets.make_target("sixseven", "head.weight", start)
    completions = batch(n=8)  # 4 prompts x 2 rollouts, prompt-major
    loop = inner.InnerLoop(steps=2, lr=1e-2)  # 4 rollouts per step -> each group of 4: 1 step
    got = rewards.naive_rewards(model, start, completions, 4, target, loop, torch.Generator())
    assert got.shape == (4, 2)
    for k in range(2):
        assert torch.all(got[:, k] == got[0, k])  # one value per inverse group
        group = completions.reshape(4, 2, -1)[:, k]
        one_step = inner.InnerLoop(steps=1, lr=1e-2)
        trained = inner.train_detached(model, start, group, torch.arange(4).reshape(1, 4), one_step)
        assert float(got[0, k]) == pytest.approx(float(target.phi(trained)))
    with pytest.raises(ValueError, match="prompt groups"):
        rewards.naive_rewards(model, start, completions, 3, target, loop, torch.Generator())


def test_exact_rewards_are_the_metagradient():
    model, tokens = model64(), batch()
    start = inner.initial_params(model)
    target = targets.make_target("l2_norm", "head.weight", start)
    loop = inner.InnerLoop(steps=2)
    order = inner.step_order(6, loop, torch.Generator().manual_seed(0))
    tau, trained = rewards.exact_rewards(model, start, tokens, target, order, loop)
    expected, _, _ = inner.metagradient(model, start, tokens, target.phi, order, loop)
    torch.testing.assert_close(tau, expected)
    assert set(trained) == set(start)


def test_clipped_surrogate_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    adv = torch.tensor([1.0, -2.0])
    assert float(policy.clipped_surrogate(logp, logp, adv, 0.2)) == pytest.approx(0.5)
    # ratio 2 on a positive advantage is clipped at 1.2; on a negative one it is not.
    new = logp + math.log(2.0)
    expected = -((1.2 * 1.0) * 2 + (2.0 * -2.0) * 2) / 4
    assert float(policy.clipped_surrogate(new, logp, adv, 0.2)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="shapes"):
        policy.clipped_surrogate(logp, logp, adv[:1], 0.2)


def test_grpo_step_raises_the_likelihood_of_advantaged_sequences():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(6, 8, 1, 2, 8))
    sequences = torch.tensor([[0, 1, 1, 1, 1], [0, 2, 2, 2, 2]])
    advantages = torch.tensor([1.0, -1.0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    from reprobook.lm.sampling import continuation_logprobs

    before = continuation_logprobs(model, sequences, 1).sum(1).detach()
    settings = policy.GRPOSettings()
    for _ in range(5):
        out = policy.grpo_step(model, optimizer, sequences, 1, advantages, settings)
    after = continuation_logprobs(model, sequences, 1).sum(1).detach()
    assert after[0] > before[0] and after[1] < before[1]
    assert set(out) == {"loss", "nll"}
    with pytest.raises(ValueError, match="mini-batches"):
        policy.grpo_step(
            model, optimizer, sequences, 1, advantages, policy.GRPOSettings(minibatches=3)
        )
    with pytest.raises(ValueError, match="clip_ratio"):
        policy.GRPOSettings(clip_ratio=1.5)


# --- the study, on a tiny configuration ----------------------------------------------------

TINY = dict(
    outer_steps=4, inner_steps=2, n_prompts=2, n_rollouts=2, eval_every=2, eval_batches=1,
    cost_repeats=1, sgd_lr_grid=[0.1, 1.0], judge_steps=4, gradient_steps=[2],
    gradient_samples=[16, 64], gradient_draws=2, gradient_problems=1, workers=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_study():
    config = study.resolve_config("smoke", targets=["sixseven", "l2_norm"], **TINY)
    config.update(pretrain_steps_generator=5, pretrain_steps_target=5, stream_tokens=2_000)
    setup = study.prepare(config, 0, progress=False)
    runs, grid_runs = study.run_all(config, {0: setup}, progress=False)
    cost = study.attribution_cost(config, setup)
    fd = study.finite_difference_check(0)
    gradient = study.gradient_check(config)
    metrics = study.build_metrics(
        config, [0], runs, {0: setup.facts}, cost, fd, grid_runs, gradient
    )
    metrics["claims"] = chapter.check_claims(metrics)
    return config, setup, metrics


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(inner_steps=1), "inner_steps"),
        (dict(arms=["dpg", "ppo"]), "arms"),
        (dict(targets=[]), "targets"),
        (dict(n_rollouts=1), "n_rollouts"),
        (dict(n_prompts=3, n_rollouts=3, inner_steps=2), "split evenly"),
        (dict(outer_steps=2.5), "outer_steps"),
        (dict(sgd_lr_grid=[0.01, 1.0]), "must include sgd_lr"),
        (dict(sgd_lr_grid=[0.1, 0.1]), "distinct"),
        (dict(judge_steps=0), "judge_steps"),
    ],
)
def test_resolve_config_rejects_bad_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        study.resolve_config("smoke", **overrides)
    with pytest.raises(ValueError, match="unknown profile"):
        study.resolve_config("huge")


def test_resolve_config_treats_none_model_names_as_built_from_config():
    config = study.resolve_config("full", target_model_name=None)
    assert config.target_model_name == "" and config.n_seeds == 3


def test_study_runs_end_to_end(tiny_study):
    config, setup, metrics = tiny_study
    assert len(metrics["runs"]) == 8
    for run in metrics["runs"]:
        assert len(run["train"]["nll"]) == config.outer_steps
        assert [e["step"] for e in run["eval"]] == [0, 2, 4]
        if run["target"] == "sixseven":
            assert targets.picture_from_text(run["eval"][0]["picture"]).shape == (6, 7)
            assert set(run["train"]) == {"phi", "pixel_accuracy", "nll", "chain_nll"}
        else:
            assert set(run["train"]) == {"head_norm", "nll", "chain_nll"}
        assert all(e["chain_nll"] > 0 for e in run["eval"])
        assert set(run["judge"]) == {"start", "end"}
        assert set(run["judge"]["end"]) == {"phi", "pixel_accuracy", "head_norm", "chain_nll"}
        assert len(run["samples"]["end"]) == min(study.SAMPLES_SHOWN, config.n_prompts)
        assert run["sgd_lr"] == (config.sgd_lr if run["arm"] == "sgd" else None)
        assert run["head_norm_floor"] < run["initial_head_norm"]
        assert set(run["eval"][-1]["sgd"]) == {"phi", "pixel_accuracy", "head_norm"}
    first = [r["eval"][0] for r in metrics["runs"] if r["target"] == "sixseven"]
    assert all(e == first[0] for e in first)  # every arm starts from the same generator
    judged = [r["judge"]["start"] for r in metrics["runs"]]
    assert all(j == judged[0] for j in judged)  # ... and the judge reads it the same way
    grid = metrics["sgd_grid"]
    assert list(grid["per_lr"]) == ["0.1", "1"] and grid["best_lr"] in (0.1, 1.0)
    assert set(metrics["judge"]) == set(metrics["language"]) == {"sixseven", "l2_norm"}
    assert metrics["gradient_check"]["limit_relative_error"] < 1e-8
    assert metrics["cost"]["n_examples"] == 4
    assert 0 <= metrics["cost"]["patch_gradient_share_below_sqrt_eps_root"] <= 1
    sgd = metrics["summary"]["sixseven"]["sgd"]
    assert {"own_minus", "own_minus_p", "own_minus_better", "end_sgd_mean"} <= set(sgd)
    assert set(metrics["summary"]) == {"sixseven", "l2_norm"}
    assert report.can_read(chapter, metrics)
    assert set(metrics["claims"]) >= {
        "tau_matches_finite_differences", "dpg_norm_falls", "dpg_beats_random_sixseven",
        "adam_beats_sgd_inner_loop_sixseven",
    }  # fmt: skip


def test_runs_do_not_depend_on_the_number_of_workers(tiny_study):
    _, setup, metrics = tiny_study
    two = study.resolve_config(
        "smoke", targets=["sixseven"], arms=["dpg", "sgd"], **dict(TINY, workers=2)
    )
    two.update(pretrain_steps_generator=5, pretrain_steps_target=5, stream_tokens=2_000)
    runs, grid = study.run_all(two, {0: setup}, progress=False)
    one = {(r["arm"], r["target"]): r for r in metrics["runs"]}
    for run in runs:
        assert run["train"] == one[run["arm"], run["target"]]["train"]
        assert run["judge"] == one[run["arm"], run["target"]]["judge"]
    assert [r["sgd_lr"] for r in grid] == [1.0]


def test_the_same_arm_and_seed_repeat_exactly(tiny_study):
    config, setup, metrics = tiny_study
    again = study.run_arm(config, setup, "dpg", "sixseven", progress=False)
    first = next(r for r in metrics["runs"] if r["arm"] == "dpg" and r["target"] == "sixseven")
    assert again["train"] == first["train"]
    with pytest.raises(ValueError, match="unknown arm"):
        study.run_arm(config, setup, "ppo", "sixseven", progress=False)


def test_findings_fill_known_anchors_and_notes_read(tiny_study):
    _, _, metrics = tiny_study
    found = chapter.miniature_findings(metrics)
    known = anchors.load_anchors(CHAPTER)
    assert set(found) <= set(known)
    assert {"target_model", "hardware", "sixseven_result", "l2_result"} <= set(found)
    anchors.comparison_table(known, found)
    notes = chapter.reading_notes(metrics)
    assert "DPG" in notes and "Cost" in notes
    assert len(chapter.summary_table(metrics)) == 8
    assert list(chapter.cost_table(metrics["cost"]).columns) == ["ms", "× one inner run"]
    assert chapter.key_number(metrics).startswith("held-out “67” pixel accuracy with DPG")
    numbers = chapter.prose_numbers(metrics)
    assert all(isinstance(v, str) and v and v != chapter.NOT_RUN for v in numbers.values())
    assert numbers["batch_shape"] == "2 prompts × 2 rollouts of 24 tokens"
    assert anchors.load_anchors(CHAPTER)[chapter.KEY_ANCHOR]


def test_report_module_follows_the_protocols(tiny_study):
    assert report.protocol_gaps(chapter, report.ChapterReport) == []
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert chapter.METRICS_VERSION == study.METRICS_VERSION
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.CLAIMS)
    _, _, metrics = tiny_study
    assert set(metrics["claims"]) <= set(chapter.CLAIMS)
    # 3 cost and sanity, 2 per target, judge rise, tuned SGD, 3 gradient checks, and per
    # target 3 comparisons, 3 judge comparisons and Adam against SGD
    assert len(chapter.CLAIMS) == 3 + 2 + 1 + 1 + 3 + 2 * 7


def test_can_read_refuses_metrics_of_an_older_layout(tiny_study):
    _, _, metrics = tiny_study
    assert report.can_read(chapter, metrics)
    assert not report.can_read(chapter, dict(metrics, metrics_version=study.METRICS_VERSION - 1))
    assert not report.can_read(chapter, {k: v for k, v in metrics.items() if k != "claims"})


def test_plots_draw_from_metrics(tiny_study):
    _, _, metrics = tiny_study
    for fig in (
        plots.plot_learning_curves(metrics["runs"]),
        plots.plot_pictures(metrics["runs"]),
        plots.plot_attribution(metrics["cost"]),
    ):
        assert fig.axes and all(ax.get_xlabel() or not ax.get_xticks().size for ax in fig.axes)
    no_67 = [r for r in metrics["runs"] if r["target"] != "sixseven"]
    with pytest.raises(ValueError, match="67"):
        plots.plot_pictures(no_67)


def _metrics(summary, ratio=3.0, fd_error=1e-7):
    return {
        "finite_difference_check": {"max_rel_error": fd_error},
        "cost": {"metagradient_over_inner": ratio, "metagradient_s": 1.0, "leave_one_out_s": 9.0},
        "summary": summary,
    }


def _run(arm, seed, values, target="sixseven"):
    key = study.HEADLINE[target]
    evals = [{"step": s, key: v, "sgd": {key: v - 0.1}} for s, v in enumerate(values)]
    return {"target": target, "arm": arm, "seed": seed, "eval": evals, "seconds": 1.0}


HAND_RUNS = [
    _run("dpg", 0, [0.5, 0.6, 0.7, 0.8, 0.9]),
    _run("dpg", 1, [0.5, 0.6, 0.7, 0.8, 0.9]),
    _run("naive", 0, [0.5, 0.6, 0.7, 0.7, 0.7]),
    _run("naive", 1, [0.5, 0.9, 0.9, 0.9, 0.9]),
    _run("dpg", 0, [5.0, 4.0], "l2_norm"),
    _run("sgd", 0, [5.0, 4.5], "l2_norm"),
]


def _judged(run, start, end):
    key = study.HEADLINE[run["target"]]
    return dict(run, judge={"start": {key: start}, "end": {key: end}})


def test_check_claims_on_hand_made_metrics():
    runs = [
        _judged(_run("dpg", 0, [0.5, 0.9, 0.9, 0.9]), 0.5, 0.8),
        _judged(_run("dpg", 1, [0.5, 0.8, 0.8, 0.8]), 0.5, 0.76),
        _judged(_run("naive", 0, [0.5, 0.95, 0.95, 0.95]), 0.5, 0.6),  # ahead of DPG in seed 0
        _judged(_run("naive", 1, [0.5, 0.6, 0.6, 0.6]), 0.5, 0.6),
        _judged(_run("random", 0, [0.5, 0.5, 0.5, 0.5]), 0.5, 0.5),
        _judged(_run("random", 1, [0.5, 0.5, 0.5, 0.5]), 0.5, 0.9),  # the judge prefers it
        _run("dpg", 0, [5.0, 4.8, 4.8, 4.8], "l2_norm"),
        _run("random", 0, [5.0, 4.9, 4.9, 4.9], "l2_norm"),
    ]
    metrics = _metrics(study.summarize(runs))
    metrics["judge"] = study.summarize_judge(runs)
    claims = chapter.check_claims(metrics)
    assert claims["tau_matches_finite_differences"] and claims["metagradient_within_5x"]
    assert claims["metagradient_cheaper_than_loo"]
    assert claims["dpg_pixel_accuracy_rises"] and claims["dpg_norm_falls"]
    assert not claims["dpg_beats_naive_sixseven"]  # better on average, not in every seed
    assert claims["dpg_beats_random_sixseven"] and claims["dpg_beats_random_l2_norm"]
    assert claims["judge_dpg_pixel_accuracy_rises"]  # +0.3 and +0.26: both at least 0.25
    runs[1] = _judged(_run("dpg", 1, [0.5, 0.8, 0.8, 0.8]), 0.5, 0.7)  # +0.2 in seed 1
    metrics["judge"] = study.summarize_judge(runs)
    assert not chapter.check_claims(metrics)["judge_dpg_pixel_accuracy_rises"]
    assert (
        claims["judge_dpg_beats_naive_sixseven"] and not claims["judge_dpg_beats_random_sixseven"]
    )
    assert "adam_beats_sgd_tuned_sixseven" not in claims  # no grid in these metrics
    worse = chapter.check_claims(_metrics(study.summarize(runs), ratio=6.0, fd_error=1e-3))
    assert not worse["metagradient_within_5x"] and not worse["tau_matches_finite_differences"]
    grid = {"dpg_minus_best": [0.1, -0.01], "dpg_minus_best_better": 1}
    gradient = {
        "limit_relative_error": 1e-12,
        "chapter_steps": 2,
        "rows": [
            {"loop": "sgd", "inner_steps": 2, "n": 64, "cosine_mean": 0.5, "cosine_se": 0.1},
            {"loop": "sgd", "inner_steps": 2, "n": 4096, "cosine_mean": 0.99, "cosine_se": 0.01},
            {"loop": "sgd", "inner_steps": 8, "n": 4096, "cosine_mean": 0.2, "cosine_se": 0.01},
            {"loop": "adamw", "inner_steps": 2, "n": 4096, "cosine_mean": 0.95, "cosine_se": 0.05},
        ],
    }
    more = chapter.check_claims(dict(metrics, sgd_grid=grid, gradient_check=gradient))
    assert not more["adam_beats_sgd_tuned_sixseven"] and more["limit_gradient_is_exact"]
    assert more["dpg_gradient_agrees_sgd"]  # reads M = 2 at the largest n: 0.99 - 2 x 0.01
    assert not more["dpg_gradient_agrees_adamw"]  # 0.95 - 2 x 0.05 < 0.9
    gradient["chapter_steps"] = 8  # the chapter's M: SGD's cosine there is 0.2
    again = chapter.check_claims(dict(metrics, sgd_grid=grid, gradient_check=gradient))
    assert not again["dpg_gradient_agrees_sgd"] and "dpg_gradient_agrees_adamw" not in again


def test_summarize_sgd_grid_picks_the_best_rate_for_sgd():
    def sgd(seed, lr, own):
        run = _run("sgd", seed, [0.5, 0.5])
        run["sgd_lr"] = lr
        for e in run["eval"]:
            e["sgd"]["pixel_accuracy"] = own
        return run

    runs = [
        _run("dpg", 0, [0.5, 0.9]),
        _run("dpg", 1, [0.5, 0.8]),
        sgd(0, 0.1, 0.6),
        sgd(1, 0.1, 0.7),
    ]
    grid = [sgd(0, 1.0, 0.85), sgd(1, 1.0, 0.75)]
    out = study.summarize_sgd_grid(runs, grid)
    assert list(out["per_lr"]) == ["0.1", "1"] and out["best_lr"] == 1.0
    # DPG ends (mean of both evaluations) 0.7 and 0.65; SGD at lr 1 ends 0.85 and 0.75
    assert out["dpg_minus_best"] == pytest.approx([-0.15, -0.1])
    assert out["dpg_minus_best_better"] == 0
    assert study.summarize_sgd_grid(runs[:2], []) == {}
    table = chapter.sgd_grid_table({"sgd_grid": out})
    assert table.loc["1", "best"] == "✓" and table.loc["0.1", "best"] == ""


def test_tokens_text():
    assert chapter.tokens_text([0, 25, 26, 31]) == "az05"
    with pytest.raises(ValueError, match="letters"):
        chapter.tokens_text([40])


# --- the judge and the gradient check ------------------------------------------------------


def test_judge_is_torch_adamw_and_matches_the_functional_loop_without_eps_root():
    model, tokens = model64(), batch(n=6)
    start = inner.initial_params(model)
    settings = judge.Judge(steps=3, per_step=2, lr=1e-2)
    trained = judge.sft(model, start, tokens, settings)
    loop = inner.InnerLoop(steps=3, lr=1e-2, eps_root=0.0)
    order = torch.arange(6).reshape(3, 2)  # the judge takes the rollouts in the order given
    ours = inner.train_detached(model, start, tokens, order, loop)
    for name, parameter in trained.named_parameters():
        torch.testing.assert_close(parameter.detach(), ours[name], rtol=1e-9, atol=1e-12)
    for name, parameter in model.named_parameters():  # the model itself is untouched
        assert torch.equal(parameter.detach(), start[name])
    scores = judge.judge_data(model, start, "head.weight", tokens, settings)
    assert set(scores) == {"phi", "pixel_accuracy", "head_norm"}
    with pytest.raises(ValueError, match="6 rollouts"):
        judge.sft(model, start, tokens[:4], settings)
    with pytest.raises(ValueError, match="steps"):
        judge.Judge(steps=0)


def test_true_gradient_matches_finite_differences_and_the_limit_formula():
    model, start, sequences, theta = gradient_check.tiny_problem(0, vocab=8, length=2)
    assert sequences.shape == (64, 2) and len(set(map(tuple, sequences.tolist()))) == 64
    metric = targets.make_target("sixseven", "head.weight", start).phi
    loop = inner.InnerLoop(steps=2, lr=1e-2)
    truth = gradient_check.true_gradient(theta, model, start, sequences, metric, loop)
    step = 1e-6
    for i in (0, 17, 63):
        bump = torch.zeros_like(theta)
        bump[i] = step
        up = gradient_check.population_objective(
            theta + bump, model, start, sequences, metric, loop
        )
        down = gradient_check.population_objective(
            theta - bump, model, start, sequences, metric, loop
        )
        assert float((up - down) / (2 * step)) == pytest.approx(
            float(truth[i]), rel=1e-4, abs=1e-12
        )
    limit = gradient_check.limit_gradient(theta, model, start, sequences, metric, loop)
    assert gradient_check.agreement(limit, truth)[1] < 1e-10
    with pytest.raises(ValueError, match="vocab >= 2"):
        gradient_check.all_sequences(1, 2)


def test_dpg_gradient_approaches_the_true_one_through_sgd():
    model, start, sequences, theta = gradient_check.tiny_problem(0)
    metric = targets.make_target("sixseven", "head.weight", start).phi
    loop = inner.InnerLoop(optimizer="sgd", steps=2, lr=0.1)
    truth = gradient_check.true_gradient(theta, model, start, sequences, metric, loop)
    rng = torch.Generator().manual_seed(0)
    cosines = {
        n: [
            gradient_check.agreement(
                gradient_check.dpg_gradient(theta, model, start, sequences, metric, loop, n, rng),
                truth,
            )[0]
            for _ in range(3)
        ]
        for n in (32, 8192)
    }
    assert min(cosines[8192]) > 0.95 and sum(cosines[8192]) > sum(cosines[32])
    # ... and its scale: a missing factor of n or K would keep the cosine and fail here
    estimate = gradient_check.dpg_gradient(theta, model, start, sequences, metric, loop, 8192, rng)
    assert gradient_check.agreement(estimate, truth)[1] < 0.3
    out = gradient_check.gradient_study({"sgd": loop}, [2], [64], draws=2, problems=2)
    assert out["limit_relative_error"] < 1e-10 and out["rows"][0]["n"] == 64
    assert (out["vocab"], out["length"], out["n_sequences"], out["problems"]) == (8, 2, 64, 2)
    with pytest.raises(ValueError, match="n must be"):
        gradient_check.dpg_gradient(theta, model, start, sequences, metric, loop, 1, rng)
    with pytest.raises(ValueError, match="draws"):
        gradient_check.gradient_study({"sgd": loop}, [2], [64], draws=1)


def test_summarize_takes_the_last_three_evaluations_and_pairs_seeds():
    summary = study.summarize(HAND_RUNS)
    dpg, naive = summary["sixseven"]["dpg"], summary["sixseven"]["naive"]
    assert dpg["start_mean"] == 0.5 and dpg["end_mean"] == pytest.approx(0.8)
    assert dpg["end_se"] == 0.0 and dpg["seeds"] == [0, 1]
    assert dpg["change"] == pytest.approx([0.3, 0.3])
    assert naive["dpg_minus"] == pytest.approx([0.1, -0.1]) and naive["dpg_minus_better"] == 1
    assert naive["dpg_minus_se"] == pytest.approx(0.1) and naive["dpg_minus_p"] == 1.0
    assert "own_minus" not in naive
    l2 = summary["l2_norm"]["sgd"]  # lower is better: DPG's 4.5 average beats 4.75
    assert l2["dpg_minus"] == pytest.approx([-0.25]) and l2["dpg_minus_better"] == 1
    assert l2["own_minus"] == pytest.approx([-0.15])  # SGD-scored end: 4.75 - 0.1
    assert l2["dpg_minus_p"] is None  # one seed: no test


def _hand_metrics():
    """The hand-made runs above, with the settings, setups and cost the report reads."""
    settings = dict(
        n_prompts=2, n_rollouts=2, completion_length=4, outer_steps=4, inner_steps=2,
        inner_lr=1e-3, sgd_lr=0.1,
    )  # fmt: skip
    cost = {
        "n_examples": 4, "patch_gradient_median": 0.0123, "sqrt_eps_root": math.sqrt(1e-9),
        "metagradient_over_inner": 3.04, "leave_one_out_over_inner": 9.4,
        "spearman_tau_loo": 0.5,
    }  # fmt: skip
    return {
        "seeds": [0, 1],
        "settings": settings,
        "setups": {
            "0": {
                "target_parameters": 1234,
                "generator_parameters": 56789,
                "language_entropy_rate": 1.2345,
            },
        },  # fmt: skip
        "summary": study.summarize(HAND_RUNS),
        "cost": cost,
    }


def test_key_number_and_prose_numbers_on_the_hand_case():
    metrics = _hand_metrics()
    assert chapter.key_number(metrics) == (
        "held-out “67” pixel accuracy with DPG 0.500 ± 0.000 → 0.800 ± 0.000 (2 seeds)"
    )
    numbers = chapter.prose_numbers(metrics)
    assert numbers["target_parameters"] == "1,234" and numbers["generator_parameters"] == "56,789"
    assert numbers["batch_shape"] == "2 prompts × 2 rollouts of 4 tokens"
    assert numbers["batch_size"] == "4" and numbers["group_size"] == "2"
    assert numbers["phi_linear_bound"] == "0.04"  # 20 * 1e-3 * 2
    assert numbers["n_seeds"] == "2" and numbers["n_examples"] == "4"
    assert numbers["patch_gradient_median"] == "1.2e-02" and numbers["sqrt_eps_root"] == "3.2e-05"
    assert numbers["cost_over_inner"] == "3.0×" and numbers["loo_over_inner"] == "9×"
    assert numbers["dpg67_start"] == "0.500 ± 0.000" and numbers["dpg67_end"] == "0.800 ± 0.000"
    assert numbers["dpg_minus_naive_67"].endswith("p = 1.00; DPG better in 1 of 2 seeds")
    assert numbers["dpg_minus_random_67"] == chapter.NOT_RUN  # no random arm in the hand case
    assert numbers["dpg_minus_sgd_own_67"] == chapter.NOT_RUN
    assert numbers["dpg_l2_start"] == "5.000" and numbers["dpg_l2_end"] == "4.500"
    assert numbers["dpg_l2_change"] == "-0.500" and numbers["l2_other_changes"] == "sgd -0.250"
    assert all(isinstance(v, str) and v for v in numbers.values())
    assert numbers["entropy_rate"] == "1.23" and numbers["judge_dpg_67_end"] == chapter.NOT_RUN
    assert numbers["sgd_best_lr"] == numbers["gradient_cosine_sgd"] == chapter.NOT_RUN
    del metrics["summary"]["l2_norm"]  # a run without the l2 target: the same keys, "not run"
    fewer = chapter.prose_numbers(metrics)
    assert set(fewer) == set(numbers)
    assert fewer["dpg_l2_change"] == fewer["l2_other_changes"] == chapter.NOT_RUN
    del metrics["summary"]["sixseven"]
    assert "not run" in chapter.key_number(metrics)


def test_paired_p_values():  # the shared test that summarize uses, on the chapter's cases
    assert report.paired_p([0.1]) is None
    assert report.paired_p([0.0, 0.0]) == 1.0
    assert report.paired_p([0.2, 0.2, 0.2]) == 0.0
    from scipy import stats

    assert report.paired_p([0.1, 0.3, 0.2]) == pytest.approx(
        stats.ttest_1samp([0.1, 0.3, 0.2], 0.0).pvalue
    )


def test_finite_difference_check_agrees():
    check = study.finite_difference_check(1)
    assert check["max_rel_error"] < 1e-4 and len(check["tau"]) == 6


def test_hub_target_runs_through_the_metagradient(saved_gpt2):
    from reprobook.lm.hub import load_causal_lm

    folder, _ = saved_gpt2
    lm = load_causal_lm(str(folder))
    start = inner.initial_params(lm)
    target = targets.make_target("sixseven", lm.head_name(), start)
    loop = inner.InnerLoop(steps=2, lr=1e-2)
    tokens = batch(n=4, vocab=40)
    order = inner.step_order(4, loop, torch.Generator())
    tau, value, _ = inner.metagradient(lm, start, tokens, target.phi, order, loop)
    assert tau.shape == (4,) and torch.isfinite(tau).all() and tau.abs().max() > 0
    # and the chapter's setup accepts it by name
    cfg = study.resolve_config("smoke", target_model_name=str(folder), **TINY)
    cfg.update(pretrain_steps_generator=2, stream_tokens=500)
    setup = study.prepare(cfg, 0, progress=False)
    assert setup.head_name == "model.lm_head.weight" and setup.facts["target_pretrain_loss"] is None
    small = study.resolve_config("smoke", target_model_name=str(folder), **TINY)
    small.update(vocab=50, stream_tokens=500, pretrain_steps_generator=2)
    with pytest.raises(ValueError, match="vocabularies do not nest"):
        study.prepare(small, 0, progress=False)
