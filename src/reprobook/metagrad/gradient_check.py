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
``tau`` is a baseline, as GRPO subtracts one (GRPO also divides by the group's spread, clips
and steps with AdamW; those shape the step, not its direction in expectation, and are not part
of this check). We measure the cosine and the relative error of the two gradients as the
number of samples n and the number of inner steps M change.
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


def _score(policy: Tensor, drawn: Tensor) -> Tensor:
    """``grad_theta log softmax(theta)[x] = e_x - pi`` for each drawn ``x``: ``[len(drawn), K]``."""
    return torch.nn.functional.one_hot(drawn, len(policy)).to(policy.dtype) - policy


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
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the baseline needs two samples), got {n!r}")
    policy = theta.softmax(0)
    drawn = torch.multinomial(policy, n, replacement=True, generator=generator)
    tau, _, _ = metagradient(
        model, start, sequences[drawn], metric, _full_batch(n, loop.steps), loop
    )
    return ((tau - tau.mean())[:, None] * _score(policy, drawn)).sum(0)


def limit_gradient(
    theta: Tensor, model: nn.Module, start: Params, sequences: Tensor, metric, loop: InnerLoop
) -> Tensor:
    """DPG's formula with every sequence at its expected count: ``sum_x pi_x K tau_x (e_x - pi)``
    over the ``K`` sequences.

    ``tau`` is taken at the population weights ``w = K softmax(theta)``; this equals
    ``true_gradient`` exactly (the chain rule through ``w``), the limit that DPG's estimate
    approaches as n grows.
    """
    k = len(sequences)
    policy = theta.softmax(0)
    order = _full_batch(k, loop.steps)
    tau, _, _ = metagradient(model, start, sequences, metric, order, loop, k * policy)
    return ((k * policy * tau)[:, None] * _score(policy, torch.arange(k))).sum(0)


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
    problems: int = 1, target_name: str = "sixseven",
) -> dict:  # fmt: skip
    """Cosine and relative error of DPG's gradient against the true one, per loop, M and n.

    ``loops`` names inner loops (optimizer and lr; their ``steps`` is replaced by each M).
    Each cell pools ``draws`` independent samples on each of ``problems`` problem instances
    (``tiny_problem(seed)`` for seeds 0, 1, ...) into a mean and its standard error. Also
    records how far ``limit_gradient`` is from ``true_gradient`` (rounding only).
    """
    if draws < 2 or problems < 1 or not steps or not sample_sizes or not loops:
        raise ValueError(
            f"need draws >= 2, problems >= 1 and at least one loop, one M and one n; got "
            f"draws={draws}, problems={problems}, {len(loops)} loops, steps={steps}, "
            f"sample_sizes={sample_sizes}"
        )
    instances = [tiny_problem(seed) for seed in range(problems)]
    rows, limit_error = [], 0.0
    for name, base in loops.items():
        for m in steps:
            loop = replace(base, steps=m)
            cells: dict[int, list[tuple[float, float]]] = {n: [] for n in sample_sizes}
            norms = []
            for seed, (model, start, sequences, theta) in enumerate(instances):
                metric = make_target(target_name, "head.weight", start).phi
                truth = true_gradient(theta, model, start, sequences, metric, loop)
                limit = limit_gradient(theta, model, start, sequences, metric, loop)
                limit_error = max(limit_error, agreement(limit, truth)[1])
                norms.append(float(torch.linalg.norm(truth)))
                rng = torch.Generator().manual_seed(1_000 * seed + 1)
                for n in sample_sizes:
                    cells[n] += [
                        agreement(
                            dpg_gradient(theta, model, start, sequences, metric, loop, n, rng),
                            truth,
                        )
                        for _ in range(draws)
                    ]
            for n, pairs in cells.items():
                cos, rel = np.asarray(pairs).T
                rows.append({
                    "loop": name, "optimizer": loop.optimizer, "lr": loop.lr, "inner_steps": m,
                    "n": n, "cosine_mean": float(cos.mean()),
                    "cosine_se": float(cos.std(ddof=1) / np.sqrt(len(cos))),
                    "relative_error_median": float(np.median(rel)),
                    "true_gradient_norm": float(np.mean(norms)),
                })  # fmt: skip
    model, _, sequences, _ = instances[0]
    vocab, d_model = model.head.weight.shape
    return {
        "target": target_name, "n_sequences": len(sequences), "vocab": vocab,
        "length": sequences.shape[1], "d_model": d_model, "draws": draws,
        "problems": problems, "limit_relative_error": limit_error, "rows": rows,
    }  # fmt: skip
