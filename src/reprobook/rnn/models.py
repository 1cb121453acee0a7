"""Sequence models built from min-RNN blocks, and a small causal Transformer to compare with.

A block follows the paper's design (the official ``models/model.py``, re-written here):
optional causal depthwise conv -> RMSNorm -> recurrent layer (residual) -> RMSNorm -> MLP
(residual). The recurrent layer maps ``d_model`` to ``expansion * d_model`` hidden units and
back with a linear map. The selective-copy configuration of the official code turns the conv
and the MLP off; the language model keeps both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprobook.rnn.cells import MinGRU, MinLSTM

CELLS = ("mingru", "minlstm", "gru", "lstm")


class CausalDepthwiseConv(nn.Module):
    """A depthwise 1-D convolution that sees only the current and past ``kernel - 1`` steps."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self.conv(x).transpose(1, 2)


class RecurrentBlock(nn.Module):
    """[conv] -> norm -> recurrent layer + residual -> norm -> [MLP + residual]."""

    def __init__(
        self,
        cell: str,
        d_model: int,
        expansion: float = 1.0,
        conv_kernel: int = 0,
        mlp: bool = True,
        dropout: float = 0.0,
        mode: str = "parallel",
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; valid cells: {', '.join(CELLS)}")
        d_hidden = max(1, round(expansion * d_model))
        self.conv = CausalDepthwiseConv(d_model, conv_kernel) if conv_kernel > 1 else None
        self.norm_rnn = nn.RMSNorm(d_model)
        if cell == "mingru":
            self.rnn: nn.Module = MinGRU(d_model, d_hidden, mode=mode, learn_h0=True)
        elif cell == "minlstm":
            self.rnn = MinLSTM(d_model, d_hidden, mode=mode, learn_h0=True)
        else:
            self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(d_model, d_hidden, batch_first=True)
        self.is_torch_rnn = cell in ("gru", "lstm")
        self.out = nn.Linear(d_hidden, d_model)
        self.mlp = (
            nn.Sequential(
                nn.RMSNorm(d_model),
                nn.Linear(d_model, 4 * d_model),
                nn.GELU(),
                nn.Linear(4 * d_model, d_model),
                nn.Dropout(dropout),
            )
            if mlp
            else None
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            x = x + self.conv(x)
        states = self.rnn(self.norm_rnn(x))
        if self.is_torch_rnn:
            states = states[0]
        x = x + self.dropout(self.out(states))
        if self.mlp is not None:
            x = x + self.mlp(x)
        return x


class RecurrentLM(nn.Module):
    """Token embedding -> ``n_layers`` recurrent blocks -> RMSNorm -> linear head (logits)."""

    def __init__(
        self,
        vocab: int,
        cell: str,
        d_model: int,
        n_layers: int,
        expansion: float = 1.0,
        conv_kernel: int = 0,
        mlp: bool = True,
        dropout: float = 0.0,
        mode: str = "parallel",
    ):
        super().__init__()
        if vocab < 2 or d_model < 1 or n_layers < 1:
            raise ValueError(
                f"need vocab >= 2, d_model >= 1, n_layers >= 1; got {vocab}, {d_model}, {n_layers}"
            )
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList(
            RecurrentBlock(cell, d_model, expansion, conv_kernel, mlp, dropout, mode)
            for _ in range(n_layers)
        )
        self.norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class CausalTransformer(nn.Module):
    """A small pre-norm GPT-style Transformer: learned positions, causal self-attention."""

    def __init__(
        self,
        vocab: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        context: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.context = context
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"sequence of {length} tokens exceeds the context of {self.context}")
        x = self.embed(tokens) + self.position(torch.arange(length, device=tokens.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        return self.head(self.norm(self.layers(x, mask=mask, is_causal=True)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
