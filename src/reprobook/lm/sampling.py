"""Sampling continuations from a causal LM, and the log-probabilities a policy gradient needs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def sample_continuations(
    model: nn.Module,
    prompts: Tensor,
    n_new: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> Tensor:
    """Append ``n_new`` sampled tokens to each prompt row; returns ``[batch, prompt + n_new]``.

    The model is called on the whole prefix at each step (no cache): the chapters' sequences
    are a few dozen tokens long, where that costs little and keeps any model usable.
    """
    if prompts.dim() != 2 or prompts.shape[1] < 1:
        raise ValueError(f"prompts must be [batch, length >= 1], got {tuple(prompts.shape)}")
    if n_new < 1:
        raise ValueError(f"n_new must be positive, got {n_new}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tokens = prompts
    for _ in range(n_new):
        logits = model(tokens)[:, -1].double() / temperature
        probabilities = logits.softmax(-1)
        nxt = torch.multinomial(probabilities, 1, generator=generator)
        tokens = torch.cat([tokens, nxt], dim=1)
    return tokens


def continuation_logprobs(model: nn.Module, tokens: Tensor, prompt_length: int) -> Tensor:
    """Per-token log-probabilities ``[batch, length - prompt_length]`` of the continuation."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, length], got shape {tuple(tokens.shape)}")
    if not 1 <= prompt_length < tokens.shape[1]:
        raise ValueError(
            f"prompt_length must be in [1, {tokens.shape[1] - 1}], got {prompt_length}"
        )
    logits = model(tokens[:, :-1])[:, prompt_length - 1 :]
    targets = tokens[:, prompt_length:]
    return -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
