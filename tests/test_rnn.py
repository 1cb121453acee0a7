"""Tests of the minGRU / minLSTM library (reprobook.rnn): scans, cells, models, tasks, the
benchmark helpers and the training loop.

Exact small cases written by hand, and the three scans checked against each other in float64 on
tiny tensors; everything runs on one torch thread in a few seconds.
"""

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprobook.rnn import bench, cells, models, scan, tasks, training

F64 = torch.float64
LENGTHS = [1, 7, 64]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def positive_coefficients(batch, length, hidden, seed=0):
    """log a in (-inf, 0) (a gate), log b anywhere, log h0: float64, as the min-cells make them."""
    g = gen(seed)
    log_a = F.logsigmoid(torch.randn(batch, length, hidden, generator=g, dtype=F64))
    log_b = torch.randn(batch, length, hidden, generator=g, dtype=F64)
    log_h0 = torch.randn(batch, hidden, generator=g, dtype=F64)
    return log_a, log_b, log_h0


def assert_close(actual, expected, tol):
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0)


# --------------------------------------------------------------------------------------------
# scan: g(x), log g(x)
# --------------------------------------------------------------------------------------------


def test_positive_g_by_hand():
    x = torch.tensor([0.0, 1.0, 2.5, -1.0, -3.0], dtype=F64)
    expected = torch.tensor([0.5, 1.5, 3.0, 1 / (1 + math.e), 1 / (1 + math.exp(3.0))], dtype=F64)
    assert_close(scan.positive_g(x), expected, 1e-15)
    # continuous at 0 from the left: sigmoid(0-) -> 0.5
    assert abs(scan.positive_g(torch.tensor(-1e-12, dtype=F64)).item() - 0.5) < 1e-12


def test_positive_g_is_positive_everywhere():
    x = torch.linspace(-50, 50, 1001, dtype=F64)
    assert bool((scan.positive_g(x) > 0).all())


def test_log_positive_g_equals_log_of_g():
    x = torch.linspace(-19.9, 30, 500, dtype=F64)
    assert_close(scan.log_positive_g(x), torch.log(scan.positive_g(x)), 1e-12)
    # below -20, F.softplus's default threshold (softplus(y) = y for y > 20) drops a term
    # log1p(e^-20) ~ 2e-9: a relative error of 1e-10, below float32 resolution
    x = torch.linspace(-40, -20, 201, dtype=F64)
    torch.testing.assert_close(
        scan.log_positive_g(x), torch.log(scan.positive_g(x)), atol=0, rtol=1e-9
    )
    assert scan.log_positive_g(torch.tensor(0.0)).item() == pytest.approx(math.log(0.5))
    assert scan.log_positive_g(torch.tensor(1.0)).item() == pytest.approx(math.log(1.5))


def test_log_positive_g_finite_for_large_negative_x():
    """log sigmoid(x) ~ x for x -> -inf: finite where g(x) itself underflows to 0."""
    x = torch.tensor([-100.0, -1000.0, -1e4], dtype=torch.float32)
    assert bool((scan.positive_g(x)[1:] == 0).all())  # why log g must not be log(g)
    out = scan.log_positive_g(x)
    assert bool(torch.isfinite(out).all())
    assert_close(out, x, 1e-3)


def test_log_positive_g_gradient_is_finite():
    x = torch.tensor([-1000.0, -5.0, 0.3, 1000.0], requires_grad=True)
    scan.log_positive_g(x).sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    expected = torch.tensor([1.0, torch.sigmoid(torch.tensor(5.0)).item(), 1 / 0.8, 1 / 1000.5])
    assert_close(x.grad, expected, 1e-6)


# --------------------------------------------------------------------------------------------
# scan: the three scans
# --------------------------------------------------------------------------------------------


def test_sequential_scan_by_hand():
    a = torch.tensor([0.5, 2.0, -1.0], dtype=F64).view(1, 3, 1)
    b = torch.tensor([1.0, 1.0, 3.0], dtype=F64).view(1, 3, 1)
    # h0 = 2: h1 = 0.5*2 + 1 = 2, h2 = 2*2 + 1 = 5, h3 = -5 + 3 = -2
    h0 = torch.tensor([[2.0]], dtype=F64)
    assert scan.sequential_scan(a, b, h0).flatten().tolist() == [2.0, 5.0, -2.0]
    # h0 = 0: h1 = 1, h2 = 3, h3 = 0
    assert scan.sequential_scan(a, b).flatten().tolist() == [1.0, 3.0, 0.0]


def test_sequential_scan_is_elementwise_over_batch_and_hidden():
    a = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[2.0, 3.0], [2.0, 3.0]]], dtype=F64)
    b = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]], dtype=F64)
    h0 = torch.tensor([[0.0, 5.0], [1.0, 1.0]], dtype=F64)
    out = scan.sequential_scan(a, b, h0)
    expected = torch.tensor([[[1.0, 1.0], [2.0, 1.0]], [[2.0, 4.0], [5.0, 12.0]]], dtype=F64)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("with_h0", [False, True])
