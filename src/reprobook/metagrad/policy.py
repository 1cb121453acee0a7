"""GRPO for the generator: a clipped policy-gradient step on group-normalised advantages.

As in the official runs (verl, ``adv_estimator: grpo``, KL coefficient 0): no value network,
no reference model, token-mean aggregation of the clipped surrogate, AdamW and gradient
clipping at 1. With one mini-batch per step the update is on-policy and the clip is inactive;
with several, later mini-batches are slightly off-policy and the ratio clip matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reprobook.lm.sampling import continuation_logprobs


@dataclass(frozen=True)
class GRPOSettings:
    """The update's own settings (the optimizer, with its learning rate, is the caller's)."""

    clip_ratio: float = 0.2
    max_grad_norm: float = 1.0
    minibatches: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.clip_ratio < 1:
            raise ValueError(f"clip_ratio must be in (0, 1), got {self.clip_ratio}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.minibatches < 1:
            raise ValueError(f"minibatches must be >= 1, got {self.minibatches}")


def clipped_surrogate(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, clip_ratio: float
) -> Tensor:
    """PPO's clipped loss, token-mean: ``-mean(min(rho * A, clip(rho) * A))``, rho = p / p_old.

    ``logprobs`` and ``old_logprobs`` are ``[batch, tokens]``; ``advantages`` is ``[batch]``
    (one per sequence, shared by its tokens).
    """
    if logprobs.shape != old_logprobs.shape or advantages.shape != logprobs.shape[:1]:
        raise ValueError(
            f"shapes differ: logprobs {tuple(logprobs.shape)}, old {tuple(old_logprobs.shape)}, "
            f"advantages {tuple(advantages.shape)}"
        )
    ratio = (logprobs - old_logprobs).exp()
    adv = advantages[:, None].to(logprobs.dtype)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_ratio, 1 + clip_ratio) * adv
    return -torch.minimum(unclipped, clipped).mean()


def grpo_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sequences: Tensor,
    prompt_length: int,
    advantages: Tensor,
    settings: GRPOSettings,
) -> dict[str, float]:
    """One GRPO update of ``model`` on sampled ``sequences``.

    Returns the mean surrogate loss and the mean negative log-probability of the sampled
    continuation tokens before the update (an entropy estimate of the generator, in nats).
    """
    if sequences.shape[0] % settings.minibatches:
        raise ValueError(
            f"{sequences.shape[0]} sequences do not split into {settings.minibatches} mini-batches"
        )
    with torch.no_grad():
        old = continuation_logprobs(model, sequences, prompt_length)
    losses = []
    for rows in torch.arange(sequences.shape[0]).chunk(settings.minibatches):
        logprobs = continuation_logprobs(model, sequences[rows], prompt_length)
        loss = clipped_surrogate(logprobs, old[rows], advantages[rows], settings.clip_ratio)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
    return {"loss": sum(losses) / len(losses), "nll": float(-old.mean())}
