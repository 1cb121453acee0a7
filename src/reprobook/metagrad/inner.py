"""The target's inner training as a pure, differentiable function of per-example weights.

Dataset Policy Gradient gives every training example a weight ``w_i`` (1 in practice), trains
the target model on ``mean_i(w_i * loss_i)`` for M optimizer steps from a fixed start, and asks
how a target metric Phi of the trained weights changes with each ``w_i``. Everything here is a
function of tensors (``torch.func.functional_call``), so ``torch.func.grad`` can take the exact
derivative dPhi(theta_M(w))/dw through all M steps: a gradient of a function that itself takes
M gradients (reverse mode over reverse mode).

The optimizers follow optax, as the official code uses it: ``optax.adamw`` (bias-corrected
moments, ``sqrt(v_hat + eps_root) + eps`` in the denominator, decoupled weight decay) and plain
``optax.sgd`` (no momentum, no decay). ``eps_root > 0`` matters: d sqrt(v)/dv is infinite at 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

Params = dict[str, Tensor]
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class InnerLoop:
    """How the target is trained on a batch: optimizer, learning rate and number of steps M.

    The batch is split (in a given order) into ``steps`` equal chunks, one per step, as the
    official trainer makes one pass over the rollouts with M = |D| / (microbatch x accum).
    Defaults other than ``lr`` and ``steps`` are the official optax AdamW settings.
    """

    optimizer: str = "adamw"
    steps: int = 8
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    eps_root: float = 1e-9
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}"
            )
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError(f"b1 and b2 must be in [0, 1), got {self.b1}, {self.b2}")
        if self.eps < 0 or self.eps_root < 0 or self.weight_decay < 0:
            raise ValueError("eps, eps_root and weight_decay must be >= 0")


def initial_params(model: nn.Module) -> Params:
    """The model's parameters as a dict of detached tensors: the fixed start of every run."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def per_example_loss(model: nn.Module, params: Params, tokens: Tensor) -> Tensor:
    """Mean next-token cross-entropy of each example (row of ``tokens``), shape ``[n]``."""
    logits = functional_call(model, params, (tokens[:, :-1],))
    per_token = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    return per_token.mean(1)


def weighted_loss(model: nn.Module, params: Params, tokens: Tensor, weights: Tensor) -> Tensor:
    """The SFT loss ``mean_i(w_i * loss_i)``: its derivative in ``w_i`` is what DPG attributes."""
    return (weights * per_example_loss(model, params, tokens)).mean()


def step_order(n_examples: int, loop: InnerLoop, generator: torch.Generator) -> Tensor:
    """A random order of the examples cut into ``loop.steps`` chunks: ``[steps, n / steps]``."""
    if n_examples % loop.steps:
        raise ValueError(
            f"the batch ({n_examples} examples) must split evenly into {loop.steps} steps"
        )
    return torch.randperm(n_examples, generator=generator).reshape(loop.steps, -1)


def train(
    model: nn.Module, start: Params, tokens: Tensor, weights: Tensor, order: Tensor, loop: InnerLoop
) -> Params:
    """The parameters after ``loop.steps`` optimizer steps, a differentiable function of weights.

    ``order[t]`` lists the examples used at step t. Nothing is modified in place.
    """
    if tokens.dim() != 2 or weights.shape != tokens.shape[:1]:
        raise ValueError(
            f"tokens must be [n, length] and weights [n]; got {tuple(tokens.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if order.dim() != 2 or order.shape[0] != loop.steps:
        raise ValueError(f"order must be [steps={loop.steps}, chunk], got {tuple(order.shape)}")
    loss_grad = grad(weighted_loss, argnums=1)
    params = dict(start)
    first = {k: torch.zeros_like(v) for k, v in params.items()}
    second = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(loop.steps):
        chunk = order[t]
        grads = loss_grad(model, params, tokens[chunk], weights[chunk])
        if loop.optimizer == "sgd":
            params = {k: params[k] - loop.lr * grads[k] for k in params}
            continue
        count = t + 1
        for k in params:
            first[k] = loop.b1 * first[k] + (1 - loop.b1) * grads[k]
            second[k] = loop.b2 * second[k] + (1 - loop.b2) * grads[k] ** 2
        for k in params:
            m_hat = first[k] / (1 - loop.b1**count)
            v_hat = second[k] / (1 - loop.b2**count)
            update = m_hat / ((v_hat + loop.eps_root).sqrt() + loop.eps)
            params[k] = params[k] - loop.lr * (update + loop.weight_decay * params[k])
    return params


Metric = Callable[[Params], Tensor]


def metagradient(
    model: nn.Module,
    start: Params,
    tokens: Tensor,
    metric: Metric,
    order: Tensor,
    loop: InnerLoop,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor, Params]:
    """Exact ``tau_i = dPhi(theta_M(w)) / dw_i`` at ``w`` (all ones by default).

    Returns ``(tau, Phi, theta_M)``: one reverse pass through the whole unrolled training,
    whatever the number of examples, and the trained parameters come for free.
    """
    if weights is None:
        weights = torch.ones(tokens.shape[0], dtype=next(iter(start.values())).dtype)

    def phi_of_weights(w: Tensor) -> tuple[Tensor, tuple[Tensor, Params]]:
        trained = train(model, start, tokens, w, order, loop)
        value = metric(trained)
        return value, (value.detach(), {k: v.detach() for k, v in trained.items()})

    tau, (value, trained) = grad(phi_of_weights, has_aux=True)(weights)
    return tau, value, trained


def train_detached(
    model: nn.Module, start: Params, tokens: Tensor, order: Tensor, loop: InnerLoop
) -> Params:
    """``train`` at unit weights without building a graph for a metagradient (cheaper)."""
    weights = torch.ones(tokens.shape[0], dtype=next(iter(start.values())).dtype)
    trained = train(model, start, tokens, weights, order, loop)
    return {k: v.detach() for k, v in trained.items()}