def test_log_space_scan_matches_sequential(length, with_h0):
    log_a, log_b, log_h0 = positive_coefficients(2, length, 3, seed=length)
    log_h0 = log_h0 if with_h0 else None
    expected = scan.sequential_scan(
        log_a.exp(), log_b.exp(), None if log_h0 is None else log_h0.exp()
    )
    assert_close(scan.log_space_scan(log_a, log_b, log_h0), expected, 1e-10)


def test_log_space_scan_with_tiny_gates_stays_finite():
    """a* = cumsum(log a) runs to -3000 over 64 steps: the scan must not overflow."""
    log_a = torch.full((1, 64, 2), -50.0, dtype=F64)
    log_b = torch.zeros(1, 64, 2, dtype=F64)
    out = scan.log_space_scan(log_a, log_b, torch.zeros(1, 2, dtype=F64))
    assert bool(torch.isfinite(out).all())
    assert_close(out, torch.ones_like(out), 1e-12)  # h_t = e^-50 h_{t-1} + 1 ~ 1


@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize(
    "length, chunk", [(7, 1), (8, 2), (7, 3), (10, 4), (7, 7), (5, 16), (1, 3), (64, None)]
)
def test_stable_log_space_scan_matches_sequential(length, chunk, with_h0):
    log_a, log_b, log_h0 = positive_coefficients(2, length, 3, seed=length)
    log_h0 = log_h0 if with_h0 else None
    expected = scan.sequential_scan(
        log_a.exp(), log_b.exp(), None if log_h0 is None else log_h0.exp()
    )
    assert_close(scan.stable_log_space_scan(log_a, log_b, log_h0, chunk), expected, 1e-10)


def test_stable_log_space_scan_gradcheck_with_padding():
    log_a, log_b, log_h0 = (t.requires_grad_() for t in positive_coefficients(1, 7, 2, seed=3))
    assert torch.autograd.gradcheck(
        lambda a, b, h: scan.stable_log_space_scan(a, b, h, chunk=3), (log_a, log_b, log_h0)
    )
    assert torch.autograd.gradcheck(
        lambda a, b: scan.stable_log_space_scan(a, b, None, chunk=3), (log_a, log_b)
    )


def _float32_error(fn, length):
    """Largest relative error of ``fn`` in float32 against the float64 step loop."""
    log_a, log_b, log_h0 = positive_coefficients(2, length, 8, seed=1)
    reference = scan.sequential_scan(log_a.exp(), log_b.exp(), log_h0.exp())
    out = fn(log_a.float(), log_b.float(), log_h0.float()).double()
    return float(((out - reference).abs() / reference.abs()).max())


def test_float32_error_grows_with_length_in_log_space_but_not_when_re_centred():
    """a* = cumsum(log a) grows like T and the plain scan cancels numbers of that size."""
    plain = {t: _float32_error(scan.log_space_scan, t) for t in (64, 4096)}
    stable = {t: _float32_error(scan.stable_log_space_scan, t) for t in (64, 4096)}
    assert plain[4096] > 10 * plain[64] and plain[4096] > 1e-4
    assert stable[4096] < 1e-5 and stable[4096] < 3 * stable[64] + 1e-6
    with pytest.raises(ValueError, match="chunk"):
        scan.stable_log_space_scan(*positive_coefficients(1, 4, 2)[:2], chunk=0)


CHUNK_CASES = [  # (length, chunk): chunk = 1, divisible, not divisible, chunk = T, chunk > T
    (7, 1), (8, 2), (7, 3), (10, 4), (7, 7), (5, 16), (1, 3), (64, None), (63, None),
]  # fmt: skip


@pytest.mark.parametrize(("length", "chunk"), CHUNK_CASES)
@pytest.mark.parametrize("with_h0", [False, True])
def test_chunked_scan_matches_sequential_any_sign(length, chunk, with_h0):
    g = gen(length)
    a = torch.randn(2, length, 3, generator=g, dtype=F64)  # negative a and b included
    b = torch.randn(2, length, 3, generator=g, dtype=F64) - 0.5
    h0 = -torch.rand(2, 3, generator=g, dtype=F64) - 1.0 if with_h0 else None
    expected = scan.sequential_scan(a, b, h0)
    assert_close(scan.chunked_scan(a, b, h0, chunk=chunk), expected, 1e-10)


def test_default_chunk_size():
    assert [scan.default_chunk_size(t) for t in (0, 1, 3, 4, 63, 64, 4096)] == [
        1, 1, 1, 2, 7, 8, 64,
    ]  # fmt: skip


