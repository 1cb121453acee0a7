"""ch13's reading of its metrics: the claims, the findings beside the paper's, tables and notes.

Pure functions of the metrics that ``reprobook.fpga.study`` computes (see
``reprobook.report.ChapterReport`` for the names every chapter's report module provides).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprobook import report
from reprobook.fpga import estimate, fifo, scenes
from reprobook.fpga.study import METRICS_VERSION as METRICS_VERSION  # the protocol names it here
from reprobook.fpga.study import model_key

REQUIRED_KEYS = (
    "models", "bit_accuracy", "estimates", "estimate_hw", "majority_baseline", "latency",
    "resources", "claims",
)  # fmt: skip
PAPER_CLAIM = (
    "a semantic-segmentation network for a car's cameras (ENet with aggressive filter reduction, "
    "quantization-aware trained at 4 and 8 bits and converted with hls4ml) runs fully on chip on "
    "a Xilinx ZCU102 FPGA in a few milliseconds per image, with a modest share of the chip, while "
    "maintaining accuracy on Cityscapes"
)
CLAIMS = {
    "csim_agrees": "hls4ml's C simulation agrees with the quantized PyTorch model on at least "
    "99 % of pixels (argmax), for every quantized model",
    "training_loss_falls": "every model's training loss falls (sanity)",
    "beats_majority_baseline": "every model beats the majority-class floor in mIoU and pixel "
    "accuracy (sanity)",
    "miou_rises_with_filters": "test mIoU rises with each step up in filters, at every precision",
    "q4_close_to_q8_at_8_16_filters": "at 8 and 16 filters, 4-bit QAT stays within 0.05 mIoU of "
    "8-bit (reported, not asserted)",
    "q4_drops_most_at_4_filters": "the loss from 8 to 4 bits is largest at 4 filters (reported, "
    "not asserted)",
    "sized_fifos_finish": "with the analytic FIFO depths, one image passes the token simulation "
    "of the deployed model's design without a deadlock",
    "chain_fifos_deadlock": f"with every FIFO between layers {fifo.CHAIN_DEPTH} words deep, the "
    "same simulation deadlocks where two paths meet (the depths matter; sanity)",
    "deployed_fits_zcu102": "the deployed model's project, with the run's types and FIFO "
    "depths, fits the ZCU102 by the rules of thumb (an estimate; reported, not asserted)",
}
HEADLINE_CLAIMS = ("csim_agrees", "miou_rises_with_filters", "q4_close_to_q8_at_8_16_filters")
KEY_ANCHOR = "miou_16"


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
    if "fifo_check" in metrics:
        claims["sized_fifos_finish"] = bool(metrics["fifo_check"]["sized_finished"])
        check = metrics["fifo_check"]
        claims["chain_fifos_deadlock"] = not check["chain_finished"] and bool(
            check.get("chain_full_merge_inputs")
        )
    design = (metrics.get("hls_types", "narrow"), metrics.get("fifo_depths", "analytic"))
    deployed = _resources(metrics, metrics.get("chosen_model")).get(design)
    if deployed is not None:
        claims["deployed_fits_zcu102"] = bool(deployed["fits_zcu102"])
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


ESTIMATE_COLUMNS = {  # metrics key -> table header (units in brackets)
    "multipliers": "multipliers",
    "dsp_fraction_upper": "DSP share (upper bound)",
    "weight_kbit": "weights [kbit]",
    "bram_fraction": "BRAM share",
    "bram_fraction_default_fifos": "BRAM share, default FIFOs",
    "interval_ms": "interval [ms]",
    "latency_ms_low": "latency, full overlap [ms]",
    "latency_ms_high": "latency, no overlap [ms]",
}


def estimate_frame(metrics: dict):
    """The resource and latency estimates per model and reuse factor, headed in words."""
    frame = pd.DataFrame(metrics["estimates"])
    frame = frame[["model", "reuse_factor", *ESTIMATE_COLUMNS]].rename(
        columns={**ESTIMATE_COLUMNS, "reuse_factor": "reuse factor"}
    )
    return frame.set_index(["model", "reuse factor"])


RESOURCE_COLUMNS = {
    "dsp": "DSP",
    "lut": "LUT",
    "bram_36k": "BRAM36",
    "fifo_kbit": "FIFO kbit",
    "accumulator_bits": "accumulator bits",
    "fits_zcu102": "fits the ZCU102",
}


def resources_frame(metrics: dict):
    """Per model, the generated project's estimated resources with wide and with narrow types,
    with hls4ml's default FIFO depths and with the analytic ones."""
    frame = pd.DataFrame(metrics["resources"])
    if "fifo_depths" not in frame:  # runs before the FIFOs were sized
        frame["fifo_depths"] = "default"
    frame = frame[["model", "types", "fifo_depths", *RESOURCE_COLUMNS]]
    frame = frame.rename(columns={**RESOURCE_COLUMNS, "fifo_depths": "FIFO depths"})
    frame["fits the ZCU102"] = frame["fits the ZCU102"].map({True: "yes", False: "no"})
    frame[RESOURCE_COLUMNS["fifo_kbit"]] = frame[RESOURCE_COLUMNS["fifo_kbit"]].round().astype(int)
    return frame.set_index(["model", "types", "FIFO depths"])


