"""Procedural street scenes: a stand-in for Cityscapes with the paper's four classes.

Cityscapes cannot be downloaded here, so every image is drawn from a small generative model of
a street seen from a car: sky and buildings above a horizon, a road narrowing to a vanishing
point, cars on the road and people on the pavement, each scaled by perspective, drawn far to
near (so near objects occlude far ones), with lighting jitter and pixel noise. The labels are
the paper's classes: 0 background (sky, buildings, pavement), 1 road, 2 car, 3 person.

Readers who have Cityscapes (it needs a registration, so nothing here downloads it) can load
their local copy with :func:`load_cityscapes`, which maps it to the same four classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

CLASSES = ("background", "road", "car", "person")
PAPER_HW = (152, 240)  # the paper's input, height x width
CITYSCAPES_CLASS_IDS = {7: 1, 26: 2, 24: 3}  # Cityscapes label ids: road, car, person
CITYSCAPES_SPLITS = ("train", "val", "test")


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value < 16 or value % 8:
            raise ValueError(f"{name} must be a multiple of 8 and at least 16, got {value!r}")


def _paint(image, labels, mask, color, label, rng, texture=0.04):
    shade = rng.normal(0.0, texture, size=mask.sum())[:, None]
    image[mask] = np.clip(color[None, :] + shade, 0, 1)
    labels[mask] = label


def draw_scene(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an image (H, W, 3) in [0, 1] (float32) and its labels (H, W) (uint8)."""
    _check_size(height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    labels = np.zeros((height, width), np.uint8)
    horizon = rng.uniform(0.32, 0.5) * height
    vanish_x = rng.uniform(0.3, 0.7) * width
    # Sky: a vertical gradient; buildings: boxes standing on the horizon.
    sky_top, sky_low = rng.uniform(0.4, 0.9, 3), rng.uniform(0.6, 1.0, 3)
    t = (ys / max(horizon, 1.0)).clip(0, 1)[..., None]
    image[:] = sky_top * (1 - t) + sky_low * t
    x = 0.0
    while x < width:
        w = rng.uniform(0.08, 0.25) * width
        h = rng.uniform(0.1, 0.35) * height
        mask = (xs >= x) & (xs < x + w) & (ys >= horizon - h) & (ys < horizon + 2)
        _paint(image, labels, mask, rng.uniform(0.2, 0.8, 3), 0, rng)
        x += w + rng.uniform(0, 0.05) * width
    # Pavement: everything below the horizon; the road: a trapezoid towards the vanishing point.
    below = ys >= horizon
    _paint(image, labels, below, rng.uniform(0.45, 0.75, 3), 0, rng)
    depth = ((ys - horizon) / (height - horizon)).clip(0, 1)  # 0 at the horizon, 1 at the bottom
    half_road = depth * rng.uniform(0.45, 0.8) * width
    road = below & (np.abs(xs - vanish_x) <= half_road)
    _paint(image, labels, road, np.full(3, rng.uniform(0.2, 0.45)), 1, rng)
    dashes = (
        road
        & (np.abs(xs - vanish_x) <= 0.015 * width * depth + 0.3)
        & (np.sin(ys / 3.0 + rng.uniform(0, 6)) > 0.3)
    )
    image[dashes] = rng.uniform(0.8, 1.0)
    # Objects, each at a depth d in (0, 1]; drawn far to near.
    objects = [("car", rng.uniform(0.15, 1.0)) for _ in range(rng.integers(0, 5))]
    objects += [("person", rng.uniform(0.15, 1.0)) for _ in range(rng.integers(0, 4))]
    for kind, d in sorted(objects, key=lambda o: o[1]):
        base_y = horizon + d * (height - horizon)
        scale = d * height
        half_road_here = d * (half_road.max() / max(depth.max(), 1e-6))
        if kind == "car":
            cx = vanish_x + rng.uniform(-0.8, 0.8) * half_road_here
            w, h = rng.uniform(0.3, 0.45) * scale, rng.uniform(0.18, 0.26) * scale
            body = (np.abs(xs - cx) <= w / 2) & (ys <= base_y) & (ys >= base_y - h)
            cabin = (np.abs(xs - cx) <= w / 3) & (ys < base_y - h) & (ys >= base_y - 1.6 * h)
            color = rng.uniform(0.0, 1.0, 3)
            _paint(image, labels, body, color, 2, rng)
            _paint(image, labels, cabin, color * 0.5 + 0.2, 2, rng)
            for side in (-1, 1):
                wheel = ((xs - cx - side * w / 3) ** 2 + (ys - base_y) ** 2) <= (0.12 * h + 1) ** 2
                _paint(image, labels, wheel, np.full(3, 0.08), 2, rng)
        else:
            side = rng.choice([-1.0, 1.0])
            cx = vanish_x + side * half_road_here * rng.uniform(1.05, 1.6)
            h = rng.uniform(0.35, 0.5) * scale
            w = 0.28 * h
            body = (
                ((xs - cx) / (w / 2 + 0.5)) ** 2
                + ((ys - (base_y - 0.4 * h)) / (0.4 * h + 0.5)) ** 2
            ) <= 1
            head_r = 0.1 * h + 0.5
            head = ((xs - cx) ** 2 + (ys - (base_y - 0.9 * h)) ** 2) <= head_r**2
            _paint(image, labels, body, rng.uniform(0.0, 1.0, 3), 3, rng)
            _paint(image, labels, head, np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1), 3, rng)
    # Lighting and sensor noise.
    image = image * rng.uniform(0.7, 1.2) + rng.normal(0, 0.03, size=image.shape)
    return image.clip(0, 1).astype(np.float32), labels


