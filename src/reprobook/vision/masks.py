"""Object-discovery metrics, as the object-centric literature (and OCLF) computes them.

- **FG-ARI**: the adjusted Rand index between the true instance of each *foreground* pixel and
  the predicted segment (slot) of that pixel; background pixels are left out (OCLF's
  ``ARIMetric(foreground=True)``). An image with one foreground object and one predicted segment
  over it scores 1 (the two partitions agree), as scikit-learn's ``adjusted_rand_score`` says.
- **mBO** (mean best overlap): for every true object, the best IoU over predicted segments,
  averaged over the image's objects, then over images (OCLF's
  ``UnsupervisedMaskIoUMetric(matching="best_overlap")``; the background is not an object).

Masks are integer label maps: truth 0 = background, 1.. = objects; prediction 0..K-1 = slots.
"""

from __future__ import annotations

import numpy as np
import torch


def _check(true: torch.Tensor, pred: torch.Tensor) -> None:
    if true.shape != pred.shape or true.ndim != 3:
        raise ValueError(
            f"true and pred must be label maps of one shape (B, H, W), got {tuple(true.shape)} "
            f"and {tuple(pred.shape)}"
        )
    if true.is_floating_point() or pred.is_floating_point():
        raise ValueError("labels must be integer tensors, got floating point")
    if (true < 0).any() or (pred < 0).any():
        raise ValueError("labels must be non-negative integers")


def _ari(contingency: np.ndarray) -> float:
    n = contingency.sum()
    if n <= 1:
        return 1.0
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    index = comb(contingency).sum()
    rows, cols = comb(contingency.sum(1)).sum(), comb(contingency.sum(0)).sum()
    expected = rows * cols / comb(n)
    maximum = 0.5 * (rows + cols)
    if maximum == expected:  # both partitions trivial: identical by convention
        return 1.0
    return float((index - expected) / (maximum - expected))


def _tables(true: torch.Tensor, pred: torch.Tensor):
    """Per image, the contingency table of true label (rows) against predicted label (columns)."""
    _check(true, pred)
    t, p = true.reshape(len(true), -1).numpy(), pred.reshape(len(pred), -1).numpy()
    n_t, n_p = int(t.max()) + 1, int(p.max()) + 1
    for i in range(len(t)):
        table = np.zeros((n_t, n_p))
        np.add.at(table, (t[i], p[i]), 1)
        yield table


def fg_ari_per_image(true: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """FG-ARI of each image (B,); NaN for an image without foreground pixels."""
    scores = np.full(len(true), np.nan)
    for i, table in enumerate(_tables(true, pred)):
        fg = table[1:]  # the background row left out
        if fg.sum():
            scores[i] = _ari(fg[fg.sum(1) > 0][:, fg.sum(0) > 0])
    return scores


def mbo_per_image(true: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """Mean best overlap of each image (B,); NaN for an image without objects."""
    scores = np.full(len(true), np.nan)
    for i, table in enumerate(_tables(true, pred)):
        size_t, size_p = table.sum(1), table.sum(0)
        objects = np.flatnonzero(size_t[1:] > 0) + 1
        if not len(objects):
            continue
        union = size_t[objects, None] + size_p[None, :] - table[objects]
        scores[i] = float((table[objects] / union).max(1).mean())
    return scores


def segments_per_image(pred: torch.Tensor) -> np.ndarray:
    """How many distinct segments each predicted map (B, H, W) uses: 1 means a collapse."""
    if pred.ndim != 3:
        raise ValueError(f"pred must be label maps (B, H, W), got {tuple(pred.shape)}")
    return np.array([len(torch.unique(p)) for p in pred])


def score(true: torch.Tensor, pred: torch.Tensor) -> dict[str, float]:
    """FG-ARI and mBO averaged over the images that have objects, and the mean number of
    predicted segments per image."""
    return dict(
        fg_ari=float(np.nanmean(fg_ari_per_image(true, pred))),
        mbo=float(np.nanmean(mbo_per_image(true, pred))),
        segments=float(segments_per_image(pred).mean()),
    )
