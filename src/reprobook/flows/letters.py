"""The letters task: each letter drawn as a point cloud, denoised from a noisy copy of itself.

A letter is rendered with DejaVu Sans (the font that ships with matplotlib, so nothing is
downloaded), its ink pixels become points scaled to [-3, 3], jittered and rotated; the source
population is the target plus Gaussian noise, with known pairs. A *population* is one
(letter, rotation): the flow must learn what each population's points look like without noise,
which depends on the whole population, not on any one point.
"""

from __future__ import annotations

import string
from functools import cache

import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from reprobook.flows.populations import Population

LETTERS = tuple(string.ascii_uppercase)
FONT_SIZE = 100  # the rendering size in pixels (the paper renders Arial at 100)
SCALE = 3.0  # points are scaled to [-SCALE, SCALE]


@cache
def letter_pixels(letter: str, size: int = FONT_SIZE) -> np.ndarray:
    """The ink pixels of ``letter`` as ``(m, 2)`` coordinates (x right, y up), centred and scaled
    so that the larger side spans [-1, 1]."""
    if not (isinstance(letter, str) and len(letter) == 1 and letter in LETTERS):
        raise ValueError(f"letter must be one of A-Z (upper case), got {letter!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16 pixels, got {size!r}")
    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), size)
    side = int(1.6 * size)
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).text((side / 2, side / 2), letter, fill=255, font=font, anchor="mm")
    rows, cols = np.nonzero(np.asarray(image) > 127)
    points = np.stack([cols, -rows], axis=1).astype(np.float64)
    points -= (points.max(0) + points.min(0)) / 2
    return points / (np.abs(points).max() + 0.5)


def rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate ``(n, 2)`` points anticlockwise about the origin."""
    a = np.deg2rad(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rotation.T


def letter_population(
    letter: str,
    degrees: float,
    n_points: int,
    rng: np.random.Generator,
    jitter: float = 0.05,
    source_noise: float = 0.5,
    name: str | None = None,
) -> Population:
    """One population: ``n_points`` ink pixels of ``letter`` (drawn without replacement when
    there are enough), scaled to [-3, 3], jittered by ``jitter``·N(0, I), rotated by ``degrees``;
    the source is the target plus ``source_noise``·N(0, I). ``name`` defaults to
    ``"<letter>@<degrees>"``."""
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    if jitter < 0 or source_noise <= 0:
        raise ValueError(f"jitter must be >= 0 and source_noise > 0, got {jitter}, {source_noise}")
    pixels = letter_pixels(letter)
    idx = rng.choice(len(pixels), size=n_points, replace=n_points > len(pixels))
    x1 = SCALE * pixels[idx] + jitter * rng.standard_normal((n_points, 2))
    x1 = rotate(x1, degrees)
    x0 = x1 + source_noise * rng.standard_normal(x1.shape)
    label = name or f"{letter}@{degrees:g}"
    return Population(x0.astype(np.float32), x1.astype(np.float32), label)


def letters_split(
    train: str, val: str, test: str, n_rotations: int, n_points: int, seed: int
) -> dict[str, list[Population]]:
    """Train, validation and test populations: every letter of each string at ``n_rotations``
    angles drawn uniformly from [0, 360), one per population. Whole letters are held out, as in
    the paper's split (train on 24 letters, validate on X, test on Y)."""
    groups = {"train": train, "val": val, "test": test}
    for name, letters in groups.items():
        bad = [c for c in letters if c not in LETTERS]
        if bad or len(set(letters)) != len(letters):
            raise ValueError(f"{name} letters must be distinct upper-case A-Z, got {letters!r}")
    if not train:
        raise ValueError("need at least one training letter")
    if set(train) & set(val + test):
        raise ValueError(f"held-out letters must not be trained on: {set(train) & set(val + test)}")
    if n_rotations < 1:
        raise ValueError(f"n_rotations must be >= 1, got {n_rotations}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[Population]] = {}
    for split, letters in groups.items():
        out[split] = []
        for c in letters:
            for k in range(n_rotations):  # names carry k: two rotations may round alike
                degrees = round(float(rng.uniform(0, 360)), 1)
                out[split].append(
                    letter_population(c, degrees, n_points, rng, name=f"{c}{k}@{degrees:g}")
                )
    return out
