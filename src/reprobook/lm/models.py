"""A small GPT-style causal Transformer written out in plain tensor operations.

Why not ``nn.TransformerEncoderLayer``: chapters differentiate *through training* (a gradient of
a gradient, with ``torch.func``), and explicit matmuls, softmax and layer norms support every
order of differentiation on every backend. The head is untied from the embedding by default:
a tied head is also the input embedding, so any pattern asked of it is fought by the input side
(the community reproduction of Dataset Policy Gradient saw a tied head's patch stay dead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a :class:`TinyGPT`."""

    vocab: int
    d_model: int
    n_layers: int
    n_heads: int
    context: int
    tied_head: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab", "d_model", "n_layers", "n_heads", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.vocab < 2:
            raise ValueError(f"vocab must be >= 2, got {self.vocab}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )


class Block(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MLP(LN(x)), as in GPT-2."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln_attn = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(width, dim=-1)
        heads = (batch, length, self.n_heads, width // self.n_heads)
        q, k, v = (t.reshape(heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // self.n_heads)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        attention = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(batch, length, width))
        return x + self.fc_out(F.gelu(self.fc(self.ln_mlp(x))))


class TinyGPT(nn.Module):
    """Token and position embeddings -> blocks -> final LayerNorm -> linear head (no bias).

    ``head.weight`` has shape ``(vocab, d_model)``: row ``v`` holds token ``v``'s output
    weights. (Flax, and the DPG paper's code, store the transpose, ``(d_model, vocab)``.)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.d_model)
        self.position = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(
            Block(config.d_model, config.n_heads) for _ in range(config.n_layers)
        )
        self.ln_final = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab, bias=False)
        self.apply(_init_gpt2)
        if config.tied_head:
            self.head.weight = self.embed.weight

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits ``[batch, length, vocab]`` for token ids ``[batch, length]``."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, length], got shape {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.config.context:
            raise ValueError(f"{length} tokens exceed the context of {self.config.context}")
        x = self.embed(tokens) + self.position(torch.arange(length, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_final(x))


def _init_gpt2(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