def test_chunked_scan_gradcheck():
    g = gen(1)
    a = torch.randn(1, 5, 2, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(1, 5, 2, generator=g, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 2, generator=g, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h: scan.chunked_scan(a, b, h, chunk=2), (a, b, h0))


@pytest.mark.parametrize(("length", "chunk"), CHUNK_CASES)
@pytest.mark.parametrize("cell_class", [cells.MinGRU, cells.MinLSTM])
@pytest.mark.parametrize("with_h0", [False, True])
def test_chunked_cell_scan_matches_the_scan_of_its_coefficients(length, chunk, cell_class, with_h0):
    torch.manual_seed(length)
    cell = cell_class(3, 4).double()
    gates = 2 * torch.randn(2, length, cell.n_gates * 4, generator=gen(length), dtype=F64)
    h0 = torch.rand(2, 4, generator=gen(1), dtype=F64) + 0.1 if with_h0 else None
    expected = scan.sequential_scan(*cell.coefficients(gates), h0)
    got = scan.chunked_cell_scan(gates, cell.coefficients, h0, chunk=chunk)
    assert_close(got, expected, 1e-10)


@pytest.mark.parametrize("cell_class", [cells.MinGRU, cells.MinLSTM])
@pytest.mark.parametrize("closed_form", [False, True])
@pytest.mark.parametrize(("length", "chunk"), [(5, 2), (6, 3), (1, 4)])
def test_chunked_cell_scan_gradcheck(cell_class, closed_form, length, chunk):
    # The written-out backward (reverse scan, then each slice's vector-Jacobian product of the
    # gates, by autograd or in closed form) against finite differences, padding included.
    torch.manual_seed(0)
    cell = cell_class(3, 2).double()
    gates = torch.randn(2, length, cell.n_gates * 2, dtype=F64, requires_grad=True)
    h0 = (torch.rand(2, 2, dtype=F64) + 0.1).requires_grad_()
    vjp = cell.coefficients_vjp if closed_form else None
    assert torch.autograd.gradcheck(
        lambda g, h: scan.chunked_cell_scan(g, cell.coefficients, h, chunk=chunk, vjp=vjp),
        (gates, h0),
    )
    assert torch.autograd.gradcheck(
        lambda g: scan.chunked_cell_scan(g, cell.coefficients, chunk=chunk, vjp=vjp), (gates,)
    )


@pytest.mark.parametrize("cell_class", [cells.MinGRU, cells.MinLSTM])
def test_coefficients_vjp_equals_autograd(cell_class):
    torch.manual_seed(1)
    cell = cell_class(3, 5).double()
    gates = 3 * torch.randn(4, 6, cell.n_gates * 5, dtype=F64, requires_grad=True)
    grad_a, grad_b = torch.randn(2, 4, 6, 5, dtype=F64)
    expected = torch.autograd.grad(cell.coefficients(gates), gates, (grad_a, grad_b))[0]
    assert_close(cell.coefficients_vjp(gates.detach(), grad_a, grad_b), expected, 1e-12)


def test_cell_chunk_size():
    assert [scan.cell_chunk_size(t, 64) for t in (64, 1024, 4096)] == [8, 32, 64]
    assert [scan.cell_chunk_size(t, 1) for t in (4, 64, 1024, 4096)] == [4, 4, 16, 32]


@pytest.mark.parametrize(
    ("shape", "chunk"), [((2, 6), None), ((2, 0, 4), None), ((2, 6, 4), 0), ((2, 6, 4), 1.5)]
)
def test_chunked_cell_scan_rejects_bad_input(shape, chunk):
    cell = cells.MinGRU(3, 2)
    with pytest.raises(ValueError):
        scan.chunked_cell_scan(torch.zeros(shape), cell.coefficients, chunk=chunk)
    with pytest.raises(ValueError, match="h0"):
        scan.chunked_cell_scan(torch.zeros(2, 6, 4), cell.coefficients, torch.ones(3, 2))
    with pytest.raises(ValueError, match="dtype"):
        scan.chunked_cell_scan(torch.zeros(2, 6, 4), cell.coefficients, torch.ones(2, 2).double())


def test_log_space_scan_gradcheck():
    log_a, log_b, log_h0 = positive_coefficients(1, 5, 2, seed=2)
    inputs = tuple(t.clone().requires_grad_() for t in (log_a, log_b, log_h0))
    assert torch.autograd.gradcheck(scan.log_space_scan, inputs)
    assert torch.autograd.gradcheck(lambda a, b: scan.log_space_scan(a, b), inputs[:2])


def test_scan_gradients_match_sequential():
    log_a, log_b, log_h0 = positive_coefficients(2, 9, 3, seed=3)
    weights = torch.randn(2, 9, 3, generator=gen(4), dtype=F64)

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (log_a, log_b, log_h0)]
        (fn(*leaves) * weights).sum().backward()
        return [t.grad for t in leaves]

    reference = grads(lambda la, lb, lh: scan.sequential_scan(la.exp(), lb.exp(), lh.exp()))
    for fn in (
        scan.log_space_scan,
        lambda la, lb, lh: scan.chunked_scan(la.exp(), lb.exp(), lh.exp(), chunk=4),
    ):
        for got, want in zip(grads(fn), reference, strict=True):
            assert_close(got, want, 1e-10)


SCANS = {
    "sequential": scan.sequential_scan,
    "log_space": scan.log_space_scan,
    "chunked": scan.chunked_scan,
}


@pytest.mark.parametrize("name", SCANS)
@pytest.mark.parametrize(
    ("a_shape", "b_shape", "h0_shape"),
    [
        ((2, 3), (2, 3), None),  # not 3-D
        ((2, 3, 4, 1), (2, 3, 4, 1), None),
        ((2, 3, 4), (2, 3, 5), None),  # a and b differ
        ((2, 0, 4), (2, 0, 4), None),  # empty time
        ((2, 3, 4), (2, 3, 4), (2, 3)),  # bad h0
        ((2, 3, 4), (2, 3, 4), (4,)),
        ((2, 3, 4), (2, 3, 4), (1, 4)),
    ],
)
def test_scans_reject_bad_shapes(name, a_shape, b_shape, h0_shape):
    h0 = None if h0_shape is None else torch.zeros(h0_shape)
    with pytest.raises(ValueError):
        SCANS[name](torch.zeros(a_shape), torch.zeros(b_shape), h0)


