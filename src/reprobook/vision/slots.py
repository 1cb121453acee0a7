"""DINOSAUR and FT-DINOSAUR: slot attention on ViT features, an MLP patch decoder, training.

As the official inference code (``rw-ocrl/ftdinosaur-inference``) builds them:

- :class:`SlotAttention`: slots drawn from one learned Gaussian (shared mean and log-sigma, so
  the number of slots may change at test time); each iteration normalises the attention over
  slots, takes a weighted mean of the values per slot, updates the slots with a GRU cell and a
  residual MLP; the last iteration's attention is returned as the slots' masks on the patches.
- :class:`PatchDecoder`: every slot is broadcast to every patch with a learned position
  embedding and decoded by an MLP into a feature vector and an alpha logit; alphas are softmaxed
  over slots and the reconstruction is the alpha-weighted sum. With top-k decoding, each patch is
  decoded only by the k slots that attend to it most (slot-attention masks, no gradient); the
  other slots' alpha masks are zero.
- :class:`Dinosaur`: encoder, slot attention and decoder; the loss is the mean squared error
  between the reconstruction and the *target* features, which are the frozen encoder's own
  (DINOSAUR) or those of a frozen copy of the pre-trained encoder while the encoder itself is
  fine-tuned (FT-DINOSAUR, targets standardised per token as its training config does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from reprobook.vision.encoder import Encoder, blocks


class SlotAttention(nn.Module):
    """Slot attention (Locatello et al. 2020) with a learned Gaussian initialisation."""

    def __init__(self, dim_in: int, dim: int, iterations: int = 3, hidden: int | None = None):
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.dim, self.iterations, self.eps = dim, iterations, 1e-8
        hidden = hidden or 4 * dim
        self.feature_transform = nn.Sequential(
            nn.LayerNorm(dim_in),
            nn.Linear(dim_in, 2 * dim_in),
            nn.ReLU(),
            nn.Linear(2 * dim_in, dim),
        )
        self.norm_inputs, self.norm_slots, self.norm_mlp = (nn.LayerNorm(dim) for _ in range(3))
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))
        self.log_sigma = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))

    def forward(
        self, features: torch.Tensor, n_slots: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots (B, K, dim) and the last attention (B, K, N), normalised over the K slots."""
        if n_slots < 1:
            raise ValueError(f"n_slots must be >= 1, got {n_slots}")
        b = features.shape[0]
        x = self.norm_inputs(self.feature_transform(features))
        k, v = self.to_k(x), self.to_v(x)
        noise = torch.randn(b, n_slots, self.dim, generator=generator).to(features.device)
        slots = self.mu + self.log_sigma.exp() * noise
        attn = None
        for _ in range(self.iterations):
            q = self.to_q(self.norm_slots(slots)) * self.dim**-0.5
            attn = torch.softmax(q @ k.transpose(1, 2), dim=1)  # over slots
            weights = attn / (attn.sum(-1, keepdim=True) + self.eps)
            updates = weights @ v
            slots = self.gru(updates.reshape(-1, self.dim), slots.reshape(-1, self.dim))
            slots = slots.view(b, n_slots, self.dim)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class PatchDecoder(nn.Module):
    """DINOSAUR's MLP decoder, optionally with FT-DINOSAUR's top-k decoding."""

    def __init__(self, dim: int, out_dim: int, n_patches: int, hidden: int, layers: int = 3):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 1, n_patches, dim) * 0.02)
        sizes = [dim] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, c in zip(sizes[:-1], sizes[1:], strict=True):
            mods += [nn.Linear(a, c), nn.ReLU()]
        self.mlp = nn.Sequential(*mods, nn.Linear(hidden, out_dim + 1))

    def forward(
        self, slots: torch.Tensor, top_k: int | None = None, scores: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction (B, N, D) and alpha masks (B, K, N), summing to 1 over slots.

        With ``top_k``, ``scores`` (B, K, N) (the slot-attention masks) pick each patch's k slots.
        """
        b, n_slots, _ = slots.shape
        n = self.pos.shape[2]
        if top_k is None or top_k >= n_slots:
            out = self.mlp(slots[:, :, None, :] + self.pos)  # (B, K, N, D + 1)
            alpha = torch.softmax(out[..., -1], dim=1)
            recon = (alpha[..., None] * out[..., :-1]).sum(1)
            return recon, alpha
        if scores is None:
            raise ValueError("top-k decoding needs the slot-attention masks as scores")
        with torch.no_grad():
            chosen = scores.detach().topk(top_k, dim=1).indices  # (B, k, N)
        picked = torch.gather(slots, 1, chosen.reshape(b, -1, 1).expand(-1, -1, slots.shape[-1]))
        picked = picked.view(b, top_k, n, -1)
        out = self.mlp(picked + self.pos)  # (B, k, N, D + 1)
        alpha_k = torch.softmax(out[..., -1], dim=1)
        recon = (alpha_k[..., None] * out[..., :-1]).sum(1)
        alpha = torch.zeros(b, n_slots, n, dtype=alpha_k.dtype, device=alpha_k.device)
        alpha = alpha.scatter(1, chosen, alpha_k)
        return recon, alpha


@dataclass(frozen=True)
class ModelSettings:
    """Sizes of slot attention and the decoder (the paper's, scaled to a 128-d ViT)."""

    n_slots: int = 7  # the official models' 7 slots
    slot_dim: int = 128  # official: 256 for 384/768-d features
    iterations: int = 3
    decoder_hidden: int = 256  # official: 2048
    top_k: int | None = None  # FT-DINOSAUR: 3


class Dinosaur(nn.Module):
    """Encoder -> slot attention -> patch decoder; loss against frozen target features."""

    def __init__(self, encoder: Encoder, settings: ModelSettings):
        super().__init__()
        if settings.n_slots < 1:
            raise ValueError(f"n_slots must be >= 1, got {settings.n_slots}")
        if settings.top_k is not None and not 1 <= settings.top_k <= settings.n_slots:
            raise ValueError(
                f"top_k must be None or in [1, n_slots = {settings.n_slots}], got {settings.top_k}"
            )
        self.encoder, self.settings = encoder, settings
        self.slot_attention = SlotAttention(encoder.dim, settings.slot_dim, settings.iterations)
        self.decoder = PatchDecoder(
            settings.slot_dim, encoder.dim, encoder.n_patches, settings.decoder_hidden
        )

    def forward(
        self,
        features: torch.Tensor,
        n_slots: int | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Slots, slot-attention masks, decoder masks (alpha) and the reconstructed features."""
        n_slots = self.settings.n_slots if n_slots is None else n_slots
        slots, attn = self.slot_attention(features, n_slots, generator)
        recon, alpha = self.decoder(slots, self.settings.top_k, attn)
        return dict(slots=slots, attention=attn, masks=alpha, reconstruction=recon)


def standardise(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each token standardised over its features (FT-DINOSAUR's ``normalize_target``)."""
    mean = features.mean(-1, keepdim=True)
    var = features.var(-1, unbiased=False, keepdim=True)
    return (features - mean) / torch.sqrt(var + eps)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation (official: Adam 4e-4, 10k warm-up, clip 1.0 for DINOSAUR; for FT-DINOSAUR
    the encoder at 0.125 times the rate with blockwise decay 0.85 and clip 0.1)."""

    steps: int = 400
    batch_size: int = 32
    lr: float = 4e-4
    warmup: int = 40
    finetune: bool = False
    encoder_lr_factor: float = 0.125
    block_decay: float = 0.85
    clip: float = 1.0
    normalise_targets: bool = False


def param_groups(model: Dinosaur, settings: TrainSettings) -> list[dict]:
    """Slot attention and decoder at ``lr``; with fine-tuning, encoder block i of L at
    ``lr * encoder_lr_factor * block_decay ** (L - 1 - i)``."""
    head = list(model.slot_attention.parameters()) + list(model.decoder.parameters())
    groups = [dict(params=head, lr_scale=1.0)]
    if settings.finetune:
        enc = blocks(model.encoder)
        for i, params in enumerate(enc):
            scale = settings.encoder_lr_factor * settings.block_decay ** (len(enc) - 1 - i)
            groups.append(dict(params=params, lr_scale=scale))
    return groups


def train(
    model: Dinosaur,
    images: torch.Tensor,
    targets: torch.Tensor,
    settings: TrainSettings,
    seed: int,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` in place; ``targets`` are the frozen pre-trained patch features (B, N, D).

    Without fine-tuning the encoder is frozen and its features are the targets (``images`` may be
    None, the features being precomputed). Returns the loss per step.
    """
    if settings.steps < 1 or settings.batch_size < 1 or settings.warmup < 1:
        raise ValueError(
            "steps, batch_size and warmup must be positive, got "
            f"{settings.steps}, {settings.batch_size} and {settings.warmup}"
        )
    if settings.finetune and images is None:
        raise ValueError("fine-tuning needs the images")
    if targets.ndim != 3 or targets.shape[1:] != (model.encoder.n_patches, model.encoder.dim):
        raise ValueError(
            f"targets must be (n, {model.encoder.n_patches}, {model.encoder.dim}) patch features, "
            f"got {tuple(targets.shape)}"
        )
    if images is not None and len(images) != len(targets):
        raise ValueError(f"images ({len(images)}) and targets ({len(targets)}) must pair up")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.encoder.requires_grad_(settings.finetune)
    model.encoder.train(settings.finetune)
    groups = param_groups(model, settings)
    opt = torch.optim.Adam([dict(params=g["params"]) for g in groups], lr=settings.lr)
    params = [p for g in groups for p in g["params"]]
    losses = []
    for step in tqdm(range(settings.steps), disable=not progress, desc="slots"):
        warm = min(1.0, (step + 1) / settings.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group, spec in zip(opt.param_groups, groups, strict=True):
            group["lr"] = settings.lr * spec["lr_scale"] * warm * cosine
        idx = torch.randint(len(targets), (settings.batch_size,), generator=generator)
        target = targets[idx]
        if settings.finetune:
            features, _ = model.encoder(images[idx])
        else:
            features = target
        if settings.normalise_targets:
            target = standardise(target)
        out = model(features, generator=generator)
        loss = F.mse_loss(out["reconstruction"], target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, settings.clip)
        opt.step()
        losses.append(loss.item())
    model.eval()
    model.encoder.requires_grad_(False)
    return losses


@torch.no_grad()
def encode(encoder: Encoder, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Patch features (B, N, D) of ``images``, in batches, without gradients."""
    encoder.eval()
    return torch.cat(
        [encoder(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def predict_masks(
    model: Dinosaur,
    images: torch.Tensor,
    n_slots: int,
    seed: int,
    features: torch.Tensor | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Hard masks (B, H, W): each pixel's slot by argmax of the decoder's alpha masks, resized
    bilinearly from the patch grid to the image (as the official evaluation does)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    size = images.shape[-1]
    side = int(math.isqrt(model.encoder.n_patches))
    out = []
    for i in range(0, len(images), batch_size):
        feats = (
            model.encoder(images[i : i + batch_size])[0]
            if features is None
            else features[i : i + batch_size]
        )
        alpha = model(feats, n_slots, generator)["masks"]
        alpha = alpha.view(alpha.shape[0], n_slots, side, side)
        alpha = F.interpolate(alpha, size=(size, size), mode="bilinear", align_corners=False)
        out.append(alpha.argmax(1))
    return torch.cat(out)
