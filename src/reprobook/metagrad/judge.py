"""A judge of a generator's data that the generator was never optimised against: ordinary SFT
of a fresh target, for much longer.

DPG's rewards come from a target trained for M steps with a functional AdamW (``inner.train``),
and the chapter's curves score held-out data the same way. A generator could learn to please
that short run alone. The judge trains a fresh copy of the pretrained target as anyone would
fine-tune a model: ``torch.optim.AdamW`` on an ``nn.Module``, one pass over many fresh rollouts
in many more steps (the official validation trains on 98,304 rollouts for M = 96), and reads
the same head metrics off the result. What differs from the reward's run is the code, the
length and the data; the optimizer's settings (lr, betas, eps, decay) and the per-step batch
are the same, without ``eps_root``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprobook.metagrad.inner import Params
from reprobook.metagrad.targets import make_target


@dataclass(frozen=True)
class Judge:
    """The judge's training: ``steps`` AdamW steps of ``per_step`` rollouts each (one pass)."""

    steps: int = 96
    per_step: int = 8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("steps", "per_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.eps < 0 or self.weight_decay < 0:
            raise ValueError(
                f"eps and weight_decay must be >= 0, got {self.eps}, {self.weight_decay}"
            )

    @property
    def n_rollouts(self) -> int:
        """How many rollouts one judgement trains on."""
        return self.steps * self.per_step


def sft(model: nn.Module, start: Params, completions: Tensor, judge: Judge) -> nn.Module:
    """A copy of ``model`` at ``start``, fine-tuned on ``completions`` in ``judge.steps`` steps."""
    if completions.dim() != 2 or completions.shape[0] != judge.n_rollouts:
        raise ValueError(
            f"the judge trains on {judge.n_rollouts} rollouts ({judge.steps} steps x "
            f"{judge.per_step}); got completions of shape {tuple(completions.shape)}"
        )
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in fresh.named_parameters():
            parameter.copy_(start[name])
    optimizer = torch.optim.AdamW(
        fresh.parameters(), lr=judge.lr, betas=judge.betas, eps=judge.eps,
        weight_decay=judge.weight_decay,
    )  # fmt: skip
    for rows in completions.split(judge.per_step):
        logits = fresh(rows[:, :-1])
        loss = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return fresh


def judge_data(
    model: nn.Module, start: Params, head_name: str, completions: Tensor, judge: Judge
) -> dict[str, float]:
    """The "67" Phi and pixel accuracy and the head's norm after the judge's SFT on the data."""
    trained = sft(model, start, completions, judge)
    params = {name: p.detach() for name, p in trained.named_parameters()}
    return make_target("sixseven", head_name, start).describe(params)
