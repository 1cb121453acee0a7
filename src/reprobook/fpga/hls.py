"""hls4ml conversion of the quantized ENet, C simulation, and the ZCU102 project.

The PyTorch frontend of hls4ml reads the float model that :func:`enet.export_for_hls` returns
(weights already on their fixed-point grid); this module gives every layer the fixed-point type
that quantization-aware training used, so that the C++ model computes what the quantized PyTorch
model computes:

- the input: ``ap_ufixed<8,0>`` with round-half-even and saturation;
- each conv: its QAT weight and bias types, and an accumulator and output that hold every sum
  exactly: with ``types="wide"`` one wide type (``ap_fixed<40,16>``) for all, with
  ``types="narrow"`` the narrowest exact type per layer, which hls4ml infers from the input,
  weight and bias types (:func:`exact_accum_type` states the rule);
- each ReLU: its QAT activation type (round-half-even, saturation);
- pools, upsamplings, concatenation and residual adds: ``auto`` (hls4ml infers a type that
  holds their inputs exactly).

Always ``io_stream`` with channels-last data (``io_parallel`` does not compile at this size),
``Resource`` strategy. ``compile()`` builds the C simulation with g++; no Vivado is needed.

The FIFOs between the layers get hls4ml's default depth (a whole feature map each), the
analytic bound of :mod:`reprobook.fpga.fifo` (``fifo_depths="analytic"``), or the depths
hls4ml's FIFO-depth optimisation flow measures by co-simulation in Vivado HLS (``"cosim"``).
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprobook.fpga import driver, fifo
from reprobook.fpga.enet import WIDE_TYPE, CompressedENet, export_for_hls
from reprobook.fpga.fixed import FixedType

BACKENDS = ("Vivado", "VivadoAccelerator")
TYPE_MODES = ("wide", "narrow")
ZCU102_PART = "xczu9eg-ffvb1156-2-e"


def hls_name(module_name: str) -> str:
    """hls4ml's name for the layer made from a PyTorch module (its torch.fx node name)."""
    return module_name.replace(".", "_")


def exact_accum_type(
    inputs: FixedType, weight: FixedType, bias: FixedType | None, fan_in: int
) -> FixedType:
    """The narrowest type that holds a sum of ``fan_in`` products of ``inputs`` and ``weight``
    values plus a ``bias`` exactly: hls4ml's rule for an ``auto`` accumulator. Products need
    the bits of both factors, a sum of ``fan_in`` of them ceil(log2 fan_in) more integer bits,
    and the bias one more (with the sign bit where one side is unsigned)."""
    if not isinstance(fan_in, int) or fan_in < 1:
        raise ValueError(f"fan_in must be a positive int, got {fan_in!r}")
    grow = math.ceil(math.log2(fan_in))
    width = weight.width + inputs.width + grow
    integer = weight.integer + inputs.integer + grow
    signed = weight.signed or inputs.signed
    if bias is not None:
        fraction = width - integer
        integer = (
            max(integer + (bias.signed and not signed), bias.integer + (signed and not bias.signed))
            + 1
        )
        width = integer + max(fraction, bias.fraction)
        signed = signed or bias.signed
    return FixedType(width, integer, signed=signed, rounding="AP_TRN", overflow="AP_WRAP")


def hls_config(
    model: CompressedENet,
    input_hw: tuple[int, int],
    reuse_factor: int = 1,
    strategy: str = "Resource",
    backend: str = "Vivado",
    types: str = "wide",
) -> dict[str, Any]:
    """The hls4ml configuration of a quantized ``model``: per-layer precisions from its QAT
    types (see the module docstring), one reuse factor and strategy for every layer."""
    if model.quant is None:
        raise ValueError("the model is not quantized: call set_quantization first")
    _check_common(input_hw, reuse_factor, strategy, backend, types)
    return _config(model, export_for_hls(model), input_hw, reuse_factor, strategy, backend, types)


def _config(
    model, exported, input_hw, reuse_factor, strategy, backend, types="wide"
) -> dict[str, Any]:
    """``hls_config`` on an already exported model (``convert`` exports once for both)."""
    import hls4ml

    with _quiet():
        config = hls4ml.utils.config_from_pytorch_model(
            exported,
            input_shape=(3, *input_hw),
            granularity="name",
            backend=backend,
            default_precision=WIDE_TYPE.hls(),
            default_reuse_factor=reuse_factor,
            channels_last_conversion="internal",
        )
    config["Model"]["Strategy"] = strategy
    layers = config["LayerName"]
    quant = model.quant
    layers["x"]["Precision"] = {"result": quant.input.hls()}
    for name in model.conv_names():
        entry = layers[hls_name(name)]
        entry["Precision"] = {
            "weight": quant.weights[name].hls(),
            "bias": quant.biases[name].hls(),
            "accum": WIDE_TYPE.hls() if types == "wide" else "auto",
            "result": WIDE_TYPE.hls() if types == "wide" else "auto",
        }
        entry["ReuseFactor"] = reuse_factor
        entry["Strategy"] = strategy
    for name in model.relu_names():
        layers[hls_name(name)]["Precision"]["result"] = quant.activations[name].hls()
    return config