@pytest.mark.parametrize("chunk", [0, -1, 2.0])
def test_chunked_scan_rejects_bad_chunk(chunk):
    with pytest.raises(ValueError, match="chunk"):
        scan.chunked_scan(torch.ones(1, 4, 2), torch.ones(1, 4, 2), chunk=chunk)


# --------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------

MIN_CELLS = {"mingru": cells.MinGRU, "minlstm": cells.MinLSTM}


def make_cell(name, d_in=3, d_hidden=4, seed=0, **kwargs):
    torch.manual_seed(seed)
    cell = MIN_CELLS[name](d_in, d_hidden, **kwargs).double()
    if cell.h0_raw is not None:
        with torch.no_grad():
            cell.h0_raw.normal_()  # not the all-zero init, so a wrong h0 would show
    return cell


@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("h0_kind", ["zero", "given", "learned"])
def test_cell_modes_agree_float64(name, length, h0_kind):
    cell = make_cell(name, learn_h0=h0_kind == "learned")
    x = 2 * torch.randn(2, length, 3, generator=gen(length), dtype=F64)
    h0 = torch.rand(2, 4, generator=gen(9), dtype=F64) + 0.1 if h0_kind == "given" else None
    with torch.no_grad():
        ref = cell(x, h0=h0, mode="sequential")
        for mode in ("parallel", "chunked"):
            assert_close(cell(x, h0=h0, mode=mode), ref, 1e-10)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_cell_modes_agree_on_parameter_gradients(name):
    x = torch.randn(2, 6, 3, generator=gen(5), dtype=F64)
    grads = {}
    for mode in cells.MODES:
        cell = make_cell(name, learn_h0=True)
        cell(x, mode=mode).square().sum().backward()
        grads[mode] = [p.grad for p in cell.parameters()]
    for mode in ("parallel", "chunked"):
        for got, want in zip(grads[mode], grads["sequential"], strict=True):
            assert_close(got, want, 1e-10)


@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("mode", cells.MODES)
def test_cell_continues_from_state(name, mode):
    """Processing x[:, :k] then x[:, k:] from the last state equals processing x at once."""
    cell = make_cell(name, learn_h0=True)
    x = torch.randn(2, 9, 3, generator=gen(6), dtype=F64)
    with torch.no_grad():
        whole = cell(x, mode=mode)
        first = cell(x[:, :4], mode=mode)
        second = cell(x[:, 4:], h0=first[:, -1], mode=mode)
    assert_close(torch.cat([first, second], 1), whole, 1e-10)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_cell_step_is_one_step_of_forward(name):
    cell = make_cell(name)
    x = torch.randn(2, 1, 3, generator=gen(7), dtype=F64)
    h = torch.rand(2, 4, generator=gen(8), dtype=F64) + 0.2
    with torch.no_grad():
        stepped = cell.step(x[:, 0], h)
        for mode in cells.MODES:
            assert_close(cell(x, h0=h, mode=mode)[:, 0], stepped, 1e-12)


def test_mingru_step_by_hand():
    """h = (1 - z) h_prev + z g(W_h x), z = sigmoid(W_z x): with W = 0 and biases set by hand."""
    cell = cells.MinGRU(1, 1).double()
    with torch.no_grad():
        cell.linear.weight.zero_()
        cell.linear.bias.copy_(torch.tensor([0.0, 1.0]))  # z = 0.5, h~ = g(1) = 1.5
    h = cell.step(torch.zeros(1, 1, dtype=F64), torch.tensor([[3.0]], dtype=F64))
    assert h.item() == pytest.approx(0.5 * 3.0 + 0.5 * 1.5)


def test_minlstm_step_by_hand():
    """f = sigmoid(0) = 0.5, i = sigmoid(ln 3) = 0.75: f' = 0.4, i' = 0.6; h~ = g(0.5) = 1."""
    cell = cells.MinLSTM(1, 1).double()
    with torch.no_grad():
        cell.linear.weight.zero_()
        cell.linear.bias.copy_(torch.tensor([0.0, math.log(3.0), 0.5]))  # g(0.5) = 1
    h = cell.step(torch.zeros(1, 1, dtype=F64), torch.tensor([[2.0]], dtype=F64))
    assert h.item() == pytest.approx(0.4 * 2.0 + 0.6 * 1.0)


def test_minlstm_normalised_gates_sum_to_one():
    """With h~ = g(0.5) = 1 the b coefficient is i' alone, so a + b = f' + i' = 1."""
    cell = cells.MinLSTM(1, 5).double()
    k = torch.tensor([-40.0, -3.0, 0.0, 2.0, 40.0], dtype=F64)
    k_f, k_i = k.view(1, 5), k.flip(0).view(1, 5)
    gates = torch.cat([k_f, k_i, torch.full((1, 5), 0.5, dtype=F64)], -1)
    f_norm, i_norm = cell.coefficients(gates)
    assert_close(f_norm + i_norm, torch.ones(1, 5, dtype=F64), 1e-15)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    assert_close(f_norm, f / (f + i), 1e-14)
    log_f, log_i = cell.log_coefficients(gates)
    assert_close(log_f.exp(), f_norm, 1e-14)
    assert_close(log_i.exp(), i_norm, 1e-14)


