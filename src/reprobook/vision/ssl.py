"""Self-supervised pre-training of the small ViT: DINOv2's two losses in miniature.

DINOv2 trains a student ViT to match an exponential moving average of itself (the teacher) with
two losses: an image-level DINO loss (the student's CLS distribution on one view matches the
teacher's on the other view) and a patch-level iBOT loss (the student sees some patches replaced
by a mask token and predicts the teacher's distribution for those patches from the unmasked
image). The teacher's outputs are centred (a running mean) and sharpened (a low temperature) so
that neither collapses. This module keeps both losses, the centring, the sharpening and the EMA,
with two global views and no local crops, KoLeo or Sinkhorn centring (DINOv2 adds those).

It stands in for DINOv2's pre-training on 142 million curated images: the features it gives are
those of a four-block ViT trained for minutes on procedural scenes, not DINOv2's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from reprobook.vision.encoder import Encoder


@dataclass(frozen=True)
class PretrainSettings:
    """Pre-training knobs (DINO's defaults where they exist; short-run learning rate)."""

    steps: int = 600
    batch_size: int = 48
    lr: float = 1e-3
    weight_decay: float = 0.04
    warmup: int = 50
    n_prototypes: int = 256
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    center_momentum: float = 0.9
    ema_start: float = 0.99  # teacher EMA momentum, cosine-annealed to 1
    mask_ratio: tuple[float, float] = (0.1, 0.5)  # iBOT: share of patches masked per image
    crop_scale: tuple[float, float] = (0.35, 1.0)


class Head(nn.Module):
    """DINO's projection head: MLP, L2-normalised bottleneck, weight-normalised prototypes."""

    def __init__(self, dim: int, n_prototypes: int, hidden: int = 256, bottleneck: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )  # fmt: skip
        self.prototypes = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck, n_prototypes, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(self.mlp(x), dim=-1))


def random_views(images: torch.Tensor, scale: tuple[float, float], generator: torch.Generator):
    """A random resized crop (area share in ``scale``), flip and colour jitter of each image."""
    b = images.shape[0]
    u = torch.rand(b, 6, generator=generator)
    side = torch.sqrt(scale[0] + (scale[1] - scale[0]) * u[:, 0])  # crop side / image side
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    tx = (1 - side) * (2 * u[:, 2] - 1)
    ty = (1 - side) * (2 * u[:, 3] - 1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    brightness = (0.7 + 0.6 * u[:, 4]).view(b, 1, 1, 1)
    mean = views.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.7 + 0.6 * u[:, 5]).view(b, 1, 1, 1)
    return ((views - mean) * contrast + mean * brightness).clamp(0, 1)


def _cross_entropy(
    teacher: torch.Tensor, student: torch.Tensor, temperature: float
) -> torch.Tensor:
    return -(teacher * F.log_softmax(student / temperature, dim=-1)).sum(-1)


def pretrain(
    encoder: Encoder,
    images: torch.Tensor,
    settings: PretrainSettings,
    seed: int,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Pre-train ``encoder`` in place (the student; the teacher is its EMA) on ``images``.

    Returns the loss history (DINO, iBOT). After training the encoder holds the *teacher's*
    weights, as DINO and DINOv2 release the teacher.
    """
    if settings.steps < 1 or settings.batch_size < 2 or settings.warmup < 1:
        raise ValueError(
            "steps and warmup must be >= 1 and batch_size >= 2, got "
            f"{settings.steps}, {settings.warmup} and {settings.batch_size}"
        )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dim = encoder.dim
    student = nn.ModuleDict(
        dict(
            encoder=encoder,
            cls_head=Head(dim, settings.n_prototypes),
            patch_head=Head(dim, settings.n_prototypes),
        )
    )
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    center_cls = torch.zeros(settings.n_prototypes)
    center_patch = torch.zeros(settings.n_prototypes)
    opt = torch.optim.AdamW(
        student.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    history: dict[str, list[float]] = {"dino": [], "ibot": []}
    n_patches = encoder.n_patches
    for step in tqdm(range(settings.steps), disable=not progress, desc="pre-training"):
        warm = min(1.0, (step + 1) / settings.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = settings.lr * warm * (0.1 + 0.9 * cosine)
        idx = torch.randint(len(images), (settings.batch_size,), generator=generator)
        batch = images[idx]
        views = [random_views(batch, settings.crop_scale, generator) for _ in range(2)]
        lo, hi = settings.mask_ratio
        ratio = lo + (hi - lo) * torch.rand(settings.batch_size, 1, generator=generator)
        masked = torch.rand(settings.batch_size, n_patches, generator=generator) < ratio
        with torch.no_grad():
            t_out = [teacher["encoder"](v) for v in views]
            t_cls = [
                F.softmax((teacher["cls_head"](c) - center_cls) / settings.teacher_temperature, -1)
                for _, c in t_out
            ]
            t_patch_logits = teacher["patch_head"](t_out[1][0])
            t_patch = F.softmax((t_patch_logits - center_patch) / settings.teacher_temperature, -1)
        s_cls, s_patches = [], None
        for i, v in enumerate(views):
            patches, cls = student["encoder"](v, masked=masked if i == 1 else None)
            s_cls.append(student["cls_head"](cls))
            if i == 1:
                s_patches = student["patch_head"](patches)
        tau = settings.student_temperature
        dino = 0.5 * (
            _cross_entropy(t_cls[0], s_cls[1], tau).mean()
            + _cross_entropy(t_cls[1], s_cls[0], tau).mean()
        )
        ibot_all = _cross_entropy(t_patch, s_patches, tau)
        ibot = (ibot_all * masked).sum() / masked.sum().clamp(min=1)
        loss = dino + ibot
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), 3.0)
        opt.step()
        with torch.no_grad():
            momentum = 1 - (1 - settings.ema_start) * cosine
            for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
            m = settings.center_momentum
            cls_logits = torch.cat([teacher["cls_head"](c) for _, c in t_out])
            center_cls.mul_(m).add_(cls_logits.mean(0), alpha=1 - m)
            center_patch.mul_(m).add_(t_patch_logits.mean((0, 1)), alpha=1 - m)
        history["dino"].append(dino.item())
        history["ibot"].append(ibot.item())
    encoder.load_state_dict(teacher["encoder"].state_dict())
    return history
