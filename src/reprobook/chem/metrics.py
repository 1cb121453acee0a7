"""Structure metrics of generated molecules, as the paper's evaluation (``vis/utils.py``).

- ``mode_curve``: walk the drawn molecules in order; one becomes a new mode when its reward is at
  least the threshold and its Tanimoto similarity to every earlier mode is below ``sim``
  (0.3 in the paper's plots). Returns the number of modes after each draw.
- ``reward_threshold``: the paper's per-target threshold, the 90th percentile of the reward
  over the last draws of every sampler pooled, rounded to two decimals.
- ``top_k``: the k distinct molecules of highest reward among those drawn.
- ``mean_pairwise_similarity``: mean Tanimoto similarity over distinct pairs (1 - diversity).
Tanimoto is on Morgan fingerprints, radius 2, 2,048 bits (``reprobook.chem.space.morgan``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from rdkit import DataStructs


def mode_curve(
    drawn: np.ndarray, reward: np.ndarray, fingerprints: Mapping, threshold: float,
    sim: float = 0.3,
) -> tuple[np.ndarray, list[int]]:  # fmt: skip
    """Modes found after each draw (``[len(drawn)]``) and the modes' molecule indices.

    ``reward[t]`` is the reward of draw t; ``fingerprints[i]`` the fingerprint of molecule i
    (needed for the molecules at or above the threshold only)."""
    if not 0 < sim <= 1:
        raise ValueError(f"sim must be in (0, 1], got {sim}")
    drawn = np.asarray(drawn, dtype=np.int64)
    if len(reward) != len(drawn):
        raise ValueError(f"one reward per draw: {len(reward)} rewards, {len(drawn)} draws")
    curve = np.zeros(len(drawn), dtype=np.int64)
    modes: list[int] = []
    mode_fps: list = []
    seen: set[int] = set()
    for t, i in enumerate(drawn.tolist()):
        if i not in seen and reward[t] >= threshold:
            seen.add(i)
            if (
                not mode_fps
                or max(DataStructs.BulkTanimotoSimilarity(fingerprints[i], mode_fps)) < sim
            ):
                modes.append(i)
                mode_fps.append(fingerprints[i])
        curve[t] = len(modes)
    return curve, modes


def reward_threshold(rewards: Sequence[np.ndarray], window: int, quantile: float = 0.9) -> float:
    """The ``quantile`` of the last ``window`` rewards of each run, pooled, to two decimals."""
    if window < 1 or not 0 < quantile < 1:
        raise ValueError(f"window must be >= 1 and quantile in (0, 1), got {window}, {quantile}")
    pooled = np.concatenate([np.asarray(r)[-window:] for r in rewards])
    return round(float(np.quantile(pooled, quantile)), 2)


def top_k(drawn: np.ndarray, reward: np.ndarray, k: int) -> np.ndarray:
    """The (at most) k distinct drawn molecules of highest reward (``reward[t]`` of draw t),
    best first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(reward) != len(drawn):
        raise ValueError(f"one reward per draw: {len(reward)} rewards, {len(drawn)} draws")
    distinct, first = np.unique(np.asarray(drawn, dtype=np.int64), return_index=True)
    order = np.argsort(-np.asarray(reward)[first], kind="stable")
    return distinct[order[:k]]


def mean_pairwise_similarity(fps: Sequence) -> float:
    """Mean Tanimoto similarity over the distinct pairs of fingerprints ``fps`` (two at least)."""
    fps = list(fps)
    if len(fps) < 2:
        raise ValueError("need at least two molecules")
    total = sum(
        sum(DataStructs.BulkTanimotoSimilarity(fps[a], fps[a + 1 :])) for a in range(len(fps) - 1)
    )
    return total / (len(fps) * (len(fps) - 1) / 2)
