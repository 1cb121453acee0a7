"""minGRU and minLSTM (Feng et al. 2024), and the classic GRU/LSTM written the same way.

The min-cells drop the hidden state from their gates and the tanh from their candidate state:

- minGRU:  z_t = sigmoid(W_z x_t),  h~_t = g(W_h x_t),  h_t = (1 - z_t) h_{t-1} + z_t h~_t
- minLSTM: f_t, i_t = sigmoid(W_f x_t), sigmoid(W_i x_t);  f'_t, i'_t = f_t, i_t / (f_t + i_t);
           h_t = f'_t h_{t-1} + i'_t g(W_h x_t)

g (``scan.positive_g``) keeps every state positive, which the log-space scan needs; it is used in
every mode, so all modes compute the same function. Because the gates see only x_t, the whole
sequence reduces to h_t = a_t h_{t-1} + b_t, solved by one of the scans in ``scan``:

- ``"sequential"``: a step loop calling ``step`` (what inference does, one token at a time);
- ``"parallel"``: the paper's log-space parallel scan;
- ``"chunked"``: the blocked scan (same recurrence, linear space, ~3 sqrt(T) Python steps), with
  the gates computed inside its loops and its backward written out (``scan.chunked_cell_scan``);
- ``"stable"``: the log-space scan re-centred per chunk, whose float32 error does not grow with T.

The initial state h_0 is zero, a learned vector g(w) (``learn_h0=True``), or passed in. A state
passed in must be positive for the log-space modes (states the cell produces always are).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprobook.rnn import scan

MODES = ("sequential", "parallel", "chunked", "stable")
LOG_SPACE_MODES = ("parallel", "stable")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")


def _check_input(x: Tensor, d_in: int) -> None:
    if x.dim() != 3 or x.shape[-1] != d_in:
        raise ValueError(f"x must be [batch, time, {d_in}], got shape {tuple(x.shape)}")


class _MinCell(nn.Module):
    """Shared machinery: one linear map of x_t to all gates, h_0 handling, the three modes."""

    n_gates: int

    def __init__(self, d_in: int, d_hidden: int, mode: str = "parallel", learn_h0: bool = False):
        super().__init__()
        if d_in < 1 or d_hidden < 1:
            raise ValueError(f"d_in and d_hidden must be positive, got {d_in}, {d_hidden}")
        _check_mode(mode)
        self.d_in, self.d_hidden, self.mode = d_in, d_hidden, mode
        self.linear = nn.Linear(d_in, self.n_gates * d_hidden)
        self.h0_raw = nn.Parameter(torch.zeros(d_hidden)) if learn_h0 else None

    def initial_state(self, batch: int, h0: Tensor | None, like: Tensor) -> Tensor | None:
        if h0 is not None:
            if tuple(h0.shape) != (batch, self.d_hidden):
                raise ValueError(
                    f"h0 must be [batch, hidden] = {(batch, self.d_hidden)}, got {tuple(h0.shape)}"
                )
            return h0
        if self.h0_raw is not None:
            return scan.positive_g(self.h0_raw).to(like.dtype).expand(batch, -1)
        return None

    def forward(self, x: Tensor, h0: Tensor | None = None, mode: str | None = None) -> Tensor:
        """All states h_1..h_T, ``[batch, time, hidden]``; ``mode`` overrides the layer's mode."""
        mode = self.mode if mode is None else mode
        _check_mode(mode)
        _check_input(x, self.d_in)
        h0 = self.initial_state(x.shape[0], h0, x)
        if mode == "sequential":
            h = x.new_zeros(x.shape[0], self.d_hidden) if h0 is None else h0
            states = []
            for x_t in x.unbind(1):
                h = self.step(x_t, h)
                states.append(h)
            return torch.stack(states, 1)
        gates = self.linear(x)
        if mode in LOG_SPACE_MODES:
            if h0 is not None and not bool((h0 > 0).all()):
                raise ValueError(
                    f"the log-space scan ({mode} mode) needs a positive h0 (it takes log h0); "
                    "states produced by the cell are positive: pass one of them, or g(h0)"
                )
            log_a, log_b = self.log_coefficients(gates)
            solve = scan.log_space_scan if mode == "parallel" else scan.stable_log_space_scan
            return solve(log_a, log_b, None if h0 is None else torch.log(h0))
        return scan.chunked_cell_scan(gates, self.coefficients, h0, vjp=self.coefficients_vjp)

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """One time step: h_t from x_t ``[batch, d_in]`` and h_{t-1} ``[batch, hidden]``."""
        a, b = self.coefficients(self.linear(x_t))
        return a * h + b

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def log_coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def coefficients_vjp(self, gates: Tensor, grad_a: Tensor, grad_b: Tensor) -> Tensor:
        """The gradient reaching ``gates`` from dL/da and dL/db (the chunked scan's backward)."""
        raise NotImplementedError


def _g_and_slope(x: Tensor) -> tuple[Tensor, Tensor]:
    """g(x) and g'(x): x + 1/2 and 1 for x >= 0, sigmoid(x) and its slope otherwise."""
    s = torch.sigmoid(x)
    positive = x >= 0
    return torch.where(positive, x + 0.5, s), torch.where(positive, 1.0, s - s * s)


