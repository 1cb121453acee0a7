"""Ways to solve the linear recurrence h_t = a_t * h_{t-1} + b_t over a sequence.

Every min-RNN layer reduces to this recurrence, with gates a_t, b_t that depend only on x_t.

- ``sequential_scan``: the step loop, one time step at a time (the reference).
- ``log_space_scan``: the paper's parallel scan (Heinsen 2023), in log space:
  a* = cumsum(log a), log h = a* + logcumsumexp(log b - a*). It needs positive states, which the
  min-RNNs guarantee through g(x) (``positive_g``); a non-positive initial state is refused.
- ``stable_log_space_scan``: the log-space scan re-centred per chunk. In float32 the plain
  log-space scan loses accuracy in proportion to T: a* = cumsum(log a) grows like T, and
  a* + logcumsumexp(log b - a*) cancels two numbers of that size, so its rounding error (about
  |a*| times float32's epsilon) grows with T, about linearly. Within a chunk a* stays of the chunk's
  size; chunks are joined by a short log-space carry, so the error no longer grows with T.
- ``chunked_scan``: the same recurrence as a blocked scan, the way a parallel prefix scan runs on
  a CPU with few cores: a step loop *inside* chunks, vectorised over all chunks at once, keeping
  each chunk's end state; a short loop that carries the state from chunk to chunk; a second step
  loop that writes every state. About 3 sqrt(T) Python steps instead of T, in linear space, any
  sign; its backward is the same scan run backwards, written out.
- ``chunked_cell_scan``: the blocked scan of a min-cell from its gate pre-activations, computing
  a_t and b_t inside the loops, slice by slice while the slice is in cache (on a CPU the passes
  of elementwise work over full-length tensors cost more than the recurrence itself).

The scans take ``[batch, time, hidden]`` tensors and return every state h_1..h_T.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def positive_g(x: Tensor) -> Tensor:
    """g(x) = x + 1/2 for x >= 0, sigmoid(x) otherwise: positive, continuous, linear for x >= 0."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_positive_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) for x < 0 (where it is -softplus(-x))."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _check(a: Tensor, b: Tensor, h0: Tensor | None, name_a: str = "a", name_b: str = "b") -> None:
    if a.dim() != 3:
        raise ValueError(f"{name_a} must be [batch, time, hidden], got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[1] == 0:
        raise ValueError("the sequence is empty (time dimension 0)")
    if h0 is not None and tuple(h0.shape) != (a.shape[0], a.shape[2]):
        raise ValueError(
            f"h0 must be [batch, hidden] = {(a.shape[0], a.shape[2])}, got {tuple(h0.shape)}"
        )


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t by a loop over time; h_0 = ``h0`` or zeros."""
    _check(a, b, h0)
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1), strict=True):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, 1)


def log_space_scan(log_a: Tensor, log_b: Tensor, log_h0: Tensor | None = None) -> Tensor:
    """The paper's parallel scan. Takes log a_t, log b_t (and log h_0); returns h_t (not its log).

    With h_0 the sequence is extended by one step at the front: a* = cumsum(log a) with a_0 = 1,
    log h = a* + logcumsumexp([log h_0, log b] - a*). Without h_0, h_0 = 0 drops out of the sum.
    """
    _check(log_a, log_b, log_h0, "log_a", "log_b")
    if log_h0 is not None:
        log_a = torch.cat([torch.zeros_like(log_a[:, :1]), log_a], 1)
        log_b = torch.cat([log_h0.unsqueeze(1), log_b], 1)
    a_star = torch.cumsum(log_a, 1)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, 1)
    h = torch.exp(log_h)
    return h[:, 1:] if log_h0 is not None else h


STABLE_CHUNK = 32  # float32 relative error about 2e-6 to 5e-6 from T = 64 to 16384 (measured;
# the unit test checks T = 64 and 4096)


def stable_log_space_scan(
    log_a: Tensor, log_b: Tensor, log_h0: Tensor | None = None, chunk: int | None = None
) -> Tensor:
    """The log-space scan with a* re-centred at every chunk start; returns h_t (not its log).

    Inside chunk j (positions s..e), with a*_t = sum of log a over s..t (the chunk's own
    cumulative decay) and L_t = logcumsumexp over s..t of (log b - a*), the state is
    log h_t = a*_t + logaddexp(log H_j, L_t), where log H_j is the state entering the chunk.
    The entering states follow from a loop over chunks, log H_{j+1} = A_j + logaddexp(log H_j,
    L_end), A_j the chunk's total decay. Every cancellation involves numbers of the chunk's
    size, so float32 error stays flat in T when the chunk is fixed (``STABLE_CHUNK`` by
    default; a chunk growing like sqrt(T) would let it grow like sqrt(T)); T / chunk Python
    steps.
    """
    _check(log_a, log_b, log_h0, "log_a", "log_b")
    batch, length, hidden = log_a.shape
    chunk = STABLE_CHUNK if chunk is None else chunk
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    if pad:  # identity steps (log a = 0, b = 0: log b = -inf) leave every state unchanged
        log_a = torch.cat([log_a, log_a.new_zeros(batch, pad, hidden)], 1)
        log_b = torch.cat([log_b, log_b.new_full((batch, pad, hidden), -math.inf)], 1)
    a_blocks = log_a.view(batch, n_chunks, chunk, hidden)
    b_blocks = log_b.view(batch, n_chunks, chunk, hidden)
    a_star = torch.cumsum(a_blocks, 2)  # re-centred: starts afresh in every chunk
    local = torch.logcumsumexp(b_blocks - a_star, 2)
    carry = log_b.new_full((batch, hidden), -math.inf) if log_h0 is None else log_h0
    entering = []
    for total_j, local_end_j in zip(
        a_star[:, :, -1].unbind(1), local[:, :, -1].unbind(1), strict=True
    ):
        entering.append(carry)
        carry = total_j + torch.logaddexp(carry, local_end_j)
    entering_states = torch.stack(entering, 1).unsqueeze(2)
    log_h = a_star + torch.logaddexp(entering_states.expand_as(local), local)
    return torch.exp(log_h).reshape(batch, n_chunks * chunk, hidden)[:, :length]


def default_chunk_size(length: int) -> int:
    """sqrt(T) balances the loop inside chunks against the loop over chunks."""
    return max(1, math.isqrt(max(length, 1)))


def _pad_time(x: Tensor, pad: int, value: float) -> Tensor:
    """``x`` with ``pad`` steps of ``value`` appended along time."""
    if not pad:
        return x
    return torch.cat([x, x.new_full((x.shape[0], pad, x.shape[2]), value)], 1)


def _blocked_scan(
    coefficients_at: Callable[[int], tuple[Tensor, Tensor]],
    n_chunks: int,
    chunk: int,
    h0: Tensor | None,
    reverse: bool,
    visit: Callable[[int, Tensor, Tensor], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """The blocked scan without autograd: h_t = a_t h_{t-1} + b_t (``reverse``: h_{t+1}).

    ``coefficients_at(t)`` gives a_t and b_t at step t of every chunk at once, ``[batch,
    n_chunks, hidden]``, so they can be computed there, while the slice is in cache. Two passes
    over the chunks, each a step loop vectorised over all chunks: the first keeps only every
    chunk's end state from zero and its total decay, a short loop carries the state from chunk
    to chunk, and the second writes every state, each chunk starting from the state entering
    it (``visit(t, a_t, h_t)`` sees each step's decays and states as they are written).
    Returns the states ``[batch, n_chunks, chunk, hidden]`` and the entering states
    ``[batch, n_chunks, hidden]``.
    """
    steps = range(chunk - 1, -1, -1) if reverse else range(chunk)
    end = total = None
    for t in steps:  # 1. chunk-local end states from zero, and each chunk's total decay
        a_t, b_t = coefficients_at(t)
        end = b_t if end is None else torch.addcmul(b_t, a_t, end)
        total = a_t if total is None else total * a_t
    entering = torch.empty_like(end)  # 2. the state entering every chunk
    carry = end.new_zeros(end.shape[0], end.shape[2]) if h0 is None else h0
    for j in range(n_chunks - 1, -1, -1) if reverse else range(n_chunks):
        entering[:, j] = carry
        carry = torch.addcmul(end[:, j], total[:, j], carry)
    states = end.new_empty(end.shape[0], n_chunks, chunk, end.shape[2])
    h = entering
    for t in steps:  # 3. every state, written in place
        a_t, b_t = coefficients_at(t)
        h = torch.addcmul(b_t, a_t, h, out=states[:, :, t])
        if visit is not None:
            visit(t, a_t, h)
    return states, entering


def _blocks(x: Tensor, chunk: int, pad_value: float) -> Tensor:
    """``[batch, time, d]`` padded to whole chunks and viewed ``[batch, n_chunks, chunk, d]``."""
    batch, length, width = x.shape
    n_chunks = -(-length // chunk)
    return _pad_time(x, n_chunks * chunk - length, pad_value).reshape(batch, n_chunks, chunk, width)


def _reverse_gradient(a_blocks: Tensor, grad_h: Tensor, visit=None) -> Tensor:
    """g_t = dL/dh_t + a_{t+1} g_{t+1} (the gradient flowing back into h_t), blocked like
    ``a_blocks``: the same scan run backwards through the next step's decay."""
    batch, n_chunks, chunk, hidden = a_blocks.shape
    next_a = torch.empty_like(a_blocks).view(batch, n_chunks * chunk, hidden)
    next_a[:, :-1] = a_blocks.reshape(batch, n_chunks * chunk, hidden)[:, 1:]
    next_a[:, -1] = 0
    next_a = next_a.view_as(a_blocks)
    grad_blocks = _blocks(grad_h, chunk, 0.0)  # no gradient reaches the padding
    g, _ = _blocked_scan(
        lambda t: (next_a[:, :, t], grad_blocks[:, :, t]), n_chunks, chunk, None, True, visit
    )
    return g


class _ChunkedScan(torch.autograd.Function):
    """The blocked scan with its backward written out: the gradient of a linear recurrence is
    the same recurrence run backwards, g_t = dL/dh_t + a_{t+1} g_{t+1}, then dL/db_t = g_t,
    dL/da_t = g_t h_{t-1} and dL/dh_0 = a_1 g_1. Autograd would record and save every small
    step of the loops; this saves only a and h."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None, chunk: int) -> Tensor:
        batch, length, hidden = a.shape
        a_blocks, b_blocks = _blocks(a, chunk, 1.0), _blocks(b, chunk, 0.0)  # identity padding
        states, entering = _blocked_scan(
            lambda t: (a_blocks[:, :, t], b_blocks[:, :, t]), a_blocks.shape[1], chunk, h0, False
        )
        ctx.save_for_backward(a_blocks, states, entering)
        ctx.length, ctx.has_h0 = length, h0 is not None
        return states.view(batch, -1, hidden)[:, :length]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        a_blocks, states, entering = ctx.saved_tensors
        g = _reverse_gradient(a_blocks, grad_h)
        h_prev = torch.cat([entering.unsqueeze(2), states[:, :, :-1]], 2)
        batch, length, hidden = grad_h.shape
        flat = (batch, -1, hidden)
        grad_a = (g * h_prev).view(flat)[:, :length]
        grad_h0 = a_blocks[:, 0, 0] * g[:, 0, 0] if ctx.has_h0 else None
        return grad_a, g.view(flat)[:, :length], grad_h0, None


def chunked_scan(
    a: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int | None = None
) -> Tensor:
    """The blocked parallel scan: a step loop inside chunks (vectorised over chunks), a carry loop
    over chunks, and a second step loop that writes every state. Exact (no logs), any sign,
    about 3 sqrt(T) Python steps; its backward is the same scan run backwards (``_ChunkedScan``).
    """
    _check(a, b, h0)
    chunk = _chunk_for(a.shape[1], chunk)
    if h0 is not None and h0.dtype != b.dtype:
        raise ValueError(f"h0 must have the dtype of b ({b.dtype}), got {h0.dtype}")
    return _ChunkedScan.apply(a, b, h0, chunk)


def _chunk_for(length: int, chunk: int | None) -> int:
    chunk = default_chunk_size(length) if chunk is None else chunk
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    return chunk


Coefficients = Callable[[Tensor], tuple[Tensor, Tensor]]
CoefficientsVjp = Callable[[Tensor, Tensor, Tensor], Tensor]  # (gates, dL/da, dL/db) -> dL/dgates


class _CellScan(torch.autograd.Function):
    """The blocked scan of a min-cell, with its gates computed inside the loops.

    Computing a_t, b_t from the gate pre-activations slice by slice, while the slice is in
    cache, replaces several passes of elementwise operations over ``[batch, time, hidden]``
    tensors; on a CPU those passes cost more than the recurrence. The backward runs the scan
    backwards and takes each slice's vector-Jacobian product of ``coefficients``: in closed
    form when ``vjp`` is given (the cells' ``coefficients_vjp``), else by autograd, so any
    cell's gates work. ``coefficients`` must depend on the gates alone (a parameter used
    inside it would get no gradient). Saves the gates, the states and the decays a; first
    derivatives only (no double backward).
    """

    @staticmethod
    def forward(
        ctx,
        gates: Tensor,
        h0: Tensor | None,
        coefficients: Coefficients,
        chunk: int,
        vjp: CoefficientsVjp | None,
    ):
        batch, length, _ = gates.shape
        gate_blocks = _blocks(gates, chunk, 0.0)
        n_chunks = gate_blocks.shape[1]
        last_real = chunk - (n_chunks * chunk - length)  # steps of the last chunk that are real

        def coefficients_at(t: int) -> tuple[Tensor, Tensor]:
            a_t, b_t = coefficients(gate_blocks[:, :, t])
            if t >= last_real:  # padding in the last chunk: an identity step (a = 1, b = 0)
                a_t, b_t = a_t.clone(), b_t.clone()
                a_t[:, -1], b_t[:, -1] = 1, 0
            return a_t, b_t

        kept: list[Tensor] = []  # the decays a, for the backward

        def keep_decay(t: int, a_t: Tensor, h_t: Tensor) -> None:
            if not kept:
                kept.append(a_t.new_empty(batch, n_chunks, chunk, a_t.shape[-1]))
            kept[0][:, :, t] = a_t

        training = any(ctx.needs_input_grad[:2])
        states, entering = _blocked_scan(
            coefficients_at, n_chunks, chunk, h0, False, keep_decay if training else None
        )
        a_blocks = kept[0] if training else None
        ctx.save_for_backward(gate_blocks, a_blocks, states, entering)
        ctx.coefficients, ctx.vjp, ctx.has_h0 = coefficients, vjp, h0 is not None
        return states.view(batch, n_chunks * chunk, -1)[:, :length]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        gate_blocks, a_blocks, states, entering = ctx.saved_tensors
        grad_gates = torch.empty_like(gate_blocks)

        def gates_vjp(t: int, next_a_t: Tensor, g_t: Tensor) -> None:
            h_prev = states[:, :, t - 1] if t > 0 else entering
            if ctx.vjp is not None:
                grad_gates[:, :, t] = ctx.vjp(gate_blocks[:, :, t], g_t * h_prev, g_t)
                return
            with torch.enable_grad():
                gates_t = gate_blocks[:, :, t].detach().requires_grad_(True)
                a_t, b_t = ctx.coefficients(gates_t)
                (grad_t,) = torch.autograd.grad((a_t, b_t), gates_t, (g_t * h_prev, g_t))
            grad_gates[:, :, t] = grad_t

        g = _reverse_gradient(a_blocks, grad_h, gates_vjp)
        batch, length = grad_h.shape[:2]
        grad_h0 = a_blocks[:, 0, 0] * g[:, 0, 0] if ctx.has_h0 else None
        grad_gates = grad_gates.view(batch, -1, gate_blocks.shape[-1])[:, :length]
        return grad_gates, grad_h0, None, None, None


def chunked_cell_scan(
    gates: Tensor,
    coefficients: Coefficients,
    h0: Tensor | None = None,
    chunk: int | None = None,
    vjp: CoefficientsVjp | None = None,
) -> Tensor:
    """The states of a min-cell from its gate pre-activations ``[batch, time, n_gates * hidden]``
    by the blocked scan, with ``coefficients(gates) -> (a, b)`` evaluated slice by slice inside
    the scan's loops (``_CellScan``). Same function as ``chunked_scan(*coefficients(gates))``.
    ``vjp(gates, dL/da, dL/db)`` gives the gradient reaching the gates in closed form (faster);
    without it, autograd differentiates ``coefficients`` slice by slice."""
    if gates.dim() != 3 or gates.shape[1] == 0:
        raise ValueError(f"gates must be [batch, time > 0, width], got shape {tuple(gates.shape)}")
    if h0 is not None and (h0.dim() != 2 or h0.shape[0] != gates.shape[0]):
        raise ValueError(f"h0 must be [batch, hidden], got shape {tuple(h0.shape)}")
    if h0 is not None and h0.dtype != gates.dtype:
        raise ValueError(f"h0 must have the dtype of the gates ({gates.dtype}), got {h0.dtype}")
    if chunk is None:
        chunk = cell_chunk_size(gates.shape[1], gates.shape[0])
    chunk = _chunk_for(gates.shape[1], chunk)
    return _CellScan.apply(gates, h0, coefficients, chunk, vjp)


def cell_chunk_size(length: int, batch: int) -> int:
    """The chunk of ``chunked_cell_scan``: sqrt(T) for a batch of 16 or more, half that (at
    least 4) for smaller batches, where each step's fixed cost outweighs its work (measured on
    2 CPU cores, hidden 128, T = 64 to 4,096)."""
    root = default_chunk_size(length)
    return root if batch >= 16 else max(4, root // 2)