def test_mingru_log_coefficients_are_logs_of_coefficients():
    cell = cells.MinGRU(1, 3).double()
    gates = torch.tensor([[-30.0, 0.0, 4.0, -20.0, 0.5, 3.0]], dtype=F64)
    a, b = cell.coefficients(gates)
    log_a, log_b = cell.log_coefficients(gates)
    assert_close(log_a, a.log(), 1e-12)
    assert_close(log_b, b.log(), 1e-12)


def test_minlstm_forget_bias():
    cell = cells.MinLSTM(2, 3, forget_bias=1.5)
    assert cell.linear.bias[:3].tolist() == [1.5, 1.5, 1.5]


@pytest.mark.parametrize("name", MIN_CELLS)
def test_parallel_mode_refuses_non_positive_h0(name):
    cell = make_cell(name)
    x = torch.randn(2, 5, 3, generator=gen(10), dtype=F64)
    h0 = torch.tensor([[0.5, -1.0, 0.2, 1.0], [0.5, 0.0, 0.2, 1.0]], dtype=F64)
    with pytest.raises(ValueError, match="positive h0"):
        cell(x, h0=h0, mode="parallel")
    with torch.no_grad():
        assert_close(cell(x, h0=h0, mode="chunked"), cell(x, h0=h0, mode="sequential"), 1e-12)


@pytest.mark.parametrize("name", MIN_CELLS)
def test_cell_rejects_bad_arguments(name):
    cls = MIN_CELLS[name]
    with pytest.raises(ValueError, match="unknown mode"):
        cls(3, 4, mode="fast")
    with pytest.raises(ValueError):
        cls(0, 4)
    with pytest.raises(ValueError):
        cls(3, 0)
    cell = cls(3, 4)
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="unknown mode"):
        cell(x, mode="fast")
    for bad in (torch.randn(2, 3), torch.randn(2, 5, 4), torch.randn(1, 2, 5, 3)):
        with pytest.raises(ValueError, match="x must be"):
            cell(bad)
    with pytest.raises(ValueError, match="h0 must be"):
        cell(x, h0=torch.ones(2, 3))


@pytest.mark.parametrize(("name", "n_gates"), [("mingru", 2), ("minlstm", 3)])
@pytest.mark.parametrize(("d_in", "d_hidden"), [(1, 1), (3, 4), (7, 5)])
def test_min_cell_parameter_count(name, n_gates, d_in, d_hidden):
    assert models.count_parameters(MIN_CELLS[name](d_in, d_hidden)) == (
        n_gates * d_hidden * (d_in + 1)
    )
    learned = MIN_CELLS[name](d_in, d_hidden, learn_h0=True)
    assert models.count_parameters(learned) == n_gates * d_hidden * (d_in + 1) + d_hidden


@pytest.mark.parametrize("name", MIN_CELLS)
def test_sequential_mode_keeps_the_input_device(name):
    cell = MIN_CELLS[name](3, 4).to("meta")
    out = cell(torch.empty(2, 5, 3, device="meta"), mode="sequential")
    assert out.device.type == "meta" and out.shape == (2, 5, 4)


@pytest.mark.parametrize("name", MIN_CELLS)
@pytest.mark.parametrize("mode", ["parallel", "chunked"])
def test_parallel_modes_keep_the_input_device(name, mode):
    cell = MIN_CELLS[name](3, 4).to("meta")
    out = cell(torch.empty(2, 5, 3, device="meta"), mode=mode)
    assert out.device.type == "meta" and out.shape == (2, 5, 4)


def test_step_gru_matches_torch_gru():
    torch.manual_seed(0)
    ref = nn.GRU(3, 4, batch_first=True)
    mine = cells.StepGRU(3, 4)
    with torch.no_grad():
        mine.input_map.weight.copy_(ref.weight_ih_l0)
        mine.input_map.bias.copy_(ref.bias_ih_l0)
        mine.hidden_map.weight.copy_(ref.weight_hh_l0)
        mine.hidden_map.bias.copy_(ref.bias_hh_l0)
    x = torch.randn(2, 6, 3, generator=gen(11))
    h0 = torch.randn(2, 4, generator=gen(12))
    with torch.no_grad():
        assert_close(mine(x), ref(x)[0], 1e-6)
        assert_close(mine(x, h0), ref(x, h0.unsqueeze(0))[0], 1e-6)


def test_step_lstm_matches_torch_lstm():
    torch.manual_seed(0)
    ref = nn.LSTM(3, 4, batch_first=True)
    mine = cells.StepLSTM(3, 4)
    with torch.no_grad():
        mine.input_map.weight.copy_(ref.weight_ih_l0)
        mine.input_map.bias.copy_(ref.bias_ih_l0 + ref.bias_hh_l0)
        mine.hidden_map.weight.copy_(ref.weight_hh_l0)
    x = torch.randn(2, 6, 3, generator=gen(13))
    with torch.no_grad():
        assert_close(mine(x), ref(x)[0], 1e-6)