class MinGRU(_MinCell):
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t), z_t = sigmoid(W_z x_t)."""

    n_gates = 2

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = gates.chunk(2, -1)
        z = torch.sigmoid(k)
        return 1 - z, z * scan.positive_g(h_tilde)

    def log_coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = gates.chunk(2, -1)
        log_z, log_one_minus_z = -F.softplus(-k), -F.softplus(k)
        return log_one_minus_z, log_z + scan.log_positive_g(h_tilde)

    def coefficients_vjp(self, gates: Tensor, grad_a: Tensor, grad_b: Tensor) -> Tensor:
        # a = 1 - z, b = z g(h~): dz = dL/db g(h~) - dL/da, dk = dz z (1 - z), dh~ = dL/db z g'
        k, h_tilde = gates.chunk(2, -1)
        z = torch.sigmoid(k)
        g, slope = _g_and_slope(h_tilde)
        grad_k = torch.addcmul(-grad_a, grad_b, g).mul_(z - z * z)
        return torch.cat([grad_k, grad_b * z * slope], -1)


class MinLSTM(_MinCell):
    """minLSTM: h_t = f'_t h_{t-1} + i'_t g(W_h x_t) with f', i' = f, i / (f + i).

    ``forget_bias`` initialises the bias of the forget gate (the official code's init, 3 by
    default here, makes the layer remember at the start of training).
    """

    n_gates = 3

    def __init__(
        self,
        d_in: int,
        d_hidden: int,
        mode: str = "parallel",
        learn_h0: bool = False,
        forget_bias: float = 3.0,
    ):
        super().__init__(d_in, d_hidden, mode, learn_h0)
        with torch.no_grad():
            self.linear.bias[:d_hidden].fill_(forget_bias)

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, h_tilde = gates.chunk(3, -1)
        # f' = sigmoid(k_f) / (sigmoid(k_f) + sigmoid(k_i)) = sigmoid(-diff), i' = sigmoid(diff)
        diff = F.softplus(-k_f) - F.softplus(-k_i)
        return torch.sigmoid(-diff), torch.sigmoid(diff) * scan.positive_g(h_tilde)

    def log_coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, h_tilde = gates.chunk(3, -1)
        diff = F.softplus(-k_f) - F.softplus(-k_i)
        return -F.softplus(diff), -F.softplus(-diff) + scan.log_positive_g(h_tilde)

    def coefficients_vjp(self, gates: Tensor, grad_a: Tensor, grad_b: Tensor) -> Tensor:
        # a = sigmoid(-d), b = sigmoid(d) g(h~), d = softplus(-k_f) - softplus(-k_i):
        # dd = a (1 - a) (dL/db g - dL/da), dk_f = -dd sigmoid(-k_f), dk_i = dd sigmoid(-k_i)
        k_f, k_i, h_tilde = gates.chunk(3, -1)
        diff = F.softplus(-k_f) - F.softplus(-k_i)
        a = torch.sigmoid(-diff)
        g, slope = _g_and_slope(h_tilde)
        grad_diff = torch.addcmul(-grad_a, grad_b, g).mul_(a - a * a)
        return torch.cat(
            [-grad_diff * torch.sigmoid(-k_f), grad_diff * torch.sigmoid(-k_i),
             grad_b * (1 - a) * slope], -1,
        )  # fmt: skip


class StepGRU(nn.Module):
    """The classic GRU as a step loop of plain torch ops: the non-cuDNN reference of the paper.

    Gates r, z and the candidate n depend on x_t and h_{t-1} (PyTorch's GRU equations).
    """

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.d_in, self.d_hidden = d_in, d_hidden
        self.input_map = nn.Linear(d_in, 3 * d_hidden)
        self.hidden_map = nn.Linear(d_hidden, 3 * d_hidden)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        _check_input(x, self.d_in)
        h = x.new_zeros(x.shape[0], self.d_hidden) if h0 is None else h0
        states = []
        for x_t in x.unbind(1):
            xr, xz, xn = self.input_map(x_t).chunk(3, -1)
            hr, hz, hn = self.hidden_map(h).chunk(3, -1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            states.append(h)
        return torch.stack(states, 1)


class StepLSTM(nn.Module):
    """The classic LSTM as a step loop of plain torch ops (no cuDNN); returns the h states."""

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.d_in, self.d_hidden = d_in, d_hidden
        self.input_map = nn.Linear(d_in, 4 * d_hidden)
        self.hidden_map = nn.Linear(d_hidden, 4 * d_hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.d_in)
        h = x.new_zeros(x.shape[0], self.d_hidden)
        c = torch.zeros_like(h)
        states = []
        for x_t in x.unbind(1):
            i, f, g, o = (self.input_map(x_t) + self.hidden_map(h)).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        return torch.stack(states, 1)


class TorchRNN(nn.Module):
    """``nn.GRU`` / ``nn.LSTM`` (one layer, batch first), returning only the states."""

    def __init__(self, kind: str, d_in: int, d_hidden: int):
        super().__init__()
        if kind not in ("gru", "lstm"):
            raise ValueError(f"kind must be 'gru' or 'lstm', got {kind!r}")
        module = nn.GRU if kind == "gru" else nn.LSTM
        self.rnn = module(d_in, d_hidden, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]
