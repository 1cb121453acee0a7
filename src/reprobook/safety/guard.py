"""Safety guard classifiers and their distillation: a small Transformer encoder that reads
``CLS instruction SEP response`` and outputs (safe, unsafe) logits, the knowledge-distillation
loss of HarmAug's released trainer, and the metrics of its evaluation (scikit-learn).

The loss follows ``src/kd_trainer.py`` of the official code: the hard label is
1[teacher unsafe score > 0.5] and, where a soft label p is present,
``loss = 0.5 * (CE(logits, hard) + KL([1 - p, p] || softmax(logits)))`` (``F.kl_div`` of the
student's log-probabilities against the teacher's probabilities, ``batchmean``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedShuffleSplit
from torch import Tensor, nn
from torch.utils.data import WeightedRandomSampler
from torch.utils.flop_counter import FlopCounterMode
from tqdm.std import tqdm


class GuardClassifier(nn.Module):
    """Token + position embeddings -> pre-norm Transformer encoder -> the CLS state -> 2 logits."""

    def __init__(self, vocab: int, d_model: int, n_layers: int, n_heads: int, length: int):
        super().__init__()
        for name, value in dict(vocab=vocab, d_model=d_model, n_layers=n_layers,
                                n_heads=n_heads, length=length).items():  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.length = length
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(length, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 2)

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits ``[batch, 2]`` (safe, unsafe) for inputs ``[batch, length]``."""
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"tokens must be [batch, {self.length}], got {tuple(tokens.shape)}")
        x = self.embed(tokens) + self.position(torch.arange(self.length, device=tokens.device))
        return self.head(self.norm(self.encoder(x)[:, 0]))


def kd_loss(logits: Tensor, soft: Tensor | None, hard: Tensor | None = None) -> Tensor:
    """HarmAug's distillation loss; ``hard`` defaults to 1[soft > 0.5]; CE alone if no ``soft``."""
    if soft is None and hard is None:
        raise ValueError("kd_loss needs a soft label, a hard label, or both")
    if soft is not None and ((soft < 0) | (soft > 1)).any():
        raise ValueError("soft labels must be probabilities in [0, 1]")
    if hard is None:
        hard = (soft > 0.5).long()
    ce = F.cross_entropy(logits, hard)
    if soft is None:
        return ce
    targets = torch.stack([1 - soft, soft], 1)
    return 0.5 * (ce + F.kl_div(F.log_softmax(logits, 1), targets, reduction="batchmean"))


def balanced_weights(hard: Tensor) -> Tensor:
    """Per-example sampling weights 1 / (count of its class): both classes equally likely."""
    counts = torch.bincount(hard, minlength=2).double()
    if (counts == 0).any():
        raise ValueError("class-balanced sampling needs both classes in the data")
    return 1.0 / counts[hard]


def stratified_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices, stratified by label, as the official 10 % split."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    split = StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
    train, val = next(split.split(np.zeros(len(labels)), labels))
    return train, val


def train_guard(
    model: nn.Module,
    inputs: Tensor,
    soft: Tensor,
    steps: int,
    batch: int,
    lr: float,
    generator: torch.Generator,
    warmup: int = 100,
    weight_decay: float = 0.1,
    clip: float = 1.0,
    progress: bool = False,
) -> list[float]:
    """Distil the soft labels into ``model``: class-balanced sampling with replacement, AdamW
    (no decay on biases and norms), linear warm-up then linear decay, gradient clipping."""
    if steps < 1 or batch < 1:
        raise ValueError(f"need steps >= 1 and batch >= 1, got {steps} and {batch}")
    if len(inputs) != len(soft):
        raise ValueError(f"{len(inputs)} inputs but {len(soft)} soft labels")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    hard = (soft > 0.5).long()
    sampler = WeightedRandomSampler(
        balanced_weights(hard), steps * batch, replacement=True, generator=generator
    )
    order = torch.tensor(list(sampler)).view(steps, batch)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
    )
    warm = max(1, min(warmup, steps - 1))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))
    )
    model.train()
    losses = []
    for rows in tqdm(order, desc="guard", disable=not progress, leave=False, mininterval=5):
        loss = kd_loss(model(inputs[rows]), soft[rows], hard[rows])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def unsafe_scores(model: nn.Module, inputs: Tensor, batch: int = 4096) -> np.ndarray:
    """p(unsafe) = softmax(logits)[:, 1], as the official evaluation."""
    model.eval()
    parts = [model(inputs[i : i + batch]).softmax(1)[:, 1] for i in range(0, len(inputs), batch)]
    return torch.cat(parts).double().numpy()


def guard_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """F1, precision and recall at argmax (p > 0.5), AUPRC (average precision), and AUPRC's
    chance level, the positive rate."""
    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        raise ValueError("guard metrics need both safe and unsafe examples")
    predicted = (np.asarray(scores) > 0.5).astype(int)
    return {
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "auprc": float(average_precision_score(labels, scores)),
        "chance": float(labels.mean()),
        "n": int(len(labels)),
    }


@torch.no_grad()
def forward_flops(model: nn.Module, inputs: Tensor) -> float:
    """FLOPs of one forward pass per example, counted by ``torch.utils.flop_counter`` (matrix
    products; the fused fast path of ``nn.TransformerEncoder`` is switched off while counting)."""
    model.train()  # dropout is 0: train mode only routes around the uncounted fused kernel
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    model.eval()
    return counter.get_total_flops() / len(inputs)


@torch.no_grad()
def latency(model: nn.Module, inputs: Tensor, repeats: int = 5) -> float:
    """Median wall-clock seconds per example of a forward pass over ``inputs`` (one batch)."""
    model.eval()
    model(inputs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(inputs)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / len(inputs)
