"""A synthetic language: token streams from a random sparse Markov chain.

The chapters that train language models cannot download text, so they make their own: a
first-order Markov chain over ``vocab`` tokens whose rows are drawn from a Dirichlet with a
small concentration, so each token has a few likely successors (learnable structure) and a
long tail (room to say other things). A seed fixes the whole language.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def markov_language(vocab: int, concentration: float, seed: int) -> Tensor:
    """A ``[vocab, vocab]`` row-stochastic transition matrix, drawn from Dirichlet rows."""
    if not isinstance(vocab, int) or vocab < 2:
        raise ValueError(f"vocab must be an integer >= 2, got {vocab!r}")
    if not concentration > 0:
        raise ValueError(f"concentration must be > 0, got {concentration!r}")
    rows = np.random.default_rng(seed).dirichlet(np.full(vocab, float(concentration)), vocab)
    return torch.from_numpy(rows / rows.sum(1, keepdims=True))


def sample_stream(transitions: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """A token stream of ``length`` steps of the chain, started from a uniform token."""
    vocab = _check_transitions(transitions)
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    stream = torch.empty(length, dtype=torch.long)
    stream[0] = torch.randint(vocab, (1,), generator=generator)
    cumulative = transitions.cumsum(1)
    uniforms = torch.rand(length, generator=generator, dtype=torch.float64)
    for t in range(1, length):
        row = cumulative[stream[t - 1]]
        stream[t] = min(int(torch.searchsorted(row, uniforms[t])), vocab - 1)
    return stream


def random_windows(stream: Tensor, batch: int, length: int, generator: torch.Generator) -> Tensor:
    """``[batch, length]`` windows cut at uniformly random offsets of ``stream``."""
    if stream.dim() != 1:
        raise ValueError(f"stream must be 1-D, got shape {tuple(stream.shape)}")
    if not 1 <= length <= stream.numel():
        raise ValueError(f"length must be in [1, {stream.numel()}], got {length}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    starts = torch.randint(stream.numel() - length + 1, (batch,), generator=generator)
    return stream[starts[:, None] + torch.arange(length)]


def entropy_rate(transitions: Tensor) -> float:
    """The chain's entropy rate in nats per token (under its stationary distribution)."""
    _check_transitions(transitions)
    eigenvalues, eigenvectors = torch.linalg.eig(transitions.T)
    stationary = eigenvectors[:, eigenvalues.real.argmax()].real
    stationary = stationary / stationary.sum()
    logs = torch.where(transitions > 0, transitions.log(), torch.zeros_like(transitions))
    return float(-(stationary[:, None] * transitions * logs).sum())


def _check_transitions(transitions: Tensor) -> int:
    if transitions.dim() != 2 or transitions.shape[0] != transitions.shape[1]:
        raise ValueError(f"transitions must be square, got shape {tuple(transitions.shape)}")
    if (transitions < 0).any() or not torch.allclose(
        transitions.sum(1), torch.ones(len(transitions), dtype=transitions.dtype)
    ):
        raise ValueError("transitions must have non-negative rows that sum to 1")
    return transitions.shape[0]


def _scored_transitions(transitions: Tensor, tokens: Tensor, start: int) -> Tensor:
    """Chain probabilities (float64) of ``tokens[:, start:]``, each given the token before it."""
    vocab = _check_transitions(transitions)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, length], got shape {tuple(tokens.shape)}")
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start must be in [1, {tokens.shape[1] - 1}], got {start}")
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise ValueError(f"tokens must be in [0, {vocab}), got [{tokens.min()}, {tokens.max()}]")
    return transitions[tokens[:, start - 1 : -1], tokens[:, start:]].double()


def chain_nll(transitions: Tensor, tokens: Tensor, start: int = 1) -> Tensor:
    """Per-sequence mean negative log-likelihood (nats per token) under the true chain.

    Scores ``tokens[:, start:]``, each token given the one before it (so ``start >= 1``): with
    the last prompt token at ``start - 1``, the score of a continuation. Transitions the chain
    gives probability 0 cost ``-log(1e-300)`` (in float64), finite so that means stay readable.
    """
    return -_scored_transitions(transitions, tokens, start).clamp(min=1e-300).log().mean(1)


def rare_transition_share(
    transitions: Tensor, tokens: Tensor, start: int = 1, threshold: float = 1e-3
) -> Tensor:
    """Per-sequence share of the scored transitions that the chain takes with probability below
    ``threshold``: a robust companion of ``chain_nll``, whose mean a few near-impossible
    transitions can dominate."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return (_scored_transitions(transitions, tokens, start) < threshold).double().mean(1)
