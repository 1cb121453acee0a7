"""Fixed-point types that mean the same thing in PyTorch and in hls4ml's ``ap_fixed``.

A :class:`FixedType` is Vivado HLS's ``ap_[u]fixed<W, I, Q, O>``: ``W`` bits in all, ``I`` of
them integer bits (the sign bit included when signed), so the step is ``2**-(W - I)``. We use
two quantization modes, ``AP_RND_CONV`` (round half to even, what ``torch.round`` does) and
``AP_TRN`` (floor), and two overflow modes, ``AP_SAT`` (clamp) and ``AP_WRAP`` (used only for
the wide types, which never overflow here). Quantization-aware training calls
:func:`fake_quantize`, whose forward pass is exactly the C++ cast, so that the model hls4ml
compiles computes the same numbers as the model we trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ROUNDING_MODES = ("AP_RND_CONV", "AP_TRN")
OVERFLOW_MODES = ("AP_SAT", "AP_WRAP")


@dataclass(frozen=True)
class FixedType:
    """``ap_fixed<width, integer>`` (signed) or ``ap_ufixed<width, integer>`` (unsigned)."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "AP_RND_CONV"
    overflow: str = "AP_SAT"

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 1 <= self.width <= 64:
            raise ValueError(f"width must be an int in 1..64, got {self.width!r}")
        if not isinstance(self.integer, int) or not -16 <= self.integer <= 48:
            raise ValueError(f"integer bits must be an int in -16..48, got {self.integer!r}")
        if self.signed and self.width < 2:
            raise ValueError("a signed fixed-point type needs at least 2 bits")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {self.rounding!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {self.overflow!r}")

    @property
    def fraction(self) -> int:
        """Fractional bits ``W - I``."""
        return self.width - self.integer

    @property
    def step(self) -> float:
        """The value of one least significant bit."""
        return 2.0 ** (-self.fraction)

    @property
    def min_code(self) -> int:
        return -(2 ** (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1

    @property
    def min_value(self) -> float:
        return self.min_code * self.step

    @property
    def max_value(self) -> float:
        return self.max_code * self.step

    def hls(self) -> str:
        """The type as hls4ml and Vivado HLS spell it."""
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width},{self.integer},{self.rounding},{self.overflow}>"

    def to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes ``x / step`` after rounding and saturation (the C++ cast)."""
        scaled = x / self.step
        codes = torch.round(scaled) if self.rounding == "AP_RND_CONV" else torch.floor(scaled)
        if self.overflow == "AP_SAT":
            return codes.clamp(self.min_code, self.max_code)
        span = self.max_code - self.min_code + 1
        return torch.remainder(codes - self.min_code, span) + self.min_code

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` cast to this type and back to a float tensor (no gradient)."""
        return self.to_codes(x) * self.step


def fake_quantize(x: torch.Tensor, kind: FixedType) -> torch.Tensor:
    """Forward: the exact cast to ``kind``. Backward: straight-through inside the representable
    range, zero outside it (the clipped straight-through estimator of QAT)."""
    clipped = x.clamp(kind.min_value, kind.max_value)
    return clipped + (kind.quantize(x) - clipped).detach()


def weight_type(weights: torch.Tensor, bits: int, min_integer: int = -8) -> FixedType:
    """The signed ``ap_fixed<bits, I>`` with the fewest integer bits that still holds
    ``max |w|``: a per-layer power-of-two scale, like QKeras's ``alpha='auto_po2'`` but one per
    layer, because hls4ml gives a layer one weight type."""
    if not isinstance(bits, int) or bits < 2:
        raise ValueError(f"weight bits must be an int >= 2, got {bits!r}")
    largest = float(weights.detach().abs().max())
    if not math.isfinite(largest):
        raise ValueError("weights contain NaN or inf")
    integer = 1 if largest == 0 else math.ceil(math.log2(largest)) + 1
    return FixedType(bits, max(min_integer, min(integer, 16)), signed=True)


def activation_type(samples: torch.Tensor, bits: int, quantile: float = 0.999) -> FixedType:
    """The unsigned ``ap_ufixed<bits, I>`` whose range covers the ``quantile`` of the
    (non-negative) post-ReLU ``samples``: calibration of a QAT activation quantizer."""
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"activation bits must be an int >= 1, got {bits!r}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    flat = samples.detach().flatten().float()
    if flat.numel() > 1_000_000:
        order = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))
        flat = flat[order[:1_000_000]]
    level = float(torch.quantile(flat, quantile)) if flat.numel() else 0.0
    integer = 0 if level <= 0 else max(0, math.ceil(math.log2(level)))
    return FixedType(bits, min(integer, bits), signed=False)
