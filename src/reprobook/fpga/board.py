"""The ZCU102 side: a deployment package, and running it on the board with PYNQ.

On a workstation with Vivado, the chapter's ``target="bitstream"`` builds the bitfile inside the
hls4ml project, and :func:`collect_overlay` puts the bitfile and its ``.hwh`` side by side at
the project's top. :func:`write_package` adds what the board needs to check itself: the test
images, the C simulation's logits, the shapes. On the board (a PYNQ image on the ZCU102),
:func:`run_on_board` (or ``python -m reprobook.fpga.board <project>``, which needs only NumPy
and the board's own ``pynq``) loads the overlay through hls4ml's generated driver
(``axi_stream_driver.py``), streams the images through the DMA at batch 1 and 10, times them,
compares the outputs with the C simulation, and writes ``board_results.json``. ``pynq`` is
imported only here, and off the board its ``RuntimeError: No Devices Found`` becomes a clear
message.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from reprobook.fpga import driver

PACKAGE_FILES = ("images.npy", "csim_logits.npy", "package.json")
DMA_MAX_BYTES = 2**26 - 1  # the design's AXI DMA: buffer length register of 26 bits


def write_package(project_dir: str | Path, images, csim_logits) -> Path:
    """Save the board's test data in ``project_dir``: images (N, 3, H, W), the C simulation's
    logits (N, classes, H, W), and their shapes."""
    project_dir = Path(project_dir)
    if not project_dir.is_dir():
        raise ValueError(f"no hls4ml project at {project_dir}")
    images, csim_logits = (
        np.asarray(a.detach().cpu() if hasattr(a, "detach") else a) for a in (images, csim_logits)
    )
    if images.ndim != 4 or csim_logits.ndim != 4 or len(images) != len(csim_logits):
        raise ValueError("images and csim_logits must be (N, C, H, W) with the same N")
    if images.shape[2:] != csim_logits.shape[2:]:
        raise ValueError(
            f"image size {tuple(images.shape[2:])} and logit size "
            f"{tuple(csim_logits.shape[2:])} differ"
        )
    np.save(project_dir / "images.npy", images.astype(np.float32))
    np.save(project_dir / "csim_logits.npy", csim_logits.astype(np.float32))
    n, classes, height, width = csim_logits.shape
    meta = {"n_images": n, "n_classes": classes, "height": height, "width": width}
    (project_dir / "package.json").write_text(json.dumps(meta, indent=1))
    return project_dir


OVERLAY_STEM = "enet_zcu102"


def collect_overlay(project_dir: str | Path) -> Path:
    """After Vivado: copy the bitfile (``project_1.runs/impl_1/*.bit``) and its hardware handoff
    (``.../hw_handoff/*.hwh``) to the project's top folder under one name, as PYNQ's ``Overlay``
    needs them side by side; returns the bitfile's path."""
    project_dir = Path(project_dir)
    bits = sorted(p for p in project_dir.rglob("*.bit") if p.parent != project_dir)
    handoffs = sorted(project_dir.rglob("hw_handoff/*.hwh"))
    if not bits or not handoffs:
        raise FileNotFoundError(
            f"no Vivado bitfile and .hwh under {project_dir}: run target='bitstream' first"
        )
    bitfile = project_dir / f"{OVERLAY_STEM}.bit"
    shutil.copyfile(bits[0], bitfile)
    shutil.copyfile(handoffs[0], bitfile.with_suffix(".hwh"))
    return bitfile


def find_bitfile(project_dir: str | Path) -> Path:
    """The overlay :func:`collect_overlay` put in the project folder (bitfile and .hwh)."""
    bitfile = Path(project_dir) / f"{OVERLAY_STEM}.bit"
    if not bitfile.is_file() or not bitfile.with_suffix(".hwh").is_file():
        raise FileNotFoundError(
            f"no {bitfile.name} with its .hwh in {project_dir}: build them on a machine with "
            f"Vivado (python -m reprobook.fpga package --bitstream), then unpack the package "
            f"on the board"
        )
    return bitfile


def _load_driver(project_dir: Path):
    path = project_dir / "axi_stream_driver.py"
    if not path.is_file():
        raise FileNotFoundError(f"no hls4ml PYNQ driver at {path}")
    spec = importlib.util.spec_from_file_location("axi_stream_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_on_board(
    project_dir: str | Path, batch_sizes: tuple[int, ...] = (1, 10), repeats: int = 5
) -> dict[str, object]:
    """On the ZCU102: per-image latency at each batch size, and agreement with the C simulation
    at every batch size (pixel-argmax agreement and max |difference| of the logits, per batch
    size and the worst over them), and whether repeated runs gave identical outputs."""
    project_dir = Path(project_dir)
    missing = [f for f in PACKAGE_FILES if not (project_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{project_dir} lacks {', '.join(missing)}: make the board package first "
            f"(python -m reprobook.fpga package)"
        )
    meta = json.loads((project_dir / "package.json").read_text())
    if any(not isinstance(b, int) or not 1 <= b <= meta["n_images"] for b in batch_sizes):
        raise ValueError(
            f"batch sizes must lie in 1..{meta['n_images']} (the images in the package), "
            f"got {batch_sizes!r}"
        )
    try:
        import pynq  # noqa: F401  (only on this path: the board's own PYNQ)
        from pynq import Device

        if not Device.devices:
            raise RuntimeError("No Devices Found")
    except (ImportError, RuntimeError) as error:
        raise RuntimeError(
            f"target 'pynq' must run on the ZCU102 under its PYNQ image ({error}); "
            f"off the board use target='csim'"
        ) from error
    images = np.load(project_dir / "images.npy")
    csim = np.load(project_dir / "csim_logits.npy").astype(np.float64)
    h, w, c = meta["height"], meta["width"], meta["n_classes"]
    largest = max(batch_sizes) * h * w * max(3, c) * 4  # float32 words
    if largest > DMA_MAX_BYTES:
        raise ValueError(
            f"batch {max(batch_sizes)} needs {largest:,} bytes in one DMA transfer; the ZCU102 "
            f"design's AXI DMA moves at most {DMA_MAX_BYTES:,} (a 26-bit length register)"
        )
    module = _load_driver(project_dir)
    bitfile = find_bitfile(project_dir)
    results: dict[str, object] = {"bitfile": str(bitfile)}
    agreements, errors = [], []
    for batch in batch_sizes:
        overlay = module.NeuralNetworkOverlay(str(bitfile), (batch, h * w * 3), (batch, h * w * c))
        times = []
        collected = []
        for _ in range(repeats):
            for start in range(0, len(images) - batch + 1, batch):
                stream = driver.pack(images[start : start + batch])
                tic = time.perf_counter()
                out = np.array(overlay.predict(stream))
                times.append((time.perf_counter() - tic) / batch)
                collected.append(out)
        results[f"ms_per_image_batch{batch}"] = 1e3 * float(np.median(times))
        # Every batch size is checked against the C simulation, every repeat of it too.
        n_used = (len(images) // batch) * batch
        outputs = driver.unpack(np.concatenate(collected), h, w, c).reshape(
            repeats, n_used, c, h, w
        )
        reference = csim[:n_used]
        agreement = float((outputs.argmax(2) == reference.argmax(1)).mean())
        error = float(np.abs(outputs - reference).max())
        results[f"argmax_agreement_with_csim_batch{batch}"] = agreement
        results[f"max_abs_error_vs_csim_batch{batch}"] = error
        results[f"repeats_identical_batch{batch}"] = bool(
            all(np.array_equal(outputs[0], again) for again in outputs[1:])
        )
        agreements.append(agreement)
        errors.append(error)
    results["argmax_agreement_with_csim"] = min(agreements)  # the worst batch size
    results["max_abs_error_vs_csim"] = max(errors)
    (project_dir / "board_results.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":  # on the board: python -m reprobook.fpga.board <project folder>
    if len(sys.argv) != 2:
        sys.exit("usage: python -m reprobook.fpga.board <hls4ml project folder>")
    print(json.dumps(run_on_board(sys.argv[1]), indent=1))
