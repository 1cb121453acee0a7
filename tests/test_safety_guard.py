"""Unit tests of reprobook.safety.guard: the distillation loss on hand cases and against its
definition, class balance, the split, the metrics against hand-computed values, training on a
learnable toy task, and the cost counters."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reprobook.lm.models import count_parameters
from reprobook.safety import guard


def test_kd_loss_is_half_ce_plus_kl():
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    soft = torch.tensor([0.2, 0.9])
    q = logits.softmax(1)
    ce = -(math.log(q[0, 0]) + math.log(q[1, 1])) / 2
    p = torch.stack([1 - soft, soft], 1)
    kl = float((p * (p.log() - q.log())).sum(1).mean())  # KL(teacher || student)
    assert guard.kd_loss(logits, soft).item() == pytest.approx(0.5 * (ce + kl), rel=1e-6)
    # no soft label: plain cross-entropy on the hard label
    hard = torch.tensor([0, 1])
    assert guard.kd_loss(logits, None, hard).item() == pytest.approx(ce, rel=1e-6)
    # a hard 0/1 soft label makes the KL term equal to the CE: the loss is the CE
    assert guard.kd_loss(logits, hard.float()).item() == pytest.approx(ce, rel=1e-5)
    with pytest.raises(ValueError, match="probabilities"):
        guard.kd_loss(logits, torch.tensor([1.5, 0.0]))
    with pytest.raises(ValueError, match="needs"):
        guard.kd_loss(logits, None)


def test_kd_loss_gradient_matches_finite_differences():
    logits = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.double, requires_grad=True)
    soft = torch.tensor([0.7, 0.1], dtype=torch.double)
    assert torch.autograd.gradcheck(lambda x: guard.kd_loss(x, soft), (logits,))
    # at the teacher's own distribution the KL gradient vanishes, the CE's does not
    target = torch.tensor([[0.3, 0.7]], dtype=torch.double).log().requires_grad_()
    F.kl_div(F.log_softmax(target, 1), torch.tensor([[0.3, 0.7]], dtype=torch.double),
             reduction="batchmean").backward()  # fmt: skip
    assert target.grad.abs().max() < 1e-12


def test_balanced_weights_and_split():
    hard = torch.tensor([0, 0, 0, 1])
    w = guard.balanced_weights(hard)
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    with pytest.raises(ValueError, match="both classes"):
        guard.balanced_weights(torch.tensor([1, 1]))
    labels = np.array([0] * 90 + [1] * 10)
    train, val = guard.stratified_split(labels, 0.1, 0)
    assert len(val) == 10 and labels[val].sum() == 1 and not set(train) & set(val)
    with pytest.raises(ValueError, match="share"):
        guard.stratified_split(labels, 1.0, 0)


def test_metrics_on_a_hand_case():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.1])
    m = guard.guard_metrics(scores, labels)
    # predicted 1, 1, 0, 0: precision 1/2, recall 1/2
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    # ranking 1, 0, 1, 0: precision 1 at the first positive, 2/3 at the second
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["chance"] == 0.5 and m["n"] == 4
    with pytest.raises(ValueError, match="both"):
        guard.guard_metrics(scores, np.zeros(4))


def test_classifier_learns_a_token_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(10, (2000, 6), generator=g)
    y = ((x == 3).any(1) & (x == 7).any(1)).float()  # a conjunction of two tokens
    model = guard.GuardClassifier(10, 32, 2, 2, 6)
    losses = guard.train_guard(model, x, y, 300, 128, 3e-3, g, warmup=20)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    metrics = guard.guard_metrics(guard.unsafe_scores(model, x), y.numpy())
    assert metrics["auprc"] > 0.95
    with pytest.raises(ValueError, match="tokens must"):
        model(x[:, :5])
    with pytest.raises(ValueError, match="divisible"):
        guard.GuardClassifier(10, 30, 1, 4, 6)
    with pytest.raises(ValueError, match="soft labels"):
        guard.train_guard(model, x, y[:5], 1, 4, 1e-3, g)


def test_flops_and_latency():
    small = guard.GuardClassifier(10, 16, 1, 2, 6)
    big = guard.GuardClassifier(10, 64, 2, 2, 6)
    x = torch.randint(10, (8, 6))
    f_small, f_big = guard.forward_flops(small, x), guard.forward_flops(big, x)
    # the head and the per-layer matmuls: at least 2 * 6 tokens * (4 d^2 + 8 d^2) per layer
    assert f_small >= 2 * 6 * 12 * 16**2
    assert f_big > 8 * f_small
    assert guard.latency(small, x, repeats=2) > 0
    assert count_parameters(big) > count_parameters(small)
