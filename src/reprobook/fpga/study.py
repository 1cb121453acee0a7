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
import pandas as pd
import torch

from reprobook.fpga import enet, estimate, hls, scenes, training
from reprobook.profiles import Config, resolve_profile

METRICS_VERSION = 1
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
) -> tuple[dict[str, float], torch.Tensor, object]:
    """Convert ``model`` (ZCU102 accelerator project), compile the C simulation, run it on
    ``images`` and compare with the quantized PyTorch model in float64."""
    hw = tuple(images.shape[2:])
    hls_model = hls.convert(
        model,
        hw,
        project_dir,
        reuse_factor=reuse_factor,
        backend="VivadoAccelerator",
        clock_period_ns=clock_period_ns,
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


# -- claims ------------------------------------------------------------------------------------
def _miou(metrics: dict, filters: int, bits: int | None) -> float | None:
    row = metrics["models"].get(model_key(filters, bits))
    return None if row is None else row["test"]["miou"]


def check_claims(
    metrics: dict, agreement_threshold: float = 0.99, close_tolerance: float = 0.05
) -> dict[str, bool]:
    """The chapter's claims on one run's metrics. Claims about several filter counts or bit
    widths are present only when the run has them."""
    claims: dict[str, bool] = {}
    rows = metrics["models"]
    claims["csim_agrees"] = all(
        r["argmax_agreement"] >= agreement_threshold for r in metrics["bit_accuracy"].values()
    )
    claims["training_loss_falls"] = all(
        np.mean(loss[-10:]) < np.mean(loss[:10]) for loss in metrics["losses"].values()
    )
    floor = metrics["majority_baseline"]
    claims["beats_majority_baseline"] = all(
        r["test"]["miou"] > floor["miou"] and r["test"]["accuracy"] > floor["accuracy"]
        for r in rows.values()
    )
    filters = sorted({r["filters"] for r in rows.values()})
    bit_widths = sorted({r["bits"] for r in rows.values() if r["bits"] is not None})
    if len(filters) >= 2:  # every step up in filters, at every precision
        claims["miou_rises_with_filters"] = all(
            _miou(metrics, hi, b) > _miou(metrics, lo, b)
            for b in [None, *bit_widths]
            for lo, hi in zip(filters[:-1], filters[1:], strict=True)
        )
    if {4, 8} <= set(bit_widths):
        near = [f for f in filters if f >= 8]
        if near:
            claims["q4_close_to_q8_at_8_16_filters"] = all(
                abs(_miou(metrics, f, 4) - _miou(metrics, f, 8)) <= close_tolerance for f in near
            )
        if 4 in filters:
            claims["q4_drops_most_at_4_filters"] = (
                (
                    _miou(metrics, 4, 8) - _miou(metrics, 4, 4)
                    >= max(_miou(metrics, f, 8) - _miou(metrics, f, 4) for f in near)
                )
                if near
                else False
            )
    return claims


def can_read(metrics: dict) -> bool:
    """Whether saved metrics have the layout this version of the chapter reads."""
    return metrics.get("metrics_version") == METRICS_VERSION and {
        "models", "bit_accuracy", "estimates", "estimate_hw", "majority_baseline", "latency",
        "claims",
    } <= set(metrics)  # fmt: skip


# -- tables ------------------------------------------------------------------------------------
def miou_table(metrics: dict):
    """Test mIoU and pixel accuracy: rows filters, columns float / each bit width."""
    rows = [
        {"filters": r["filters"], "precision": _precision_label(r["bits"], short=False),
         "mIoU": r["test"]["miou"], "pixel accuracy": r["test"]["accuracy"]}
        for r in metrics["models"].values()
    ]  # fmt: skip
    frame = pd.DataFrame(rows).pivot(index="filters", columns="precision")
    order = sorted({r["precision"] for r in rows}, key=lambda p: (p != "float", p))
    return frame.reindex(columns=order, level=1)


def iou_table(metrics: dict):
    """Per-class test IoU of every model."""
    rows = [
        {"filters": r["filters"], "precision": _precision_label(r["bits"], short=False),
         **{c: v for c, v in zip(scenes.CLASSES, r["test"]["iou"], strict=True)}}
        for r in metrics["models"].values()
    ]  # fmt: skip
    return (
        pd.DataFrame(rows).sort_values(["filters", "precision"]).set_index(["filters", "precision"])
    )


def bit_accuracy_table(metrics: dict):
    rows = [{"model": k, **v} for k, v in metrics["bit_accuracy"].items()]
    return pd.DataFrame(rows).set_index("model")


def estimate_frame(metrics: dict):
    frame = pd.DataFrame(metrics["estimates"])
    keep = [
        "model",
        "reuse_factor",
        "multipliers",
        "dsp_fraction_upper",
        "weight_kbit",
        "bram_fraction",
        "bram_fraction_default_fifos",
        "interval_ms",
        "latency_ms_low",
        "latency_ms_high",
    ]
    return frame[keep].set_index(["model", "reuse_factor"])


def _precision_label(bits: int | None, short: bool = True) -> str:
    """``hom4`` (the authors' name for homogeneous 4-bit QAT) or, for tables, ``4-bit QAT``."""
    if bits is None:
        return "float"
    return f"hom{bits}" if short else f"{bits}-bit QAT"


def miniature_findings(metrics: dict) -> dict[str, str]:
    """What this run found, in words, keyed by the ids of the chapter's anchors."""
    data = metrics.get("data", "procedural street scenes (a stand-in for Cityscapes)")
    size = f"{metrics['width']}×{metrics['height']} {data}"
    claims = metrics["claims"]

    def verdict(key: str) -> str:
        if key not in claims:
            return "not tested in this run"
        return "holds" if claims[key] else "does not hold"

    def mious(filters: list[int]) -> str:
        rows = [r for r in metrics["models"].values() if r["filters"] in filters]
        return (
            "; ".join(
                f"{_precision_label(r['bits'])} {r['filters']}f {r['test']['miou']:.3f}"
                for r in rows
            )
            or "not run"
        )

    chosen = metrics["chosen_model"]
    est = [e for e in metrics["estimates"] if e["model"] == chosen]
    est_hw = "×".join(str(v) for v in reversed(metrics["estimate_hw"]))
    where = f"analytic estimate for {chosen} at {est_hw}, {metrics['clock_ns']:g} ns clock"
    one_image = "; ".join(
        f"RF {e['reuse_factor']}: {e['latency_ms_low']:.2f}–{e['latency_ms_high']:.2f} ms"
        for e in est
    )
    streaming = "; ".join(f"RF {e['reuse_factor']}: {e['interval_ms']:.2f} ms" for e in est)
    resources = "; ".join(
        f"RF {e['reuse_factor']}: ≤ {100 * e['dsp_fraction_upper']:.0f}% of DSPs, BRAM "
        f"{100 * e['bram_fraction']:.1f}% ({100 * e['bram_fraction_default_fifos']:.0f}% with "
        f"default-depth FIFOs)"
        for e in est
    )
    agreement = min(r["argmax_agreement"] for r in metrics["bit_accuracy"].values())
    return {
        "latency_batch1": f"not measured (no board); {where}, one image: {one_image}",
        "latency_batch10": f"not measured (no board); {where}, per image of a stream: {streaming}",
        "resources": f"not measured (no Vivado); {where}: {resources}",
        "miou_16": f"{size}: {mious([16])}. 4-bit within 0.05 of 8-bit at 8–16 filters: "
        f"{verdict('q4_close_to_q8_at_8_16_filters')}",
        "miou_small": f"{size}: {mious([4, 8])}. mIoU rises with each step in filters: "
        f"{verdict('miou_rises_with_filters')}; the 8-to-4-bit loss is largest at 4 filters: "
        f"{verdict('q4_drops_most_at_4_filters')}",
        "csim_bit_accuracy": f"hls4ml C simulation vs quantized PyTorch (float64): lowest "
        f"pixel-argmax agreement {100 * agreement:.2f}% over {len(metrics['bit_accuracy'])} "
        f"model(s)",
    }


def reading_note(metrics: dict) -> str:
    """The result in words, every statement computed from ``metrics``."""
    claims = metrics["claims"]
    rows = metrics["models"]
    lines = []
    filters = sorted({r["filters"] for r in rows.values()})
    bit_widths = sorted({r["bits"] for r in rows.values() if r["bits"] is not None})
    if "miou_rises_with_filters" in claims:
        spans = "; ".join(
            f"{_precision_label(b)} {_miou(metrics, filters[0], b):.3f} → "
            f"{_miou(metrics, filters[-1], b):.3f}"
            for b in [None, *bit_widths]
        )
        verdict = "rises" if claims["miou_rises_with_filters"] else "does **not** rise"
        lines.append(
            f"- **Filters.** From {filters[0]} to {filters[-1]} filters the test mIoU "
            f"{verdict} for every precision ({spans})."
        )
    if "q4_close_to_q8_at_8_16_filters" in claims:
        gaps = "; ".join(
            f"{f} filters: {_miou(metrics, f, 4) - _miou(metrics, f, 8):+.3f}" for f in filters
        )
        verdict = (
            "stays within 0.05 of"
            if claims["q4_close_to_q8_at_8_16_filters"]
            else "does **not** stay within 0.05 of"
        )
        lines.append(
            f"- **4-bit vs 8-bit** (mIoU of hom4 minus hom8: {gaps}). At 8 and 16 "
            f"filters 4-bit {verdict} 8-bit."
        )
        if "q4_drops_most_at_4_filters" in claims:
            where = (
                "largest at 4 filters, as in the authors' model files"
                if claims["q4_drops_most_at_4_filters"]
                else "not largest at 4 filters, unlike the authors' model files"
            )
            lines.append(
                f"  The loss from 8 to 4 bits is {where} (their 4- and 8-filter numbers are "
                "not verified: see the table)."
            )
    low = min(r["argmax_agreement"] for r in metrics["bit_accuracy"].values())
    worst = max(r["max_abs_error"] for r in metrics["bit_accuracy"].values())
    lines.append(
        f"- **Bit accuracy.** Over {len(metrics['bit_accuracy'])} model(s), the C "
        f"simulation agrees with the quantized PyTorch model on at least "
        f"{100 * low:.2f} % of pixels; the largest logit difference is {worst:.3g}."
    )
    if not lines[:-1]:
        lines.insert(
            0,
            "- This run has one filter count and one bit width: the trend claims "
            "are tested only by the full profile.",
        )
    return "\n".join(lines)


def round_floats(obj, digits: int = 6):
    """Round floats in nested metrics so the JSON stays small and readable."""
    if isinstance(obj, float):
        return round(obj, digits) if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_floats(v, digits) for v in obj]
    return obj
