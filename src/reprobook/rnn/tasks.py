"""The two training tasks: selective copying (synthetic) and a character-level language model.

Selective copying (Gu & Dao's task, used by the paper): ``n_tokens`` data tokens sit at random
positions among ``length`` noise tokens; then ``n_tokens`` prediction markers follow, and at
those positions the model must output the data tokens in their original order. As in the
official data code, the vocabulary includes the two special tokens, so data tokens take
``vocab - 2`` values.

The character corpus is ``pydoc_data.topics``, the English text of Python's own help topics,
which ships inside every CPython install: no download, and it is the same for every reader with
the same Python version (its hash is recorded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

NOISE, MARKER = 0, 1  # special tokens; data tokens are 2 .. vocab - 1


def selective_copy_batch(
    batch: int, length: int, n_tokens: int, vocab: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Inputs ``[batch, length + n_tokens]`` and targets ``[batch, n_tokens]`` (the data tokens)."""
    if vocab < 3:
        raise ValueError(f"vocab must be >= 3 (two special tokens and data), got {vocab}")
    if not 1 <= n_tokens <= length:
        raise ValueError(f"n_tokens must be in [1, length={length}], got {n_tokens}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    data = torch.randint(2, vocab, (batch, n_tokens), generator=generator)
    # n_tokens distinct positions per row, kept in increasing order.
    positions = torch.rand(batch, length, generator=generator).argsort(1)[:, :n_tokens].sort(1)[0]
    inputs = torch.full((batch, length + n_tokens), NOISE, dtype=torch.long)
    inputs.scatter_(1, positions, data)
    inputs[:, length:] = MARKER
    return inputs, data


def copy_accuracy(logits: Tensor, targets: Tensor) -> tuple[float, float]:
    """Per-token accuracy and whole-sequence exact match, from logits at the marker positions."""
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}"
        )
    correct = logits.argmax(-1) == targets
    return correct.float().mean().item(), correct.all(1).float().mean().item()


@dataclass(frozen=True)
class CharCorpus:
    """A character corpus split into contiguous train / validation / test token streams."""

    chars: str
    train: Tensor
    val: Tensor
    test: Tensor
    sha256: str
    source: str

    @property
    def vocab(self) -> int:
        return len(self.chars)

    def decode(self, tokens: Tensor) -> str:
        return "".join(self.chars[i] for i in tokens.tolist())


def load_char_corpus(
    max_chars: int | None = None, val_frac: float = 0.05, test_frac: float = 0.05
) -> CharCorpus:
    """Python's ``pydoc_data.topics`` text (topics in sorted order), as character tokens.

    ``max_chars`` keeps only the first characters (smaller runs; 0 or None: the whole text); the
    last ``val_frac`` and
    ``test_frac`` of the text are the validation and test streams.
    """
    from pydoc_data.topics import topics

    if not (0 < val_frac < 0.5 and 0 < test_frac < 0.5):
        raise ValueError(f"val_frac and test_frac must be in (0, 0.5), got {val_frac}, {test_frac}")
    text = "\n\n".join(topics[key] for key in sorted(topics))
    if max_chars:
        if max_chars < 1000:
            raise ValueError(f"max_chars must be at least 1000, got {max_chars}")
        text = text[:max_chars]
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_test, n_val = int(len(text) * test_frac), int(len(text) * val_frac)
    n_train = len(text) - n_val - n_test
    return CharCorpus(
        chars=chars,
        train=tokens[:n_train],
        val=tokens[n_train : n_train + n_val],
        test=tokens[n_train + n_val :],
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        source="pydoc_data.topics (CPython's help topics)",
    )


def random_windows(
    stream: Tensor, batch: int, context: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``batch`` random windows of ``context`` tokens and their next-token targets."""
    if len(stream) < context + 1:
        raise ValueError(f"stream of {len(stream)} tokens is too short for context {context}")
    starts = torch.randint(0, len(stream) - context, (batch,), generator=generator)
    offsets = torch.arange(context + 1)
    windows = stream[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]


def sequential_windows(stream: Tensor, context: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping windows covering ``stream`` (the tail that does not fit is dropped)."""
    n = (len(stream) - 1) // context
    if n < 1:
        raise ValueError(f"stream of {len(stream)} tokens is too short for context {context}")
    inputs = stream[: n * context].view(n, context)
    targets = stream[1 : n * context + 1].view(n, context)
    return inputs, targets
