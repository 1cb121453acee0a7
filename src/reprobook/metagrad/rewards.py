"""Rewards for the generator's rollouts, and the GRPO advantages made from them.

- ``exact_rewards``: DPG's reward, ``tau_i = dPhi/dw_i`` through the whole inner training on the
  batch (all prompts' rollouts trained together: the official ``cross_group_batching``).
- ``naive_rewards``: the official naive baseline. The rollouts are cut into "inverse groups",
  group k holding rollout k of every prompt; a fresh target is trained on each group alone, and
  every rollout in it receives that target's Phi. Since all rollouts of a prompt group would
  otherwise tie, the official runs normalise these rewards over the whole batch ("groupless"
  advantages) instead of within each prompt's group.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from reprobook.metagrad.inner import InnerLoop, Params, metagradient, step_order, train_detached
from reprobook.metagrad.targets import Target

ADVANTAGE_EPS = 1e-6  # verl's GRPO epsilon


def group_advantages(rewards: Tensor) -> Tensor:
    """GRPO advantages ``(r - mean) / (std + eps)`` within each row (one prompt's rollouts)."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must be [prompts, rollouts >= 2], got shape {tuple(rewards.shape)}"
        )
    mean, std = rewards.mean(1, keepdim=True), rewards.std(1, keepdim=True)
    return (rewards - mean) / (std + ADVANTAGE_EPS)


def groupless_advantages(rewards: Tensor) -> Tensor:
    """The same normalisation over the whole batch (the official naive baseline's)."""
    if rewards.numel() < 2:
        raise ValueError(f"need at least 2 rewards, got {rewards.numel()}")
    return (rewards - rewards.mean()) / (rewards.std() + ADVANTAGE_EPS)


def exact_rewards(
    model: nn.Module,
    start: Params,
    completions: Tensor,
    target: Target,
    order: Tensor,
    loop: InnerLoop,
) -> tuple[Tensor, Params]:
    """DPG's rewards: the metagradient of Phi in each example's weight. Returns (tau, trained)."""
    tau, _, trained = metagradient(model, start, completions, target.phi, order, loop)
    return tau, trained


def naive_rewards(
    model: nn.Module,
    start: Params,
    completions: Tensor,
    n_prompts: int,
    target: Target,
    loop: InnerLoop,
    generator: torch.Generator,
) -> Tensor:
    """The naive reward: Phi of a target trained on each inverse group alone, per rollout.

    ``completions`` are ordered prompt-major (prompt p's rollouts are rows p*n .. p*n + n-1).
    Each inverse group keeps the per-step batch size of the full run, so it gets
    ``loop.steps * n_prompts / n_examples`` steps (at least one), as the official server
    recomputes M from the smaller batch.
    """
    n_examples = completions.shape[0]
    if n_prompts < 1 or n_examples % n_prompts:
        raise ValueError(f"{n_examples} rollouts do not split into {n_prompts} prompt groups")
    n_rollouts = n_examples // n_prompts
    per_step = n_examples // loop.steps
    if per_step < 1 or n_examples % loop.steps:
        raise ValueError(f"{n_examples} rollouts do not split into {loop.steps} inner steps")
    group_loop = replace(loop, steps=max(1, n_prompts // per_step))
    rewards = torch.empty(n_prompts, n_rollouts, dtype=torch.float64)
    grouped = completions.reshape(n_prompts, n_rollouts, -1)
    for k in range(n_rollouts):
        order = step_order(n_prompts, group_loop, generator)
        trained = train_detached(model, start, grouped[:, k], order, group_loop)
        rewards[:, k] = float(target.phi(trained))
    return rewards
