"""The chapter's experiment: train, quantize, convert, simulate, estimate, compare.

For each number of filters the float model trains once (with batch norm); it is folded and
fine-tuned with quantization-aware training at each bit width. Every quantized model goes
through hls4ml (ZCU102 accelerator project, ``io_stream``) and its C simulation runs on test
images, checked against the quantized PyTorch model in exact (float64) arithmetic.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from reprobook.fpga import enet, estimate, fifo, hls, scenes, training
from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 3  # 2: exact narrow types, resources of the projects; 3: FIFO depths
TARGETS = ("csim", "bitstream", "pynq")
PAPER_FILTERS = (4, 8, 16)
PAPER_BITS = (4, 8)

PROFILES = {
    "smoke": {
        "height": 40, "width": 64, "filters": [8], "bits": [8],
        "n_train": 192, "n_test": 24, "float_steps": 150, "qat_steps": 60, "batch_size": 8,
        "float_lr": 3e-3, "qat_lr": 5e-4, "csim_images": 4,
        "reuse_factors": [4, 16, 64], "latency_repeats": 5,
    },
    "full": {
        "height": 152, "width": 240, "filters": [4, 8, 16], "bits": [4, 8],
        "n_train": 600, "n_test": 64, "float_steps": 1200, "qat_steps": 400, "batch_size": 8,
        "float_lr": 3e-3, "qat_lr": 5e-4, "csim_images": 24,
        "reuse_factors": [4, 16, 64], "latency_repeats": 10,
    },
}  # fmt: skip


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


CONFIG_CHECKS = {
    "height": (lambda v: _positive_int(v) and v % 8 == 0, "a positive multiple of 8"),
    "width": (lambda v: _positive_int(v) and v % 8 == 0, "a positive multiple of 8"),
    "filters": (lambda v: len(v) > 0 and all(_positive_int(f) for f in v), "positive ints"),
    "bits": (lambda v: len(v) > 0 and all(_positive_int(b) and 2 <= b <= enet.MAX_BITS for b in v),
             f"ints in 2..{enet.MAX_BITS} (the exact C simulation's wide types hold up to 8)"),
    "n_train": (_positive_int, "a positive int"),
    "n_test": (_positive_int, "a positive int"),
    "float_steps": (_positive_int, "a positive int"),
    "qat_steps": (_positive_int, "a positive int"),
    "batch_size": (_positive_int, "a positive int"),
    "float_lr": (lambda v: v > 0, "positive"),
    "qat_lr": (lambda v: v > 0, "positive"),
    "csim_images": (_positive_int, "a positive int"),
    "reuse_factors": (lambda v: len(v) > 0 and all(_positive_int(r) for r in v), "positive ints"),
    "latency_repeats": (_positive_int, "a positive int"),
}  # fmt: skip


def resolve_config(profile: str, **overrides) -> Config:
    """The chapter's configuration: a row of ``PROFILES`` with the reader's overrides, checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.csim_images > config.n_test:
        raise ValueError(
            f"csim_images ({config.csim_images}) cannot exceed n_test ({config.n_test})"
        )
    if config.batch_size > config.n_train:
        raise ValueError(f"batch_size ({config.batch_size}) cannot exceed n_train")
    return config


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    return target


def model_key(filters: int, bits: int | None) -> str:
    return f"f{filters}-{'float' if bits is None else f'q{bits}'}"


def enet_class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """ENet's class weighting ``1 / ln(1.02 + p_class)`` (Paszke et al. 2016)."""
    freq = torch.from_numpy(scenes.class_frequencies(labels, n_classes)).float()
    return 1.0 / torch.log(1.02 + freq)


def train_family(
    filters: int,
    bit_widths: list[int],
    train_data: tuple[torch.Tensor, torch.Tensor],
    config: Config,
    seed: int,
) -> tuple[enet.CompressedENet, dict[int, enet.CompressedENet], dict[str, list[float]]]:
    """The float model with ``filters``, and one QAT model per bit width fine-tuned from it."""
    images, labels = train_data
    n_classes = len(scenes.CLASSES)
    weights = enet_class_weights(labels, n_classes)
    torch.manual_seed(seed)
    model = enet.CompressedENet(filters, n_classes)
    losses = {
        model_key(filters, None): training.train(
            model,
            images,
            labels,
            config.float_steps,
            config.batch_size,
            config.float_lr,
            seed,
            desc=f"float, {filters} filters",
            class_weights=weights,
        )
    }
    folded = enet.fold_batchnorm(model)
    quantized = {}
    for bits in bit_widths:
        qat = enet.fold_batchnorm(folded)
        qat.set_quantization(enet.calibrate_quantization(qat, images[:32], bits))
        losses[model_key(filters, bits)] = training.train(
            qat,
            images,
            labels,
            config.qat_steps,
            config.batch_size,
            config.qat_lr,
            seed + 1,
            desc=f"QAT {bits}-bit, {filters} filters",
            class_weights=weights,
        )
        quantized[bits] = qat
    return model, quantized, losses


