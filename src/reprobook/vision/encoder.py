"""The ViT encoder: a DINOv2 architecture (Hugging Face ``transformers``), small and built locally.

FT-DINOSAUR encodes images with a DINOv2 ViT and reads the patch tokens of its last block
*before* the final LayerNorm, without the CLS token. No DINOv2 weights can be downloaded here, so
the book builds the same architecture from a config (:func:`build_encoder`) and pre-trains it
itself (:mod:`reprobook.vision.ssl`). A reader with a network loads the real model by name
(:func:`load_encoder`, e.g. ``facebook/dinov2-small``); images are then resized to its input size.

``timm`` (the official code's source of the ViT) cannot be used here: every timm release imports
torchvision at import time, and PyPI's torchvision is built against the CUDA torch, so it fails
to load beside the CPU wheel of torch this book pins. ``transformers`` ships the same DINOv2.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Config, Dinov2Model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module):
    """A DINOv2 ViT returning patch features (B, N, D) of its last block, before the final norm."""

    def __init__(self, vit: Dinov2Model, input_size: int) -> None:
        super().__init__()
        self.vit = vit
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def dim(self) -> int:
        return self.vit.config.hidden_size

    @property
    def n_patches(self) -> int:
        return (self.input_size // self.vit.config.patch_size) ** 2

    def forward(
        self, images: torch.Tensor, masked: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch features (B, N, D) without the final norm, and the normed CLS token (B, D).

        ``images`` are (B, 3, H, W) in [0, 1]; ``masked`` (B, N) bool replaces those patches by
        the mask token (the student's input in masked-patch pre-training).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size,) * 2, mode="bicubic")
        out = self.vit(
            pixel_values=(images - self.mean) / self.std,
            bool_masked_pos=masked,
            output_hidden_states=True,
        )
        return out.hidden_states[-1][:, 1:], out.last_hidden_state[:, 0]

    def frozen_copy(self) -> Encoder:
        """A copy with no gradients, in eval mode: the targets of FT-DINOSAUR."""
        twin = copy.deepcopy(self).eval()
        for p in twin.parameters():
            p.requires_grad_(False)
        return twin


def build_encoder(
    image_size: int = 64, patch_size: int = 8, dim: int = 128, depth: int = 4, heads: int = 4
) -> Encoder:
    """A small DINOv2 ViT from a config, randomly initialised (nothing is downloaded)."""
    if image_size % patch_size:
        raise ValueError(
            f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
        )
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
    config = Dinov2Config(
        hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
        intermediate_size=4 * dim, patch_size=patch_size, image_size=image_size,
        layerscale_value=1.0, drop_path_rate=0.0,
    )  # fmt: skip
    return Encoder(Dinov2Model(config), image_size)


def load_encoder(model_name: str, input_size: int = 224) -> Encoder:
    """A pre-trained DINOv2 by name or local path (``facebook/dinov2-small`` with a network).

    ``input_size`` must be a multiple of the model's patch size (14 for DINOv2): images are
    resized to it, as the official code resizes to 224 or 518.
    """
    vit = Dinov2Model.from_pretrained(model_name)
    if input_size % vit.config.patch_size:
        raise ValueError(
            f"input_size ({input_size}) must be a multiple of the patch size "
            f"({vit.config.patch_size})"
        )
    return Encoder(vit, input_size)


def blocks(encoder: Encoder) -> list[list[nn.Parameter]]:
    """The encoder's parameters in L groups, one per block in depth order.

    As FT-DINOSAUR's blockwise learning-rate decay groups them: the embeddings (patch, position,
    CLS and mask token) join the first block, the final norm joins the last; group i of L gets
    ``decay ** (L - 1 - i)`` times the encoder's learning rate.
    """
    vit = encoder.vit
    groups = [list(layer.parameters()) for layer in vit.encoder.layer]
    groups[0] = list(vit.embeddings.parameters()) + groups[0]
    groups[-1] = groups[-1] + list(vit.layernorm.parameters())
    return groups
