"""Procedural multi-object scenes with instance masks, in several visual domains.

No COCO, MOVi or PASCAL image can be downloaded here, so every image is drawn by a small
generative model: shapes (circles, squares, triangles, ellipses), each painted with a texture, on a
background, drawn one after another so that later objects occlude earlier ones. The instance mask
holds, per pixel, 0 for the background or the index (1, 2, ...) of the visible object.

A *domain* fixes what the generator may draw (:data:`DOMAINS`):

- ``diverse``: textured objects on textured backgrounds of the same families: the stand-in for
  the paper's varied real-world training images (COCO);
- ``simple``: plain-coloured objects on a plain background: the stand-in for a simple synthetic
  training domain (CLEVR- or dSprites-like);
- zero-shot domains, used only for evaluation: ``sprites`` (the simple look, fewer objects),
  ``new_textures`` (texture families neither training domain has), ``crowded`` (more, smaller
  objects) and ``small`` (smaller objects). The last two draw each scene in the diverse or the
  simple look with equal chances, so that neither training domain has the advantage of its look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle", "ellipse")
TRAIN_TEXTURES = ("plain", "stripes", "checker", "blotches")
NEW_TEXTURES = ("dots", "rings", "gradient")
TEXTURES = TRAIN_TEXTURES + NEW_TEXTURES


Look = tuple[tuple[str, ...], tuple[str, ...]]  # (object textures, background textures)
DIVERSE_LOOK: Look = (TRAIN_TEXTURES, TRAIN_TEXTURES[1:])  # textured objects, cluttered ground
SIMPLE_LOOK: Look = (("plain",), ("plain",))
NEW_LOOK: Look = (NEW_TEXTURES, NEW_TEXTURES)


@dataclass(frozen=True)
class Domain:
    """What the generator may draw: object count, radius (fraction of the side) and the looks,
    one of which is drawn per scene with equal chances."""

    name: str
    n_objects: tuple[int, int]  # inclusive range
    radius: tuple[float, float]  # object radius as a fraction of the image side
    looks: tuple[Look, ...]
    contrast: float = 1.0  # how far a texture's second colour may lie from its first


DOMAINS = {
    "diverse": Domain("diverse", (2, 5), (0.1, 0.22), (DIVERSE_LOOK,)),
    "simple": Domain("simple", (2, 5), (0.1, 0.22), (SIMPLE_LOOK,)),
    "sprites": Domain("sprites", (1, 3), (0.1, 0.22), (SIMPLE_LOOK,)),
    "new_textures": Domain("new_textures", (2, 5), (0.1, 0.22), (NEW_LOOK,)),
    "crowded": Domain("crowded", (6, 8), (0.08, 0.16), (DIVERSE_LOOK, SIMPLE_LOOK)),
    "small": Domain("small", (3, 6), (0.05, 0.09), (DIVERSE_LOOK, SIMPLE_LOOK)),
}
TRAIN_DOMAINS = ("diverse", "simple")
ZERO_SHOT_DOMAINS = ("sprites", "new_textures", "crowded", "small")
# Zero-shot for both training domains (the fair test of transfer): neither look alone.
HELD_OUT_DOMAINS = ("new_textures", "crowded", "small")
MAX_OBJECTS = max(d.n_objects[1] for d in DOMAINS.values())


def check_domain(name: str) -> Domain:
    """The domain called ``name``, or a ``ValueError`` listing the allowed names."""
    if name not in DOMAINS:
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {name!r}")
    return DOMAINS[name]


def _check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 16 or size % 8:
        raise ValueError(f"size must be a multiple of 8 and at least 16, got {size!r}")


def texture(
    name: str, ys: np.ndarray, xs: np.ndarray, centre: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """A pattern in [0, 1] on the pixel grid (ys, xs): 0 is the first colour, 1 the second."""
    cy, cx = centre
    theta = rng.uniform(0, np.pi)
    u = (xs - cx) * np.cos(theta) + (ys - cy) * np.sin(theta)
    v = -(xs - cx) * np.sin(theta) + (ys - cy) * np.cos(theta)
    if name == "plain":
        return np.zeros_like(xs)
    if name == "stripes":
        return (np.sin(2 * np.pi * u / rng.uniform(3, 7)) > 0).astype(np.float32)
    if name == "checker":
        cell = rng.uniform(2.5, 5)
        return ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    if name == "blotches":  # smooth noise: a coarse random grid, upsampled bilinearly
        h, w = xs.shape
        coarse = rng.uniform(0, 1, size=(h // 8 + 2, w // 8 + 2))
        gy, gx = ys / 8.0, xs / 8.0
        y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
        fy, fx = gy - y0, gx - x0
        top = coarse[y0, x0] * (1 - fx) + coarse[y0, x0 + 1] * fx
        bottom = coarse[y0 + 1, x0] * (1 - fx) + coarse[y0 + 1, x0 + 1] * fx
        return ((top * (1 - fy) + bottom * fy) > 0.5).astype(np.float32)
    if name == "dots":
        period = rng.uniform(4, 7)
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return (du**2 + dv**2 < (0.3 * period) ** 2).astype(np.float32)
    if name == "rings":
        r = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        return (np.sin(2 * np.pi * r / rng.uniform(3, 6)) > 0).astype(np.float32)
    if name == "gradient":
        span = max(float(np.ptp(u)), 1.0)
        return ((u - u.min()) / span).astype(np.float32)
    raise ValueError(f"texture must be one of {TEXTURES}, got {name!r}")


def shape_mask(
    name: str,
    ys: np.ndarray,
    xs: np.ndarray,
    centre: tuple[float, float],
    radius: float,
    angle: float,
) -> np.ndarray:
    """Pixels inside a shape of the given centre, radius and rotation (boolean, like ``ys``)."""
    cy, cx = centre
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
    if name == "circle":
        return u**2 + v**2 <= radius**2
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * radius
    if name == "ellipse":
        return (u / radius) ** 2 + (v / (0.55 * radius)) ** 2 <= 1
    if name == "triangle":  # equilateral, inscribed in the circle of the radius
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            phi = angle + np.pi / 2 + 2 * np.pi * k / 3
            inside &= (xs - cx) * np.cos(phi) + (ys - cy) * np.sin(phi) <= 0.5 * radius
        return inside
    raise ValueError(f"shape must be one of {SHAPES}, got {name!r}")


def _colours(rng: np.random.Generator, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    first = rng.uniform(0.05, 0.95, 3)
    second = np.clip(first + rng.uniform(-contrast, contrast, 3), 0, 1)
    return first.astype(np.float32), second.astype(np.float32)


def draw_scene(
    domain: str | Domain, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an image (size, size, 3) in [0, 1] (float32) and its instance mask (uint8).

    The mask is 0 on the background and k on the visible pixels of the k-th object drawn.
    Objects are placed at least half a radius inside the frame; one may be hidden entirely by
    those drawn after it, and its label is then absent from the mask (the metrics score the
    objects the mask holds).
    """
    spec = check_domain(domain) if isinstance(domain, str) else domain
    _check_size(size)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size / 2, size / 2)
    object_textures, background_textures = spec.looks[int(rng.integers(len(spec.looks)))]
    background = rng.choice(background_textures)
    first, second = _colours(rng, 0.4 * spec.contrast)  # backgrounds: low contrast
    pattern = texture(background, ys, xs, centre, rng)[..., None]
    image = first * (1 - pattern) + second * pattern
    mask = np.zeros((size, size), np.uint8)
    n = int(rng.integers(spec.n_objects[0], spec.n_objects[1] + 1))
    for k in range(1, n + 1):
        radius = rng.uniform(*spec.radius) * size
        margin = 0.5 * radius
        centre = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
        inside = shape_mask(rng.choice(SHAPES), ys, xs, centre, radius, rng.uniform(0, 2 * np.pi))
        first, second = _colours(rng, spec.contrast)
        pattern = texture(rng.choice(object_textures), ys, xs, centre, rng)[..., None]
        painted = first * (1 - pattern) + second * pattern
        image = np.where(inside[..., None], painted, image)
        mask[inside] = k
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, 0.02, size=image.shape)
    return image.clip(0, 1).astype(np.float32), mask


def make_scenes(domain: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes of ``domain``: images (n, 3, size, size) float32, masks (n, size, size)
    int64."""
    spec = check_domain(domain)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_size(size)
    rng = np.random.default_rng([seed, sorted(DOMAINS).index(domain)])
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        images[i], masks[i] = draw_scene(spec, size, rng)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks).long()
