"""The paper's compressed ENet, in PyTorch, built only from layers hls4ml converts exactly.

Topology as deployed by the authors (decoded from their model files, see the chapter):

- **initial block**: a 2x2 max-pool of the image; a 3x3 conv of the pooled image to
  ``32 - 3`` channels; the two concatenated to 32 channels;
- **five stages** of residual bottlenecks (3, 3, 3, 3, 2 blocks). A block is a 1x1 projection,
  a 3x3 conv and a 1x1 output conv on the main path, a 1x1 conv on the skip path, their sum,
  ReLU. The first block of stages 1 and 2 halves the resolution (a 2x2 max-pool ahead of both
  paths); the first block of stages 4 and 5 doubles it (nearest-neighbour upsampling ahead of
  both paths);
- a last nearest-neighbour upsampling and a conv to the classes (logits; no softmax).

No transposed convs, no unpooling, no dilation, ReLU instead of PReLU. Every conv's output goes
through batch norm while the float model trains; :func:`fold_batchnorm` folds it into the conv
before quantization-aware training, as QKeras's ``QConv2DBatchnorm`` does.

Quantization: with :meth:`CompressedENet.set_quantization` the forward pass casts the input,
every conv's weights and biases, and every ReLU output to the fixed-point types hls4ml will use
(:mod:`reprobook.fpga.fixed`); without it the model is plain float, which is also the form
hls4ml's PyTorch frontend reads (:func:`export_for_hls`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from reprobook.fpga.fixed import FixedType, activation_type, fake_quantize, weight_type

PAPER_STAGE_BLOCKS = (3, 3, 3, 3, 2)
INITIAL_CHANNELS = 32  # the initial block's output: 3 pooled RGB + 29 conv channels
INPUT_TYPE = FixedType(8, 0, signed=False)  # pixels / 255 as ap_ufixed<8,0>, as the authors
WIDE_TYPE = FixedType(40, 16, signed=True, overflow="AP_WRAP")  # accumulators: exact here
BIAS_BITS = 16
# WIDE_TYPE keeps 24 fractional bits: exact for weights of up to 8 bits (at most 12 fractional
# bits, integer bits >= -4 in practice) times activations of up to 8 fractional bits.
MAX_BITS = 8


@dataclass
class Quantization:
    """Per-layer fixed-point types of one quantized model (names are the conv / ReLU module
    names)."""

    bits: int
    input: FixedType = INPUT_TYPE
    weights: dict[str, FixedType] = field(default_factory=dict)
    biases: dict[str, FixedType] = field(default_factory=dict)
    activations: dict[str, FixedType] = field(default_factory=dict)


class Bottleneck(nn.Module):
    """One residual bottleneck; ``resample`` is ``"down"``, ``"up"`` or ``None``."""

    def __init__(self, in_ch: int, out_ch: int, resample: str | None, batchnorm: bool):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.resample = resample
        if resample == "down":
            self.pool = nn.MaxPool2d(2)
        elif resample == "up":
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        mid = out_ch
        self.proj = nn.Conv2d(in_ch, mid, 1)
        self.proj_relu = nn.ReLU()
        self.main = nn.Conv2d(mid, mid, 3, padding=1)
        self.main_relu = nn.ReLU()
        self.out = nn.Conv2d(mid, out_ch, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1)
        self.out_relu = nn.ReLU()
        norm = nn.BatchNorm2d if batchnorm else lambda c: None
        self.proj_bn, self.main_bn, self.out_bn, self.skip_bn = (
            norm(mid),
            norm(mid),
            norm(out_ch),
            norm(out_ch),
        )


class CompressedENet(nn.Module):
    """The compressed ENet of Ghielmetti et al. (2022) with ``filters`` channels per stage."""

    def __init__(
        self,
        filters: int = 16,
        n_classes: int = 4,
        stage_blocks: tuple[int, ...] = PAPER_STAGE_BLOCKS,
        batchnorm: bool = True,
    ):
        super().__init__()
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if len(stage_blocks) != 5 or any(not isinstance(b, int) or b < 1 for b in stage_blocks):
            raise ValueError(f"stage_blocks must be 5 positive ints, got {stage_blocks!r}")
        self.filters, self.n_classes = filters, n_classes
        self.stage_blocks = tuple(stage_blocks)
        self.batchnorm = batchnorm
        self.quant: Quantization | None = None
        self.pool = nn.MaxPool2d(2)
        self.init_conv = nn.Conv2d(3, INITIAL_CHANNELS - 3, 3, padding=1)
        self.init_bn = nn.BatchNorm2d(INITIAL_CHANNELS - 3) if batchnorm else None
        self.init_relu = nn.ReLU()
        blocks, in_ch = [], INITIAL_CHANNELS
        for stage, n_blocks in enumerate(stage_blocks):
            for index in range(n_blocks):
                resample = None
                if index == 0 and stage in (0, 1):
                    resample = "down"
                elif index == 0 and stage in (3, 4):
                    resample = "up"
                blocks.append(Bottleneck(in_ch, filters, resample, batchnorm))
                in_ch = filters
        self.blocks = nn.ModuleList(blocks)
        self.final_upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.classifier = nn.Conv2d(filters, n_classes, 3, padding=1)

    # -- quantization -------------------------------------------------------------------------
    def conv_names(self) -> list[str]:
        return [n for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]

    def relu_names(self) -> list[str]:
        return [n for n, m in self.named_modules() if isinstance(m, nn.ReLU)]

    def set_quantization(self, quant: Quantization | None) -> None:
        """Turn quantization on (with these types) or off (``None``)."""
        if quant is not None:
            if self.batchnorm:
                raise ValueError("fold the batch norms (fold_batchnorm) before quantizing")
            missing = (set(self.conv_names()) - set(quant.weights)) | (
                set(self.relu_names()) - set(quant.activations)
            )
            if missing:
                raise ValueError(f"quantization lacks types for: {sorted(missing)}")
        self.quant = quant

    def _conv(self, name: str, conv: nn.Conv2d, bn: nn.Module | None, x: torch.Tensor):
        if self.quant is None:
            y = conv(x)
            return y if bn is None else bn(y)
        weight = fake_quantize(conv.weight, self.quant.weights[name])
        bias = fake_quantize(conv.bias, self.quant.biases[name])
        return nn.functional.conv2d(x, weight, bias, padding=conv.padding)

    def _relu(self, name: str, relu: nn.ReLU, x: torch.Tensor):
        y = relu(x)
        return y if self.quant is None else fake_quantize(y, self.quant.activations[name])

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.fx.Proxy):  # hls4ml traces the model with torch.fx
            _check_images(x)
        if self.quant is not None:
            x = fake_quantize(x, self.quant.input)
        pooled = self.pool(x)
        stem = self._relu(
            "init_relu",
            self.init_relu,
            self._conv("init_conv", self.init_conv, self.init_bn, pooled),
        )
        h = torch.cat([pooled, stem], dim=1)
        for i, block in enumerate(self.blocks):
            h = self._block(f"blocks.{i}", block, h)
        h = self.final_upsample(h)
        return self._conv("classifier", self.classifier, None, h)

    def _block(self, name: str, b: Bottleneck, x: torch.Tensor) -> torch.Tensor:
        if b.resample == "down":
            x = b.pool(x)
        elif b.resample == "up":
            x = b.upsample(x)
        h = self._relu(
            f"{name}.proj_relu", b.proj_relu, self._conv(f"{name}.proj", b.proj, b.proj_bn, x)
        )
        h = self._relu(
            f"{name}.main_relu", b.main_relu, self._conv(f"{name}.main", b.main, b.main_bn, h)
        )
        h = self._conv(f"{name}.out", b.out, b.out_bn, h)
        skip = self._conv(f"{name}.skip", b.skip, b.skip_bn, x)
        return self._relu(f"{name}.out_relu", b.out_relu, h + skip)


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[2] % 8 or x.shape[3] % 8:
        raise ValueError(
            f"H and W must be multiples of 8 (three 2x poolings), got {tuple(x.shape[2:])}"
        )


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.data = conv.weight.data * scale[:, None, None, None]
    conv.bias.data = (conv.bias.data - bn.running_mean) * scale + bn.bias


@torch.no_grad()
def fold_batchnorm(model: CompressedENet) -> CompressedENet:
    """A copy of ``model`` with every batch norm folded into its conv (inference statistics)."""
    if not model.batchnorm:
        return copy.deepcopy(model)
    folded = copy.deepcopy(model).eval()
    _fold(folded.init_conv, folded.init_bn)
    folded.init_bn = None
    for b in folded.blocks:
        for conv, bn_name in (
            (b.proj, "proj_bn"),
            (b.main, "main_bn"),
            (b.out, "out_bn"),
            (b.skip, "skip_bn"),
        ):
            _fold(conv, getattr(b, bn_name))
            setattr(b, bn_name, None)
    folded.batchnorm = False
    return folded


@torch.no_grad()
def calibrate_quantization(model: CompressedENet, images: torch.Tensor, bits: int) -> Quantization:
    """Per-layer types for ``bits``-bit QAT: weight types from each conv's largest weight,
    activation types from the float model's ReLU outputs on ``images``."""
    if model.batchnorm:
        raise ValueError("fold the batch norms (fold_batchnorm) before calibrating")
    if not isinstance(bits, int) or not 2 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in 2..{MAX_BITS}, got {bits!r}")
    quant = Quantization(bits=bits)
    modules = dict(model.named_modules())
    for name in model.conv_names():
        quant.weights[name] = weight_type(modules[name].weight, bits)
        quant.biases[name] = weight_type(modules[name].bias, BIAS_BITS)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: captured.__setitem__(n, o))
        for n in model.relu_names()
    ]
    previous = model.quant
    model.set_quantization(None)
    try:
        model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
        model.quant = previous
    for name in model.relu_names():
        quant.activations[name] = activation_type(captured[name], bits)
    return quant


