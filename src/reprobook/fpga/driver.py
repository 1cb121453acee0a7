"""Data packing of the board driver, as pure NumPy functions (the board needs no torch).

hls4ml's ZCU102 wrapper (``myproject_axi.cpp``) reads one AXI-stream word per input value in
channels-last order (row by row, pixel by pixel, R, G, B), casts each word to the input type,
and writes one word per output value in the same order (row, pixel, class). With a float
interface the words are float32 and the cast to ``ap_ufixed<8,0>`` happens on the chip; with a
fixed-point interface the processor encodes the integer codes itself. These functions are the
processor side of both; the C simulation checks them (``hls.csim_predict`` goes through them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from reprobook.fpga.fixed import FixedType


def _as_images(images) -> np.ndarray:
    array = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got shape {array.shape}")
    return array


def encode(values: np.ndarray, kind: FixedType) -> np.ndarray:
    """Float values -> the integer codes of ``kind`` (round half to even or floor, then
    saturate), in the smallest NumPy integer type that holds them: the C++ cast."""
    scaled = np.asarray(values, dtype=np.float64) / kind.step
    codes = np.round(scaled) if kind.rounding == "AP_RND_CONV" else np.floor(scaled)
    if kind.overflow != "AP_SAT":
        raise ValueError("encode supports saturating types only")
    codes = np.clip(codes, kind.min_code, kind.max_code)
    return codes.astype(_int_dtype(kind))


def decode(codes: np.ndarray, kind: FixedType) -> np.ndarray:
    """Integer codes of ``kind`` -> float64 values (the driver's ``decode``)."""
    return np.asarray(codes, dtype=np.float64) * kind.step


def pack(images, input_type: FixedType | None = None) -> np.ndarray:
    """Images (N, 3, H, W) in [0, 1] -> the stream buffer (N, H * W * 3): float32 words, or
    with ``input_type`` the integer codes of that fixed-point type."""
    array = _as_images(images)
    stream = np.ascontiguousarray(array.transpose(0, 2, 3, 1).reshape(len(array), -1))
    if input_type is None:
        return stream.astype(np.float32)
    return encode(stream, input_type)


def unpack(
    buffer: np.ndarray,
    height: int,
    width: int,
    n_classes: int,
    output_type: FixedType | None = None,
) -> np.ndarray:
    """The output stream buffer (N, H * W * classes) -> logits (N, classes, H, W), float64;
    with ``output_type`` the buffer holds that type's integer codes."""
    buffer = np.asarray(buffer)
    expected = height * width * n_classes
    if buffer.ndim != 2 or buffer.shape[1] != expected:
        raise ValueError(f"expected a buffer (N, {expected}), got shape {buffer.shape}")
    values = decode(buffer, output_type) if output_type is not None else buffer.astype(np.float64)
    return np.ascontiguousarray(
        values.reshape(len(buffer), height, width, n_classes).transpose(0, 3, 1, 2)
    )


def _int_dtype(kind: FixedType) -> type:
    for bits, signed, unsigned in (
        (8, np.int8, np.uint8),
        (16, np.int16, np.uint16),
        (32, np.int32, np.uint32),
    ):
        if kind.width <= bits:
            return signed if kind.signed else unsigned
    return np.int64 if kind.signed else np.uint64
