"""Next-token pretraining of a small LM on a token stream (the chapters' stand-in for a
pretrained checkpoint)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.std import tqdm  # plain text bars: no ipywidgets needed in the book

from reprobook.lm.corpus import random_windows


def next_token_loss(model: nn.Module, windows: Tensor) -> Tensor:
    """Mean cross-entropy (nats per token) of predicting each token of ``windows`` from its past."""
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), windows[:, 1:])


def pretrain(
    model: nn.Module,
    stream: Tensor,
    steps: int,
    batch: int,
    length: int,
    lr: float,
    generator: torch.Generator,
    progress: bool = False,
) -> list[float]:
    """AdamW next-token training on random windows of ``stream``; returns the loss per step."""
    if steps < 1 or batch < 1 or length < 2:
        raise ValueError(
            f"need steps >= 1, batch >= 1, length >= 2; got {steps}, {batch}, {length}"
        )
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(
        range(steps), desc="pretraining", disable=not progress, leave=False, mininterval=5
    ):
        loss = next_token_loss(model, random_windows(stream, batch, length, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate_loss(model: nn.Module, windows: Tensor) -> float:
    """Next-token loss on fixed ``windows`` (nats per token)."""
    return next_token_loss(model, windows).item()


def document_loss(model: nn.Module, documents: Tensor, pad: int) -> Tensor:
    """Next-token cross-entropy over padded documents ``[n, length]``; padding targets ignored."""
    logits = model(documents[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), documents[:, 1:], ignore_index=pad)


def train_on_documents(
    model: nn.Module,
    documents: Tensor,
    steps: int,
    batch: int,
    lr: float,
    pad: int,
    generator: torch.Generator,
    progress: bool = False,
) -> list[float]:
    """AdamW next-token training on random batches of whole padded documents."""
    if steps < 1 or batch < 1 or len(documents) < 1:
        raise ValueError(f"need steps >= 1, batch >= 1 and documents; got {steps}, {batch}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(range(steps), desc="documents", disable=not progress, leave=False, mininterval=5):
        rows = torch.randint(len(documents), (batch,), generator=generator)
        loss = document_loss(model, documents[rows], pad)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