@torch.no_grad()
def export_for_hls(model: CompressedENet) -> CompressedENet:
    """The float model hls4ml reads: weights and biases replaced by their quantized values,
    quantization off (hls4ml applies the activation types from the configuration)."""
    if model.quant is None:
        raise ValueError("the model is not quantized: call set_quantization first")
    exported = copy.deepcopy(model).eval()
    modules = dict(exported.named_modules())
    for name in exported.conv_names():
        conv = modules[name]
        conv.weight.data = model.quant.weights[name].quantize(conv.weight.data)
        conv.bias.data = model.quant.biases[name].quantize(conv.bias.data)
    exported.quant = None
    return exported


# -- checkpoints ----------------------------------------------------------------------------------

CHECKPOINT_FORMAT = 1


def _type_dict(kind: FixedType) -> dict:
    return {"width": kind.width, "integer": kind.integer, "signed": kind.signed,
            "rounding": kind.rounding, "overflow": kind.overflow}  # fmt: skip


def _code_dtype(kinds: list[FixedType]) -> torch.dtype:
    """The smallest integer dtype that holds every code of these types."""
    for dtype in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if all(info.min <= k.min_code and k.max_code <= info.max for k in kinds):
            return dtype
    return torch.int64


def to_checkpoint(model: CompressedENet) -> dict:
    """A quantized ``model`` as plain data: its architecture, every fixed-point type, and the
    weights and biases as the integer codes of their types, one flat tensor each in the order
    of ``conv_names()`` (exact, and a quarter of the float32 size or less).
    :func:`from_checkpoint` restores it."""
    if model.quant is None:
        raise ValueError("only a quantized model has a checkpoint: call set_quantization first")
    quant, modules, names = model.quant, dict(model.named_modules()), model.conv_names()
    weights = [quant.weights[n] for n in names]
    biases = [quant.biases[n] for n in names]
    return {
        "format": CHECKPOINT_FORMAT,
        "filters": model.filters,
        "n_classes": model.n_classes,
        "stage_blocks": list(model.stage_blocks),
        "bits": quant.bits,
        "input": _type_dict(quant.input),
        "activations": {name: _type_dict(t) for name, t in quant.activations.items()},
        "convs": {
            n: {"weight_type": _type_dict(w), "bias_type": _type_dict(b)}
            for n, w, b in zip(names, weights, biases, strict=True)
        },  # fmt: skip
        "weight_codes": torch.cat(
            [
                w.to_codes(modules[n].weight.data).flatten()
                for n, w in zip(names, weights, strict=True)
            ]
        ).to(_code_dtype(weights)),  # fmt: skip
        "bias_codes": torch.cat(
            [b.to_codes(modules[n].bias.data).flatten() for n, b in zip(names, biases, strict=True)]
        ).to(_code_dtype(biases)),  # fmt: skip
    }