def _resources(metrics: dict, model: str | None) -> dict[tuple[str, str], dict]:
    """The model's project rows keyed by (types, FIFO depths)."""
    return {(r["types"], r.get("fifo_depths", "default")): r
            for r in metrics.get("resources", []) if r["model"] == model}  # fmt: skip


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
    project = _resources(metrics, chosen)
    if project:
        resources += "; the generated project at RF {rf}: ".format(rf=metrics["reuse_factor"]) + (
            "; ".join(
                f"{types} types, {depths} FIFOs: {r['dsp']} DSP, {r['lut']:,} LUT, "
                f"{r['bram_36k']} BRAM36 ({'fits' if r['fits_zcu102'] else 'does not fit'})"
                for (types, depths), r in project.items()
            )
        )
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


def reading_notes(metrics: dict) -> str:
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
                f"  The loss from 8 to 4 bits is {where} (their 4- and 8-filter numbers come "
                "from the repository's evaluation files, not the paper's tables: see the table)."
            )
    low = min(r["argmax_agreement"] for r in metrics["bit_accuracy"].values())
    worst = max(r["max_abs_error"] for r in metrics["bit_accuracy"].values())
    agreement = "on every pixel" if low == 1.0 else f"on at least {100 * low:.2f} % of pixels"
    lines.append(
        f"- **Bit accuracy.** Over {report.plural(len(metrics['bit_accuracy']), 'model')}, the C "
        f"simulation agrees with the quantized PyTorch model {agreement}; the largest logit "
        f"difference is {worst:.3g}."
    )
    if not lines[:-1]:
        lines.insert(
            0,
            "- This run has one filter count and one bit width: the trend claims "
            "are tested only by the full profile.",
        )
    numbers = _resource_numbers(metrics)
    if numbers["narrow_bram"] != "—":
        lines.append(
            f"- **Generated project** ({metrics['chosen_model']}, reuse factor "
            f"{numbers['resources_rf']}, rules of thumb, not synthesis). Narrow types take its "
            f"FIFOs from {numbers['narrow_fifo_kbit']} and its BRAM from "
            f"{numbers['narrow_bram']}; with every FIFO holding a whole feature map, "
            f"{numbers['narrow_fit']} quantized models fit the ZCU102."
        )
    if numbers["sized_bram"] != "—":
        lines.append(
            f"- **Sized FIFOs** (same project, analytic depths): its FIFOs hold "
            f"{numbers['sized_fifo_kbit']} and it needs {numbers['sized_bram']}; "
            f"{numbers['sized_fit']} quantized models fit with narrow types and sized FIFOs "
            f"({numbers['wide_sized_fit']} with wide types)."
        )
    if "fifo_check" in metrics:
        check = metrics["fifo_check"]
        sized = "passes" if check["sized_finished"] else "does **not** pass"
        chain = (
            "deadlocks where two paths meet"
            if claims.get("chain_fifos_deadlock")
            else "does **not** deadlock where two paths meet"
        )
        lines.append(
            f"- **FIFO depths.** One image {sized} the token simulation of the deployed design "
            f"with the analytic depths; with every FIFO between layers {fifo.CHAIN_DEPTH} words "
            f"deep it {chain}."
        )
    return "\n".join(lines)


# -- the headline number and the numbers of the prose -----------------------------------------
def _bit_widths(metrics: dict) -> list[int]:
    return sorted({r["bits"] for r in metrics["models"].values() if r["bits"] is not None})


def _filters(metrics: dict) -> list[int]:
    return sorted({r["filters"] for r in metrics["models"].values()})


def _data_name(metrics: dict) -> str:
    data = metrics.get("data", "procedural")
    return "Cityscapes" if data.startswith("Cityscapes") else "procedural scenes, not Cityscapes"


def key_number(metrics: dict) -> str:
    """Test mIoU of the quantized models with the most filters (the paper's key accuracy row)."""
    top = _filters(metrics)[-1]
    parts = [
        f"{_precision_label(b)} {_miou(metrics, top, b):.3f}"
        for b in _bit_widths(metrics)
        if _miou(metrics, top, b) is not None
    ]
    return f"{top} filters: mIoU {', '.join(parts)} ({_data_name(metrics)})"


def _chosen_estimate(metrics: dict) -> dict | None:
    """The estimate row of the chosen model at the run's reuse factor (else its first row)."""
    rows = [e for e in metrics["estimates"] if e["model"] == metrics["chosen_model"]]
    at_rf = [e for e in rows if e["reuse_factor"] == metrics.get("reuse_factor")]
    return (at_rf or rows or [None])[0]