def test_step_rnns_reject_bad_input():
    for layer in (cells.StepGRU(3, 4), cells.StepLSTM(3, 4)):
        with pytest.raises(ValueError):
            layer(torch.randn(2, 5, 2))


def test_torch_rnn():
    for kind in ("gru", "lstm"):
        assert cells.TorchRNN(kind, 3, 4)(torch.randn(2, 5, 3)).shape == (2, 5, 4)
    with pytest.raises(ValueError, match="kind"):
        cells.TorchRNN("rnn", 3, 4)


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", models.CELLS)
@pytest.mark.parametrize(("conv_kernel", "mlp"), [(0, False), (4, True)])
def test_block_and_lm_shapes(cell, conv_kernel, mlp):
    torch.manual_seed(0)
    block = models.RecurrentBlock(cell, 8, expansion=1.5, conv_kernel=conv_kernel, mlp=mlp)
    assert block(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    lm = models.RecurrentLM(7, cell, 8, 2, conv_kernel=conv_kernel, mlp=mlp)
    tokens = torch.randint(0, 7, (2, 5), generator=gen(0))
    assert lm(tokens).shape == (2, 5, 7)


def test_block_hidden_width_follows_expansion():
    assert models.RecurrentBlock("mingru", 8, expansion=1.5).rnn.d_hidden == 12
    assert models.RecurrentBlock("gru", 8, expansion=0.01).rnn.hidden_size == 1
    assert models.RecurrentBlock("minlstm", 8, mlp=False).mlp is None
    assert models.RecurrentBlock("minlstm", 8, conv_kernel=1).conv is None


def test_causal_depthwise_conv_by_hand():
    conv = models.CausalDepthwiseConv(1, 3)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))  # oldest .. current
        conv.conv.bias.zero_()
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1)
    # y_t = 100 x_t + 10 x_{t-1} + x_{t-2}, zeros before the start
    assert conv(x).flatten().tolist() == [100.0, 210.0, 321.0, 432.0]


def build_model(kind, mode="parallel"):
    torch.manual_seed(0)
    if kind == "transformer":
        return models.CausalTransformer(7, 8, 2, 2, context=12)
    return models.RecurrentLM(7, kind, 8, 2, conv_kernel=4, mlp=True, mode=mode)


@pytest.mark.parametrize(
    ("kind", "mode"),
    [("mingru", "parallel"), ("mingru", "chunked"), ("mingru", "sequential"),
     ("minlstm", "parallel"), ("minlstm", "chunked"), ("gru", "parallel"),
     ("lstm", "parallel"), ("transformer", "parallel")],
)  # fmt: skip
def test_models_are_causal(kind, mode):
    model = build_model(kind, mode).eval()
    tokens = torch.randint(0, 7, (2, 10), generator=gen(1))
    t = 6
    changed = tokens.clone()
    changed[:, t] = (tokens[:, t] + 1) % 7
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert_close(after[:, :t], before[:, :t], 1e-6)
    assert (after[:, t:] - before[:, t:]).abs().max() > 1e-4  # the change does reach t onwards


def test_transformer_refuses_sequences_past_its_context():
    model = models.CausalTransformer(7, 8, 1, 2, context=6)
    assert model(torch.zeros(1, 6, dtype=torch.long)).shape == (1, 6, 7)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        models.CausalTransformer(7, 6, 1, 4, context=6)


def test_unknown_cell_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown cell"):
        models.RecurrentBlock("rnn", 8)
    with pytest.raises(ValueError, match="unknown cell"):
        models.RecurrentLM(7, "transformer", 8, 1)
    for vocab, d_model, n_layers in ((1, 8, 1), (7, 0, 1), (7, 8, 0)):
        with pytest.raises(ValueError):
            models.RecurrentLM(vocab, "mingru", d_model, n_layers)


def test_count_parameters():
    layer = nn.Linear(3, 4)
    assert models.count_parameters(layer) == 16
    layer.bias.requires_grad_(False)
    assert models.count_parameters(layer) == 12  # trainable parameters only
    lm = models.RecurrentLM(7, "mingru", 4, 1, expansion=1.0, conv_kernel=0, mlp=False)
    # embedding 7*4, RMSNorm 4, minGRU 2*4*5 + h0 4, out 4*4+4, final RMSNorm 4, head 4*7+7
    assert models.count_parameters(lm) == 28 + 4 + 40 + 4 + 20 + 4 + 35


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


def test_selective_copy_batch_layout():
    batch, length, k, vocab = 16, 12, 4, 9
    inputs, targets = tasks.selective_copy_batch(batch, length, k, vocab, gen(0))
    assert inputs.shape == (batch, length + k) and targets.shape == (batch, k)
    assert inputs.dtype == torch.long and targets.dtype == torch.long
    assert bool((inputs[:, length:] == tasks.MARKER).all())
    body = inputs[:, :length]
    is_data = body >= 2
    assert is_data.sum(1).tolist() == [k] * batch
    assert bool(((body == tasks.NOISE) | is_data).all())  # no marker among the noise
    assert bool(((targets >= 2) & (targets < vocab)).all())
    for row in range(batch):
        assert body[row][is_data[row]].tolist() == targets[row].tolist()