def make_dataset(n: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes as images (n, 3, H, W) float32 in [0, 1] and labels (n, H, W) int64."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_size(height, width)
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, height, width), np.float32)
    labels = np.empty((n, height, width), np.int64)
    for i in range(n):
        img, lab = draw_scene(height, width, rng)
        images[i] = img.transpose(2, 0, 1)
        labels[i] = lab
    return torch.from_numpy(images), torch.from_numpy(labels)


def class_frequencies(labels: torch.Tensor, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Fraction of pixels in each class."""
    counts = torch.bincount(labels.flatten(), minlength=n_classes).double()
    return (counts / counts.sum()).numpy()


def cityscapes_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label-id) file pairs of a local Cityscapes copy: ``leftImg8bit/<split>/<city>/
    *_leftImg8bit.png`` with ``gtFine/<split>/<city>/*_gtFine_labelIds.png``."""
    if split not in CITYSCAPES_SPLITS:
        raise ValueError(f"split must be one of {CITYSCAPES_SPLITS}, got {split!r}")
    root = Path(root)
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise ValueError(f"{root} is not a Cityscapes folder: expected {image_dir} and {label_dir}")
    pairs = []
    for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
        stem = image.name.removesuffix("_leftImg8bit.png")
        label = label_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"
        if label.is_file():
            pairs.append((image, label))
    return pairs


def load_cityscapes(
    root: str | Path,
    split: str,
    n: int,
    height: int,
    width: int,
    seed: int,
    crop: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` frames of a local Cityscapes copy at ``height`` x ``width``, with the paper's four
    classes (road 7, car 26, person 24, everything else background). ``crop`` takes a random
    crop of that fraction of each side first, as the authors' training data did (0.8)."""
    from PIL import Image

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_size(height, width)
    if crop is not None and not 0 < crop <= 1:
        raise ValueError(f"crop must be in (0, 1], got {crop!r}")
    pairs = cityscapes_pairs(root, split)
    if len(pairs) < n:
        raise ValueError(f"asked for {n} {split} frames, found {len(pairs)} under {root}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pairs), size=n, replace=False)
    lookup = np.zeros(256, np.int64)
    for cityscapes_id, ours in CITYSCAPES_CLASS_IDS.items():
        lookup[cityscapes_id] = ours
    images = np.empty((n, 3, height, width), np.float32)
    labels = np.empty((n, height, width), np.int64)
    for i, index in enumerate(chosen):
        image_path, label_path = pairs[index]
        image = Image.open(image_path).convert("RGB")
        label = Image.open(label_path)
        if crop is not None:
            w, h = image.size
            cw, ch = int(w * crop), int(h * crop)
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            box = (left, top, left + cw, top + ch)
            image, label = image.crop(box), label.crop(box)
        image = image.resize((width, height), Image.BILINEAR)
        label = label.resize((width, height), Image.NEAREST)
        images[i] = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
        labels[i] = lookup[np.asarray(label, np.uint8)]
    return torch.from_numpy(images), torch.from_numpy(labels)