def from_checkpoint(state: dict) -> CompressedENet:
    """The quantized model of :func:`to_checkpoint` (folded, weights on their grids)."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a CompressedENet checkpoint of format {CHECKPOINT_FORMAT}")
    model = CompressedENet(state["filters"], state["n_classes"], tuple(state["stage_blocks"]),
                           batchnorm=False)  # fmt: skip
    modules, names = dict(model.named_modules()), model.conv_names()
    sizes = [(modules[n].weight.numel(), modules[n].bias.numel()) for n in names]
    if list(state["convs"]) != names or (
        len(state["weight_codes"]),
        len(state["bias_codes"]),
    ) != tuple(map(sum, zip(*sizes, strict=True))):
        raise ValueError("the checkpoint's convs do not match its architecture")
    quant = Quantization(state["bits"], FixedType(**state["input"]))
    quant.activations = {name: FixedType(**t) for name, t in state["activations"].items()}
    w_at = b_at = 0
    for name, (n_w, n_b) in zip(names, sizes, strict=True):
        conv = state["convs"][name]
        weight, bias = FixedType(**conv["weight_type"]), FixedType(**conv["bias_type"])
        quant.weights[name], quant.biases[name] = weight, bias
        module = modules[name]
        codes = state["weight_codes"][w_at : w_at + n_w].double()
        module.weight.data = codes.mul(weight.step).float().reshape(module.weight.shape)
        module.bias.data = state["bias_codes"][b_at : b_at + n_b].double().mul(bias.step).float()
        w_at, b_at = w_at + n_w, b_at + n_b
    model.set_quantization(quant)
    return model.eval()