def test_selective_copy_batch_all_positions_data():
    inputs, targets = tasks.selective_copy_batch(3, 4, 4, 5, gen(0))
    assert torch.equal(inputs[:, :4], targets)


def test_selective_copy_batch_is_deterministic():
    first = tasks.selective_copy_batch(4, 10, 3, 16, gen(5))
    second = tasks.selective_copy_batch(4, 10, 3, 16, gen(5))
    other = tasks.selective_copy_batch(4, 10, 3, 16, gen(6))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize(
    ("batch", "length", "n_tokens", "vocab"),
    [(2, 10, 3, 2), (2, 10, 11, 16), (2, 10, 0, 16), (0, 10, 3, 16)],
)
def test_selective_copy_batch_rejects_bad_arguments(batch, length, n_tokens, vocab):
    with pytest.raises(ValueError):
        tasks.selective_copy_batch(batch, length, n_tokens, vocab, gen(0))


def test_copy_accuracy_by_hand():
    targets = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 9]])
    predicted = torch.tensor([[2, 3, 4, 0], [6, 7, 8, 9]])  # row 0: 3 of 4 right
    logits = F.one_hot(predicted, 10).float()
    accuracy, exact = tasks.copy_accuracy(logits, targets)
    assert accuracy == pytest.approx(7 / 8)
    assert exact == pytest.approx(1 / 2)
    assert tasks.copy_accuracy(logits[:1], targets[:1]) == (pytest.approx(0.75), 0.0)
    with pytest.raises(ValueError):
        tasks.copy_accuracy(logits[:, :3], targets)


@pytest.fixture(scope="module")
def pydoc_text():
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def test_load_char_corpus_small(pydoc_text):
    corpus = tasks.load_char_corpus(max_chars=5000)
    assert len(corpus.train) + len(corpus.val) + len(corpus.test) == 5000
    assert (len(corpus.val), len(corpus.test)) == (250, 250)
    text = pydoc_text[:5000]
    assert corpus.decode(corpus.train[:50]) == text[:50]
    assert corpus.decode(torch.cat([corpus.train, corpus.val, corpus.test])) == text
    assert corpus.chars == "".join(sorted(set(text)))
    assert corpus.vocab == len(corpus.chars)
    assert corpus.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert tasks.load_char_corpus(max_chars=5000).sha256 == corpus.sha256
    assert tasks.load_char_corpus(max_chars=6000).sha256 != corpus.sha256


def test_load_char_corpus_whole_text(pydoc_text):
    corpus = tasks.load_char_corpus(val_frac=0.1, test_frac=0.2)
    n = len(pydoc_text)
    assert len(corpus.train) + len(corpus.val) + len(corpus.test) == n
    assert (len(corpus.val), len(corpus.test)) == (int(0.1 * n), int(0.2 * n))
    assert corpus.decode(corpus.test[-20:]) == pydoc_text[-20:]


@pytest.mark.parametrize(
    "kwargs",
    [dict(val_frac=0.0), dict(val_frac=0.5), dict(test_frac=-0.1), dict(test_frac=0.7),
     dict(max_chars=999)],
)  # fmt: skip
def test_load_char_corpus_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        tasks.load_char_corpus(**kwargs)


def test_random_windows():
    stream = torch.arange(50)
    inputs, targets = tasks.random_windows(stream, 8, 6, gen(0))
    assert inputs.shape == targets.shape == (8, 6)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert torch.equal(targets, inputs + 1)  # contiguous windows of the stream, shifted by one
    assert torch.equal(inputs - inputs[:, :1], torch.arange(6).expand(8, 6))
    again = tasks.random_windows(stream, 8, 6, gen(0))
    assert torch.equal(again[0], inputs)
    with pytest.raises(ValueError):
        tasks.random_windows(torch.arange(6), 2, 6, gen(0))


def test_random_windows_reach_the_last_window():
    stream = torch.arange(8)  # context 6: windows start at 0 or 1
    inputs, targets = tasks.random_windows(stream, 64, 6, gen(0))
    assert set(inputs[:, 0].tolist()) == {0, 1}
    assert targets.max().item() == 7


def test_sequential_windows_cover_the_stream():
    stream = torch.arange(23)
    inputs, targets = tasks.sequential_windows(stream, 5)
    assert inputs.shape == targets.shape == (4, 5)  # (23 - 1) // 5 windows
    assert torch.equal(inputs.flatten(), stream[:20])
    assert torch.equal(targets.flatten(), stream[1:21])
    inputs, targets = tasks.sequential_windows(torch.arange(11), 5)  # exact fit: 2 windows
    assert torch.equal(targets.flatten(), torch.arange(1, 11))
    with pytest.raises(ValueError):
        tasks.sequential_windows(torch.arange(5), 5)


# --------------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------------


