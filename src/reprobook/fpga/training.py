"""Training (float, then quantization-aware) and evaluation of the segmentation models."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.std import tqdm

from reprobook.fpga.enet import CompressedENet


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` over every pixel."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    index = target.flatten().long() * n_classes + pred.flatten().long()
    counts = torch.bincount(index, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).numpy().astype(np.int64)


def segmentation_scores(confusion: np.ndarray) -> dict[str, object]:
    """Per-class IoU, their mean (Keras ``MeanIoU``: classes absent from both prediction and
    truth are left out of the mean) and pixel accuracy."""
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be square, got shape {confusion.shape}")
    true_pos = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_pos
    present = union > 0
    iou = np.where(present, true_pos / np.where(present, union, 1), np.nan)
    return {
        "miou": float(np.nanmean(iou)) if present.any() else float("nan"),
        "accuracy": float(true_pos.sum() / max(confusion.sum(), 1)),
        "iou": [None if np.isnan(v) else float(v) for v in iou],
    }


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, batch_size: int = 16, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Logits of ``model`` in eval mode, batch by batch (``dtype=float64`` gives the quantized
    model's exact fixed-point arithmetic)."""
    model.eval().to(dtype)
    try:
        return torch.cat(
            [
                model(images[i : i + batch_size].to(dtype)).float()
                for i in range(0, len(images), batch_size)
            ]
        )
    finally:
        model.float()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on a labelled set."""
    pred = predict_logits(model, images).argmax(1)
    return segmentation_scores(confusion_matrix(pred, labels, n_classes))


def train(
    model: CompressedENet,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    desc: str = "train",
    class_weights: torch.Tensor | None = None,
) -> list[float]:
    """AdamW with cosine decay on pixel cross-entropy; returns the loss per step. Works for the
    float model and, once ``set_quantization`` is on, for quantization-aware training.
    ``class_weights`` weight the cross-entropy per class (rare classes count more)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or not 1 <= batch_size <= len(images):
        raise ValueError(f"batch_size must be in 1..{len(images)}, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=desc, leave=False, mininterval=10):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        batch, target = images[index], labels[index]
        flip = torch.rand(batch_size, generator=generator) < 0.5  # horizontal flips
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        target = torch.where(flip[:, None, None], target.flip(-1), target)
        loss = nn.functional.cross_entropy(model(batch), target, weight=class_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses
