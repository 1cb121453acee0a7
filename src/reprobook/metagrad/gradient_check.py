"""DPG's policy gradient against the true gradient, on a problem small enough to enumerate.

The paper writes the generator's objective as ``J(theta) = E_{D ~ pi_theta}[Phi(A(D))]`` and
proves that the update with rewards ``tau_i`` approximates its gradient. Here the generator is a
tabular policy over every sequence of a tiny vocabulary (``pi_theta = softmax(theta)``), so the
large-dataset limit of ``J`` is exactly computable: the target trained, full batch, on the
expected loss ``sum_x pi_theta(x) loss_x`` for M steps, and ``Phi`` of the result. Its gradient
in ``theta`` comes from autograd through the whole training (the "true gradient").

DPG's estimate draws n sequences, trains the target on them the same way, takes the exact
``tau_i`` and forms ``sum_i (tau_i - mean tau) grad log pi(x_i)``: the weight of ``x`` in the
loss is ``pi(x)`` in the limit and ``w_i / n`` in the sample, so ``n tau_i`` estimates
``dJ / dpi(x_i)`` and the sum is the score-function form of the chain rule. The mean of the
``tau`` is a baseline, as GRPO subtracts one. We measure the cosine and the relative error of
the two gradients as the number of samples n and the number of inner steps M change.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad

from reprobook.lm.models import GPTConfig, TinyGPT
from reprobook.metagrad.inner import InnerLoop, Params, initial_params, metagradient, train
from reprobook.metagrad.targets import make_target


def all_sequences(vocab: int, length: int) -> Tensor:
    """Every sequence of ``length`` tokens from ``vocab``: ``[vocab ** length, length]``."""
    if vocab < 2 or length < 2:
        raise ValueError(f"need vocab >= 2 and length >= 2, got {vocab} and {length}")
    return torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)


def _full_batch(n: int, steps: int) -> Tensor:
    """A step order that uses every example at every step: ``[steps, n]``."""
    return torch.arange(n).repeat(steps, 1)


def population_objective(
    theta: Tensor, model: nn.Module, start: Params, sequences: Tensor, metric, loop: InnerLoop
) -> Tensor:
    """``Phi`` of the target trained on the expected loss under ``softmax(theta)``."""
    weights = len(sequences) * theta.softmax(0)  # mean_x(w_x loss_x) = sum_x pi(x) loss_x
    trained = train(model, start, sequences, weights, _full_batch(len(sequences), loop.steps), loop)
    return metric(trained)


def true_gradient(
    theta: Tensor, model: nn.Module, start: Params, sequences: Tensor, metric, loop: InnerLoop
) -> Tensor:
    """The exact gradient of ``population_objective`` in ``theta`` (autograd through training)."""
    return grad(population_objective)(theta, model, start, sequences, metric, loop)


def dpg_gradient(
    theta: Tensor,
    model: nn.Module,
    start: Params,
    sequences: Tensor,
    metric,
    loop: InnerLoop,
    n: int,
    generator: torch.Generator,
) -> Tensor:
    """DPG's estimate from ``n`` sampled sequences: ``sum_i (tau_i - mean tau) grad log pi``."""
    policy = theta.softmax(0)
    drawn = torch.multinomial(policy, n, replacement=True, generator=generator)
    tau, _, _ = metagradient(
        model, start, sequences[drawn], metric, _full_batch(n, loop.steps), loop
    )
    score = -policy.expand(n, -1).clone()  # grad_theta log softmax(theta)[x] = e_x - pi
    score[torch.arange(n), drawn] += 1.0
    return ((tau - tau.mean())[:, None] * score).sum(0)


def limit_gradient(
    theta: Tensor, model: nn.Module, start: Params, sequences: Tensor, metric, loop: InnerLoop
) -> Tensor:
    """DPG's formula with every sequence at its expected count: ``sum_x pi_x n tau_x (e_x - pi)``.

    ``tau`` is taken at the population weights; this equals ``true_gradient`` exactly (the chain
    rule through ``w = n softmax(theta)``), the limit DPG's estimate approaches as n grows.
    """
    k = len(sequences)
    policy = theta.softmax(0)
    order = _full_batch(k, loop.steps)
    tau, _, _ = metagradient(model, start, sequences, metric, order, loop, k * policy)
    score = torch.eye(k, dtype=theta.dtype) - policy
    return ((k * policy * tau)[:, None] * score).sum(0)


def agreement(estimate: Tensor, truth: Tensor) -> tuple[float, float]:
    """Cosine similarity and relative error ``|estimate - truth| / |truth|``."""
    cosine = float(torch.nn.functional.cosine_similarity(estimate, truth, dim=0))
    return cosine, float(torch.linalg.norm(estimate - truth) / torch.linalg.norm(truth))


def tiny_problem(seed: int = 0, vocab: int = 8, length: int = 2, d_model: int = 6):
    """A float64 target (1 layer, untied head), every sequence, and a random tabular policy."""
    torch.manual_seed(seed)
    model = TinyGPT(GPTConfig(vocab, d_model, 1, 2, length)).double()
    start = initial_params(model)
    sequences = all_sequences(vocab, length)
    rng = torch.Generator().manual_seed(seed)
    theta = torch.randn(len(sequences), dtype=torch.float64, generator=rng)
    return model, start, sequences, theta


def gradient_study(
    loops: dict[str, InnerLoop], steps: list[int], sample_sizes: list[int], draws: int,
    seed: int = 0, target_name: str = "sixseven",
) -> dict:  # fmt: skip
    """Cosine and relative error of DPG's gradient against the true one, per loop, M and n.

    ``loops`` names inner loops (optimizer and lr; their ``steps`` is replaced by each M);
    ``draws`` independent samples per cell give a mean and its standard error. Also records how
    far ``limit_gradient`` is from ``true_gradient`` (rounding only).
    """
    if draws < 2 or not steps or not sample_sizes or not loops:
        raise ValueError("need draws >= 2 and at least one loop, one M and one n")
    model, start, sequences, theta = tiny_problem(seed)
    metric = make_target(target_name, "head.weight", start).phi
    rng = torch.Generator().manual_seed(seed + 1)
    rows, limit_error = [], 0.0
    for name, base in loops.items():
        for m in steps:
            loop = replace(base, steps=m)
            truth = true_gradient(theta, model, start, sequences, metric, loop)
            limit = limit_gradient(theta, model, start, sequences, metric, loop)
            limit_error = max(limit_error, agreement(limit, truth)[1])
            for n in sample_sizes:
                pairs = np.asarray([
                    agreement(
                        dpg_gradient(theta, model, start, sequences, metric, loop, n, rng), truth
                    )
                    for _ in range(draws)
                ])  # fmt: skip
                cos, rel = pairs.T
                rows.append({
                    "loop": name, "optimizer": loop.optimizer, "lr": loop.lr, "inner_steps": m,
                    "n": n, "cosine_mean": float(cos.mean()),
                    "cosine_se": float(cos.std(ddof=1) / np.sqrt(draws)),
                    "relative_error_median": float(np.median(rel)),
                    "true_gradient_norm": float(torch.linalg.norm(truth)),
                })  # fmt: skip
    return {
        "target": target_name, "n_sequences": len(sequences), "draws": draws, "seed": seed,
        "limit_relative_error": limit_error, "rows": rows,
    }  # fmt: skip