def test_saved_activation_bytes_by_hand():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3, requires_grad=True)
    const = torch.randn(5, 3)
    # mul saves both factors when both need a gradient; sum saves no tensor
    assert bench.saved_activation_bytes(lambda: (x * w).sum()) == 2 * 15 * 4
    # only the factor the gradient needs: d(x * c)/dx = c
    assert bench.saved_activation_bytes(lambda: (x * const).sum()) == 15 * 4
    # one storage saved twice is counted once
    assert bench.saved_activation_bytes(lambda: (x * x).sum()) == 15 * 4
    # exp saves its output (a new [5, 3] float32 tensor)
    assert bench.saved_activation_bytes(lambda: x.exp().sum()) == 15 * 4
    assert bench.saved_activation_bytes(lambda: (x.double() * w.double()).sum()) == 2 * 15 * 8
    with torch.no_grad():
        assert bench.saved_activation_bytes(lambda: (x * w).sum()) == 0


def test_time_training_step():
    torch.manual_seed(0)
    layer = cells.MinGRU(3, 4)
    result = bench.time_training_step(layer, torch.randn(2, 6, 3), repeats=2, warmup=0)
    assert result["seconds"] > 0 and result["seconds_min"] > 0
    assert result["seconds_min"] <= result["seconds"]
    assert result["activation_bytes"] > 0
    assert "cuda_peak_bytes" not in result
    assert all(p.grad is not None for p in layer.parameters())  # it did run backward


def test_time_training_step_custom_forward():
    layer = nn.Linear(3, 4)
    x = torch.randn(2, 3)
    calls = []

    def forward(module, inputs):
        calls.append(1)
        return module(inputs)

    result = bench.time_training_step(layer, x, repeats=1, warmup=1, forward=forward)
    assert len(calls) == 3  # warm-up, timed, memory
    # addmm saves x [2, 3] (for dW) and square saves the output [2, 4]: (6 + 8) float32
    assert result["activation_bytes"] == (6 + 8) * 4


@pytest.mark.parametrize(("repeats", "warmup"), [(0, 1), (-1, 0), (1, -1)])
def test_time_training_step_rejects_bad_counts(repeats, warmup):
    with pytest.raises(ValueError):
        bench.time_training_step(nn.Linear(2, 2), torch.randn(1, 2), repeats, warmup)
    with pytest.raises(ValueError):
        bench.time_inference(nn.Linear(2, 2), torch.randn(1, 2), repeats, warmup)


def test_time_training_step_without_memory_and_time_inference():
    layer, x, calls = nn.Linear(3, 4), torch.randn(2, 3), []

    def forward(module, inputs):
        calls.append(torch.is_inference_mode_enabled())
        return module(inputs)

    result = bench.time_training_step(layer, x, repeats=2, warmup=1, forward=forward, memory=False)
    assert set(result) == {"seconds", "seconds_min"} and calls == [False] * 3
    calls.clear()
    result = bench.time_inference(layer, x, repeats=2, warmup=1, forward=forward)
    assert set(result) == {"seconds", "seconds_min"} and calls == [True] * 3
    assert 0 < result["seconds_min"] <= result["seconds"]


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def test_warmup_cosine_values():
    total, warmup = 100, 10
    assert training.warmup_cosine(0, total, warmup) == pytest.approx(0.1)
    assert training.warmup_cosine(4, total, warmup) == pytest.approx(0.5)
    assert training.warmup_cosine(9, total, warmup) == pytest.approx(1.0)
    assert training.warmup_cosine(10, total, warmup) == pytest.approx(1.0)
    assert training.warmup_cosine(55, total, warmup) == pytest.approx(0.55)  # half way down
    assert training.warmup_cosine(total, total, warmup) == pytest.approx(0.1)
    assert training.warmup_cosine(total + 50, total, warmup) == pytest.approx(0.1)
    assert training.warmup_cosine(0, total, 0) == pytest.approx(1.0)


def test_train_lowers_the_loss():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    x = torch.randn(64, 2, generator=gen(0))
    y = x @ torch.tensor([[2.0], [-3.0]]) + 0.5

    def loss_on_batch(module, step):
        return F.mse_loss(module(x), y)

    evaluated = []

    def evaluate(module):
        evaluated.append((module.training, torch.is_grad_enabled()))
        return F.mse_loss(module(x), y).item()

    history = training.train(
        model, loss_on_batch, steps=60, lr=0.1, weight_decay=0.0, evaluate=evaluate, eval_every=20
    )
    assert len(history["loss"]) == 60
    assert history["loss"][-1] < 0.05 * history["loss"][0]
    assert history["eval_step"] == [20, 40, 60]
    assert history["eval"][-1] < 0.05 * history["loss"][0]
    assert evaluated == [(False, False)] * 3  # eval mode, no grad
    assert model.training


def test_train_without_evaluate():
    history = training.train(nn.Linear(1, 1), lambda m, s: m(torch.ones(1, 1)).sum(), 3, 1e-3)
    assert len(history["loss"]) == 3 and history["eval"] == [] and history["eval_step"] == []


@pytest.mark.parametrize(("steps", "lr"), [(0, 1e-3), (-1, 1e-3), (5, 0.0)])
def test_train_rejects_bad_arguments(steps, lr):
    with pytest.raises(ValueError):
        training.train(nn.Linear(1, 1), lambda m, s: m(torch.ones(1, 1)).sum(), steps, lr)


def test_release_memory_runs():
    bench.release_memory()  # gc + malloc_trim where glibc has it; must never raise