def bit_accuracy(
    model: enet.CompressedENet,
    images: torch.Tensor,
    project_dir: Path,
    reuse_factor: int,
    clock_period_ns: float,
    types: str = "narrow",
    fifo_depths: str = "analytic",
) -> tuple[dict[str, float], torch.Tensor, object]:
    """Convert ``model`` (ZCU102 accelerator project, the convs' ``types``, its FIFO depths),
    compile the C simulation, run it on ``images`` and compare with the quantized PyTorch
    model in float64."""
    hw = tuple(images.shape[2:])
    hls_model = hls.convert(
        model,
        hw,
        project_dir,
        reuse_factor=reuse_factor,
        backend="VivadoAccelerator",
        clock_period_ns=clock_period_ns,
        types=types,
        fifo_depths=fifo_depths,
    )
    compile_s = hls.compile_csim(hls_model)
    tic = time.perf_counter()
    csim = hls.csim_predict(hls_model, images, model.n_classes)
    csim_s = (time.perf_counter() - tic) / len(images)
    reference = training.predict_logits(model, images, dtype=torch.float64).double()
    row = {
        "argmax_agreement": float((csim.argmax(1) == reference.argmax(1)).double().mean()),
        "max_abs_error": float((csim - reference).abs().max()),
        "n_images": len(images),
        "n_pixels": int(reference[:, 0].numel()),
        "compile_s": compile_s,
        "csim_ms_per_image": 1e3 * csim_s,
    }
    return row, csim, hls_model


def torch_latency(
    model: torch.nn.Module, hw: tuple[int, int], batch: int, device: torch.device, repeats: int
) -> float:
    """Median milliseconds per image of the float model's forward pass at ``batch``."""
    model = model.eval().to(device)
    x = torch.rand(batch, 3, *hw, device=device)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            tic = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up passes
                times.append((time.perf_counter() - tic) / batch)
    model.to("cpu")
    return 1e3 * float(np.median(times))


def majority_baseline(labels: torch.Tensor, n_classes: int) -> dict:
    """Scores of predicting the most frequent class everywhere: the floor a model must beat."""
    majority = int(torch.bincount(labels.flatten(), minlength=n_classes).argmax())
    pred = torch.full_like(labels, majority)
    return training.segmentation_scores(training.confusion_matrix(pred, labels, n_classes))


def estimates_table(
    models: dict[str, enet.CompressedENet],
    hw: tuple[int, int],
    reuse_factors: list[int],
    clock_period_ns: float,
) -> list[dict]:
    """The analytic estimate for every quantized model and reuse factor."""
    rows = []
    for key, model in models.items():
        bits = model.quant.bits
        for rf in reuse_factors:
            est = estimate.estimate(model, hw, rf, clock_period_ns, bits, bits)
            rows.append({"model": key, "filters": model.filters, "bits": bits, **est})
    return rows


DESIGNS = [("wide", "default"), ("narrow", "default"), ("wide", "analytic"),
           ("narrow", "analytic")]  # fmt: skip


def project_resources(
    models: dict[str, enet.CompressedENet],
    hw: tuple[int, int],
    reuse_factor: int,
    clock_period_ns: float,
    folder: Path,
) -> list[dict]:
    """For every quantized model, the resources of the ZCU102 project hls4ml generates at
    ``hw``: the convs' wide or exact narrow types, with hls4ml's default FIFO depths or the
    analytic ones (``DESIGNS``; ``estimate.project_estimate`` on the converted model, nothing
    is compiled)."""
    rows = []
    for key, model in models.items():
        for types, depths in DESIGNS:
            hls_model = hls.convert(
                model, hw, folder / f"{key}-{types}-{depths}", reuse_factor=reuse_factor,
                backend="VivadoAccelerator", clock_period_ns=clock_period_ns, types=types,
                fifo_depths=depths,
            )  # fmt: skip
            rows.append({"model": key, "filters": model.filters, "bits": model.quant.bits,
                         "types": types, "fifo_depths": depths,
                         **estimate.project_estimate(hls_model)})  # fmt: skip
    return rows


def fifo_check(
    model: enet.CompressedENet, hw: tuple[int, int], reuse_factor: int, folder: Path
) -> dict:
    """The analytic FIFO depths of ``model``'s project at ``hw`` (they depend on the shapes
    only), checked by the token simulation (one image through blocking FIFOs of those
    depths); and the same simulation with every FIFO between layers at ``fifo.CHAIN_DEPTH``
    (the wrapper's two FIFOs kept), which must deadlock where two paths meet."""
    hls_model = hls.convert(model, hw, folder, reuse_factor=reuse_factor,
                            backend="VivadoAccelerator", types="narrow")  # fmt: skip
    depths = fifo.analytic_depths(hls_model)
    sized = fifo.simulate(hls_model, depths)
    wrapper = (hls_model.inputs[0], hls_model.outputs[0])
    chain = fifo.simulate(hls_model, {k: v if k in wrapper else fifo.CHAIN_DEPTH
                                      for k, v in depths.items()})  # fmt: skip
    merges = [la for la in hls_model.get_layers() if la.class_name in ("Merge", "Concatenate")]
    merge_inputs = {name for layer in merges for name in layer.inputs}
    deep = {k: v for k, v in depths.items() if v > fifo.CHAIN_DEPTH and k not in wrapper}
    return {
        "hw": list(hw),
        "fifos": len(depths),
        "chain_fifos": sum(v == fifo.CHAIN_DEPTH for v in depths.values()),
        "backlog_depths": deep,
        "out_local_depth": depths[wrapper[1]],
        "out_local_words": fifo.output_words(hls_model),
        "sized_finished": sized["finished"],
        "sized_delivered": sized["delivered"],
        "chain_finished": chain["finished"],
        "chain_delivered": chain["delivered"],
        "chain_full_merge_inputs": sorted(set(chain["full"]) & merge_inputs),
    }


def round_floats(obj, digits: int = 6):
    """Round floats in nested metrics so the JSON stays small and readable."""
    if isinstance(obj, float):
        return round(obj, digits) if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_floats(v, digits) for v in obj]
    return obj
