"""One small training loop for both tasks: AdamW, linear warm-up then cosine decay, clipping."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.std import tqdm


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear from 1/warmup to 1, then cosine down to 0.1 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    model: nn.Module,
    loss_on_batch: Callable[[nn.Module, int], Tensor],
    steps: int,
    lr: float,
    weight_decay: float = 0.05,
    clip: float = 1.0,
    warmup_frac: float = 0.05,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train ``model`` for ``steps`` steps of ``loss_on_batch(model, step)``.

    Returns the training loss per step and, every ``eval_every`` steps (and at the end), the
    value of ``evaluate(model)`` (run under ``torch.no_grad`` in eval mode).
    """
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got {steps}, {lr}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, int(warmup_frac * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, steps, warmup)
    )
    history: dict[str, list[float]] = {"loss": [], "eval_step": [], "eval": []}

    def run_eval(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        with torch.no_grad():
            history["eval"].append(float(evaluate(model)))
        history["eval_step"].append(step)
        model.train()

    model.train()
    for step in tqdm(range(steps), desc=desc, mininterval=10, leave=False):
        loss = loss_on_batch(model, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
        history["loss"].append(loss.item())
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            run_eval(step + 1)
    run_eval(steps)
    return history
