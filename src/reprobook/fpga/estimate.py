"""Resources and latency of the streaming design, estimated from the model alone (no Vivado).

An analytic model of hls4ml's ``io_stream`` convolutions with the ``Resource`` strategy, which
is an *estimate*, not a synthesis report:

- a conv layer with ``n_in = k * k * c_in`` inputs and ``c_out`` outputs per pixel instantiates
  ``ceil(n_in * c_out / R)`` multipliers for reuse factor ``R`` (hls4ml's rule; ``R`` is capped
  at ``n_in * c_out``, as hls4ml does);
- it produces one output pixel every ``R`` clock cycles (its initiation interval), so it needs
  ``pixels * R`` cycles per image; every layer also takes at least one cycle per pixel it reads;
- the layers run as a dataflow pipeline: a stream of images leaves it every
  ``max_layer cycles`` (the streaming interval: the time per image of a batch), and one image
  needs between that (full overlap of the layers) and the sum over layers (no overlap);
- memory: weights take ``parameters * bits``; line buffers ``(k - 1)`` rows of the input per
  conv; and the streams between layers, which hls4ml sizes by default to hold a whole feature
  map (``pixels * channels * bits`` each) until their depths are optimized by co-simulation
  (the authors' ``optimize_fifos_depth``). Both memory totals are reported as a share of the
  ZCU102's 912 BRAM36 blocks, assuming the activations are narrowed to ``activation_bits``.

Multipliers of 8 bits or fewer usually go to LUTs rather than DSP slices, so the multiplier
count is an upper bound on DSP use, compared with the ZCU102's 2,520 DSP slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from reprobook.fpga.enet import CompressedENet

ZCU102 = {"dsp": 2520, "bram_36k": 912, "lut": 274_080, "ff": 548_160}


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    in_pixels: int
    out_pixels: int
    multiplications_per_pixel: int
    parameters: int
    line_buffer_values: int
    output_values: int  # values of the output feature map: a default-depth stream holds them


def layer_costs(model: CompressedENet, input_hw: tuple[int, int]) -> list[LayerCost]:
    """Per-layer sizes of ``model`` on images of ``input_hw`` (convs, pools and upsamplings)."""
    if len(input_hw) != 2 or any(not isinstance(v, int) or v <= 0 or v % 8 for v in input_hw):
        raise ValueError(f"input_hw must be two positive multiples of 8, got {input_hw!r}")
    shapes: dict[str, tuple] = {}
    modules = dict(model.named_modules())
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, n=n: shapes.__setitem__(n, (inp[0].shape, out.shape))
        )
        for n, m in modules.items()
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.Upsample)
    ]
    previous = model.quant
    model.quant = None
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *input_hw))
    finally:
        model.quant = previous
        for hook in hooks:
            hook.remove()
    costs = []
    for name, (shape_in, shape_out) in shapes.items():
        module = modules[name]
        in_pixels, out_pixels = shape_in[2] * shape_in[3], shape_out[2] * shape_out[3]
        out_values = out_pixels * shape_out[1]
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            mults = k * module.in_channels * module.out_channels
            params = mults + module.out_channels
            line = (module.kernel_size[0] - 1) * shape_in[3] * module.in_channels
            costs.append(
                LayerCost(name, "conv", in_pixels, out_pixels, mults, params, line, out_values)
            )
        else:
            kind = "pool" if isinstance(module, nn.MaxPool2d) else "upsample"
            line = shape_in[3] * shape_in[1] if kind == "pool" else 0
            costs.append(LayerCost(name, kind, in_pixels, out_pixels, 0, 0, line, out_values))
    return costs


def estimate(
    model: CompressedENet,
    input_hw: tuple[int, int],
    reuse_factor: int,
    clock_period_ns: float,
    weight_bits: int,
    activation_bits: int,
) -> dict[str, float]:
    """The analytic estimate for one model and reuse factor (see the module docstring)."""
    if not isinstance(reuse_factor, int) or reuse_factor < 1:
        raise ValueError(f"reuse_factor must be a positive int, got {reuse_factor!r}")
    if not clock_period_ns > 0:
        raise ValueError(f"clock_period_ns must be positive, got {clock_period_ns!r}")
    costs = layer_costs(model, input_hw)
    cycles = []
    multipliers = 0
    for c in costs:
        if c.kind == "conv":
            reuse = min(reuse_factor, c.multiplications_per_pixel)
            multipliers += math.ceil(c.multiplications_per_pixel / reuse)
            cycles.append(max(c.in_pixels, c.out_pixels * reuse))
        else:
            cycles.append(max(c.in_pixels, c.out_pixels))
    slowest, total = max(cycles), sum(cycles)
    weight_kbit = sum(c.parameters for c in costs) * weight_bits / 1024
    buffer_kbit = sum(c.line_buffer_values for c in costs) * activation_bits / 1024
    fifo_kbit = sum(c.output_values for c in costs) * activation_bits / 1024
    to_ms = clock_period_ns * 1e-6
    bram_kbit = 36_864 / 1024 * ZCU102["bram_36k"]
    return {
        "reuse_factor": reuse_factor,
        "clock_ns": clock_period_ns,
        "multipliers": multipliers,
        "dsp_fraction_upper": multipliers / ZCU102["dsp"],
        "weight_kbit": weight_kbit,
        "line_buffer_kbit": buffer_kbit,
        "default_fifo_kbit": fifo_kbit,
        "bram_fraction": (weight_kbit + buffer_kbit) / bram_kbit,
        "bram_fraction_default_fifos": (weight_kbit + buffer_kbit + fifo_kbit) / bram_kbit,
        "interval_ms": slowest * to_ms,
        "latency_ms_low": slowest * to_ms,
        "latency_ms_high": total * to_ms,
        "macs_per_image": sum(c.multiplications_per_pixel * c.out_pixels for c in costs),
    }


# -- the generated project ------------------------------------------------------------------------

# A FIFO of at most FIFO_SRL_MAX_BITS bits, or at most FIFO_SRL_MAX_DEPTH words deep, goes to
# shift registers rather than BRAM: the defaults of Vitis HLS's automatic choice
# (config_storage fifo -auto_srl_max_bits 1024 -auto_srl_max_depth 2, UG1399); a rule of thumb
# for the Vivado HLS this design targets.
FIFO_SRL_MAX_BITS = 1024
FIFO_SRL_MAX_DEPTH = 2
BRAM36_BITS = 36 * 1024  # one BRAM36: 1,024 words of 36 bits (or 512 of 72)
LUT_MULT_MAX_BITS = 10  # rule of thumb: a product of operands this narrow goes to LUTs, not DSPs
SRL_WORDS_PER_LUT = 32  # a shift-register FIFO: one LUT (SRLC32E) per bit of its word per 32 words


def project_streams(hls_model) -> list[dict]:
    """Every FIFO of a converted ``io_stream`` model, as hls4ml writes it: the stream's name,
    depth, channels per word and bits per channel (the output streams of every layer, the
    clones of a stream that feeds two layers included; the model's input and output streams
    stand for the AXI wrapper's ``in_local`` and ``out_local`` FIFOs, of the same type and
    depth)."""
    out = []
    for variable in hls_model.output_vars.values():
        pragma = getattr(variable, "pragma", None)
        if not (isinstance(pragma, tuple) and pragma[0] == "stream"):
            continue
        out.append({"name": variable.name, "depth": int(pragma[1]),
                    "channels": int(variable.shape[-1]),
                    "bits": int(variable.type.precision.width)})  # fmt: skip
    return out


def _fifo_bram36(stream: dict) -> int:
    bits = stream["depth"] * stream["channels"] * stream["bits"]
    if bits <= FIFO_SRL_MAX_BITS or stream["depth"] <= FIFO_SRL_MAX_DEPTH:
        return 0
    word = stream["channels"] * stream["bits"]
    return math.ceil(word / 36) * math.ceil(stream["depth"] / 1024)


def project_estimate(hls_model) -> dict[str, float]:
    """Resources of the project hls4ml generates for ``hls_model``, read from the converted
    model itself (its reuse factors after hls4ml's correction, its types, its FIFO depths):

    - multipliers per conv ``ceil(n_in * n_out / R)`` less the zero weights' share (hls4ml's
      ``multiplier_limit``); those with both operands of at most
      ``LUT_MULT_MAX_BITS`` bits are counted as LUTs (about a * b / 2 each), the others as DSPs
      (an upper bound, as Vivado may still map some of them to LUTs);
    - an adder of the accumulator's width per multiplier (one LUT per bit);
    - BRAM36 for the weights (``parameters * bits``), the line buffers (``(k - 1)`` input rows
      per conv) and every FIFO above ``FIFO_SRL_MAX_BITS`` bits and ``FIFO_SRL_MAX_DEPTH``
      words (``ceil(word / 36)`` blocks per 1,024 words); the other FIFOs go to shift
      registers, one LUT per bit of their word per ``SRL_WORDS_PER_LUT`` words.

    The thresholds are rules of thumb; only synthesis gives the real numbers."""
    multipliers = dsp = lut = 0
    weight_bits = line_bits = accum_bits = 0
    from hls4ml.model.layers import Conv2D

    for layer in hls_model.get_layers():
        if not isinstance(layer, Conv2D):
            continue
        n_chan, height, width = (layer.get_attr(a) for a in ("n_chan", "filt_height", "filt_width"))
        n_in, n_out = n_chan * height * width, layer.get_attr("n_filt")
        reuse = layer.get_attr("reuse_factor")
        # hls4ml's multiplier_limit: products with a zero weight are not built
        mults = math.ceil(n_in * n_out / reuse) - layer.get_weights("weight").nzeros // reuse
        a_bits = layer.get_input_variable().type.precision.width
        w_bits = layer.types["weight_t"].precision.width
        acc = layer.types["accum_t"].precision.width
        multipliers += mults
        if max(a_bits, w_bits) <= LUT_MULT_MAX_BITS:
            lut += mults * math.ceil(a_bits * w_bits / 2)
        else:
            dsp += mults
        lut += mults * acc
        accum_bits += acc
        weight_bits += n_in * n_out * w_bits + n_out * layer.types["bias_t"].precision.width
        line_bits += (height - 1) * layer.get_attr("in_width") * n_chan * a_bits
    streams = project_streams(hls_model)
    fifo_bits = sum(s["depth"] * s["channels"] * s["bits"] for s in streams)
    lut += sum(s["channels"] * s["bits"] * math.ceil(s["depth"] / SRL_WORDS_PER_LUT)
               for s in streams if _fifo_bram36(s) == 0)  # fmt: skip
    bram = (math.ceil(weight_bits / BRAM36_BITS) + math.ceil(line_bits / BRAM36_BITS)
            + sum(_fifo_bram36(s) for s in streams))  # fmt: skip
    return {
        "multipliers": multipliers,
        "dsp": dsp,
        "dsp_fraction": dsp / ZCU102["dsp"],
        "lut": lut,
        "lut_fraction": lut / ZCU102["lut"],
        "bram_36k": bram,
        "bram_fraction": bram / ZCU102["bram_36k"],
        "fifo_kbit": fifo_bits / 1024,
        "fifos": len(streams),
        "weight_kbit": weight_bits / 1024,
        "line_buffer_kbit": line_bits / 1024,
        "accumulator_bits": accum_bits,
        "fits_zcu102": dsp <= ZCU102["dsp"] and lut <= ZCU102["lut"] and bram <= ZCU102["bram_36k"],
    }