def prose_numbers(metrics: dict) -> dict[str, str]:
    """The numbers the chapter's prose discusses, formatted."""
    filters, bit_widths = _filters(metrics), _bit_widths(metrics)
    checks = metrics["bit_accuracy"].values()
    trend = "; ".join(
        f"{_precision_label(b)} "
        + " → ".join(f"{m:.3f}" for f in filters if (m := _miou(metrics, f, b)) is not None)
        for b in [None, *bit_widths]
    )
    if {4, 8} <= set(bit_widths):
        losses = {f: _miou(metrics, f, 8) - _miou(metrics, f, 4) for f in filters}
        gaps = ", ".join(f"{-loss:+.3f} at {f} filters" for f, loss in losses.items())
        worst = max(losses, key=losses.get)
        worst_gap = f"{losses[worst]:.3f} at {worst} filters"
    else:
        gaps = worst_gap = "not run (this run has one bit width)"
    frequencies = metrics.get("class_frequencies")
    est = _chosen_estimate(metrics)
    cpu = metrics["latency"].get("cpu, batch 1")
    return {
        "person_share": "not recorded" if frequencies is None else report.pct(frequencies[-1]),
        "majority_miou": f"{metrics['majority_baseline']['miou']:.3f}",
        "n_models": str(len(metrics["models"])),
        "n_csim_models": str(len(metrics["bit_accuracy"])),
        "csim_agreement_min": report.pct(min(r["argmax_agreement"] for r in checks), 2),
        "csim_max_abs_error": f"{max(r['max_abs_error'] for r in checks):.3g}",
        "filters_steps": " → ".join(str(f) for f in filters),
        "miou_trend": trend,
        "q4_minus_q8": gaps,
        "q4_largest_loss": worst_gap,
        "chosen_model": metrics["chosen_model"],
        "estimate_rf": "—" if est is None else str(est["reuse_factor"]),
        "estimate_latency": "—"
        if est is None
        else f"{est['latency_ms_low']:.2f}–{est['latency_ms_high']:.2f} ms",
        "estimate_interval": "—" if est is None else f"{est['interval_ms']:.2f} ms",
        "estimate_dsp": "—" if est is None else f"≤ {report.pct(est['dsp_fraction_upper'], 0)}",
        "cpu_latency_batch1": "not measured" if cpu is None else f"{cpu:.2f} ms",
        **_resource_numbers(metrics),
    }


def backlog_depths(metrics: dict) -> str:
    """The range of the analytic depths of the FIFOs that hold a backlog, and out_local's."""
    check = metrics.get("fifo_check")
    if not check or not check["backlog_depths"]:
        return "—"
    depths = sorted(check["backlog_depths"].values())
    return (f"{depths[0]:,} to {depths[-1]:,} words on {len(depths)} FIFOs; the output FIFO "
            f"{check['out_local_depth']:,} of {check['out_local_words']:,} words")  # fmt: skip


def _resource_numbers(metrics: dict) -> dict[str, str]:
    """The chosen model's generated project, wide against narrow types, and the fit verdicts."""
    project = _resources(metrics, metrics["chosen_model"])
    wide, narrow = project.get(("wide", "default")), project.get(("narrow", "default"))
    sized = project.get(("narrow", "analytic"))

    def fit(types: str, depths: str) -> str:
        rows = [r for r in metrics["resources"]
                if r["types"] == types and r.get("fifo_depths", "default") == depths]  # fmt: skip
        return f"{sum(r['fits_zcu102'] for r in rows)} of {len(rows)}" if rows else "—"

    return {
        "resources_rf": str(metrics["reuse_factor"]),
        "narrow_fifo_kbit": "—"
        if not (wide and narrow)
        else (f"{wide['fifo_kbit']:,.0f} to {narrow['fifo_kbit']:,.0f} kbit"),
        "narrow_bram": "—"
        if not (wide and narrow)
        else (f"{wide['bram_36k']:,} to {narrow['bram_36k']:,} BRAM36 of 912"),
        "narrow_lut": "—" if not (wide and narrow) else (f"{wide['lut']:,} to {narrow['lut']:,}"),
        "narrow_fit": fit("narrow", "default"),
        "sized_fifo_kbit": "—"
        if not (narrow and sized)
        else (f"{sized['fifo_kbit']:,.0f} kbit (from {narrow['fifo_kbit']:,.0f})"),
        "sized_bram": "—"
        if not (narrow and sized)
        else (f"{sized['bram_36k']:,} BRAM36 of 912 (from {narrow['bram_36k']:,})"),
        "sized_fit": fit("narrow", "analytic"),
        "wide_sized_fit": fit("wide", "analytic"),
        "fifo_backlog_depths": backlog_depths(metrics),
        "fifo_chain_depth": str(fifo.CHAIN_DEPTH),
        "fifo_slack": str(fifo.SLACK),
        "rule_lut_bits": str(estimate.LUT_MULT_MAX_BITS),
        "rule_srl_bits": f"{estimate.FIFO_SRL_MAX_BITS:,}",
        "rule_srl_depth": str(estimate.FIFO_SRL_MAX_DEPTH),
    }