def convert(
    model: CompressedENet,
    input_hw: tuple[int, int],
    output_dir: str | Path,
    reuse_factor: int = 1,
    strategy: str = "Resource",
    backend: str = "Vivado",
    clock_period_ns: float = 5.0,
    types: str = "wide",
    fifo_depths: str = "default",
):
    """The hls4ml model of a quantized ``model`` (io_stream). ``backend="VivadoAccelerator"``
    targets the ZCU102 board with an AXI-stream wrapper, float in and out, and a PYNQ driver;
    ``types`` picks the convs' accumulator and output types (``TYPE_MODES``), ``fifo_depths``
    the depths of the FIFOs between layers (``fifo.FIFO_MODES``; ``"cosim"`` runs Vivado HLS
    co-simulation inside the conversion and needs ``vivado_hls`` on PATH)."""
    import hls4ml

    if not clock_period_ns > 0:
        raise ValueError(f"clock_period_ns must be positive, got {clock_period_ns!r}")
    _check_common(input_hw, reuse_factor, strategy, backend, types, fifo_depths)
    if fifo_depths == "cosim" and shutil.which("vivado_hls") is None:
        raise RuntimeError(
            "fifo_depths='cosim' runs hls4ml's FIFO-depth optimisation, a co-simulation in "
            "Vivado HLS (2019.2-2020.1): vivado_hls is not on PATH. Source Vivado's "
            "settings64.sh, or use fifo_depths='analytic'."
        )
    exported = export_for_hls(model)  # raises if the model is not quantized
    config = _config(model, exported, input_hw, reuse_factor, strategy, backend, types)
    if fifo_depths == "cosim":
        config["Flows"] = [f"{backend.lower()}:fifo_depth_optimization"]
    if backend == "VivadoAccelerator":
        extra = dict(
            board="zcu102",
            interface="axi_stream",
            driver="python",
            input_type="float",
            output_type="float",
        )
    else:
        extra = dict(part=ZCU102_PART)
    with _quiet():
        hls_model = hls4ml.converters.convert_from_pytorch_model(
            exported,
            hls_config=config,
            output_dir=str(output_dir),
            backend=backend,
            io_type="io_stream",
            clock_period=clock_period_ns,
            **extra,
        )
    if fifo_depths == "analytic":
        fifo.set_depths(hls_model, fifo.analytic_depths(hls_model))
    return hls_model


def compile_csim(hls_model) -> float:
    """Write the project and build its C simulation with g++; returns the seconds it took."""
    if shutil.which("g++") is None:
        raise RuntimeError("g++ is not on PATH: hls4ml's C simulation needs a C++ compiler")
    start = time.perf_counter()
    with _quiet():
        hls_model.compile()
    return time.perf_counter() - start


def csim_predict(hls_model, images: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Logits (N, classes, H, W) of the compiled C simulation on float ``images`` (N, 3, H, W).

    The images go through the board driver's packing (:mod:`reprobook.fpga.driver`), so this
    also checks it: hls4ml takes the channels-last stream and returns it flattened."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(images.shape)}")
    n, _, height, width = images.shape
    stream = driver.pack(images).reshape(n, height, width, 3)  # the board's float words
    with _quiet():
        flat = np.asarray(hls_model.predict(stream), dtype=np.float64).reshape(n, -1)
    return torch.from_numpy(driver.unpack(flat, height, width, n_classes))


def stream_types(hls_model) -> dict[str, dict[str, Any]]:
    """Per layer of a converted model: its output stream's element type (bits, integer bits,
    signedness) and channels, and for convs the accumulator's bits, as hls4ml will write them."""
    out = {}
    for layer in hls_model.get_layers():
        variable = layer.get_output_variable()
        precision = variable.type.precision
        entry = {"kind": layer.class_name, "bits": int(precision.width),
                 "integer": int(precision.integer), "signed": bool(precision.signed),
                 "channels": int(variable.shape[-1])}  # fmt: skip
        if "accum_t" in layer.types:
            entry["accum_bits"] = int(layer.types["accum_t"].precision.width)
        out[layer.name] = entry
    return out


def build_bitstream(hls_model) -> dict[str, Any]:
    """Synthesize the project and make the bitfile (needs Vivado on PATH). Without Vivado it
    stops with a clear ``RuntimeError`` instead of hls4ml's deeper exception."""
    missing = [tool for tool in ("vivado_hls", "vivado") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"target 'bitstream' needs Xilinx Vivado (2019.2-2020.1, with Vivado HLS) on PATH; "
            f"not found: {', '.join(missing)}. Source Vivado's settings64.sh and run again, or "
            f"use target='csim'."
        )
    return hls_model.build(csim=False, synth=True, export=True, bitfile=True)


def check_settings(
    input_hw: tuple[int, int],
    reuse_factor: int,
    strategy: str = "Resource",
    backend: str = "VivadoAccelerator",
    types: str = "wide",
    fifo_depths: str = "default",
) -> None:
    """Raise a ``ValueError`` naming the setting that is wrong and what is allowed."""
    _check_common(input_hw, reuse_factor, strategy, backend, types, fifo_depths)


def _check_common(
    input_hw, reuse_factor, strategy, backend, types="wide", fifo_depths="default"
) -> None:
    if fifo_depths not in fifo.FIFO_MODES:
        raise ValueError(f"fifo_depths must be one of {fifo.FIFO_MODES}, got {fifo_depths!r}")
    if types not in TYPE_MODES:
        raise ValueError(f"types must be one of {TYPE_MODES}, got {types!r}")
    if len(input_hw) != 2 or any(not isinstance(v, int) or v <= 0 or v % 8 for v in input_hw):
        raise ValueError(f"input_hw must be two positive multiples of 8, got {input_hw!r}")
    if not isinstance(reuse_factor, int) or reuse_factor < 1:
        raise ValueError(f"reuse_factor must be a positive int, got {reuse_factor!r}")
    if strategy not in ("Resource", "Latency"):
        raise ValueError(f"strategy must be 'Resource' or 'Latency', got {strategy!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


@contextlib.contextmanager
def _quiet():
    """hls4ml prints every layer it converts; keep the notebook readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
