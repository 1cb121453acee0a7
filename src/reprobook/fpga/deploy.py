"""From a trained checkpoint to a package for the ZCU102, in one command.

The chapter's full run saves its quantized models (``checkpoints.pt``: every fixed-point type and
the integer codes of every weight, with the settings of the run). ``python -m reprobook.fpga
package`` turns one of them into a slim tarball for the board:

1. rebuild the model and the run's test images (procedural scenes from the saved seed);
2. convert it with hls4ml (ZCU102 accelerator project, the run's types and FIFO depths), compile
   the C simulation and check it against the quantized PyTorch model, bit for bit;
3. with ``--bitstream`` (Vivado on PATH), synthesize and build the bitfile and its ``.hwh``;
4. write the tarball: hls4ml's PYNQ driver, the test images and the C simulation's logits,
   the board-side code (:mod:`reprobook.fpga.board` and :mod:`reprobook.fpga.driver`, NumPy only),
   ``run_on_board.py``, a README, and the bitfile and ``.hwh`` when Vivado built them.

On the board: unpack, ``python3 run_on_board.py``; it prints milliseconds per image at batch 1
and 10 and the agreement with the C simulation.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import torch

from reprobook import chapters
from reprobook.fpga import board, enet, fifo, hls, scenes, study

SETTINGS = ("reuse_factor", "clock_period_ns", "hls_types", "fifo_depths")
RUN_SCRIPT = '''"""Run the packaged ENet on the ZCU102 (PYNQ): latency at batch 1 and 10, and
agreement with the C simulation. Needs only NumPy and the board's own pynq."""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reprobook.fpga.board import run_on_board  # noqa: E402

n_images = json.loads((HERE / "package.json").read_text())["n_images"]
batches = tuple(sorted({1, min(10, n_images)}))
results = run_on_board(HERE, batch_sizes=batches)
for batch in batches:
    print(f"batch {batch}: {results[f'ms_per_image_batch{batch}']:.3f} ms per image, "
          f"argmax agreement with the C simulation "
          f"{results[f'argmax_agreement_with_csim_batch{batch}']:.4f}, "
          f"max |difference| {results[f'max_abs_error_vs_csim_batch{batch}']:.3g}")
print(json.dumps(results, indent=1))
'''


def checkpoint_bytes(models: dict[str, enet.CompressedENet], meta: dict) -> bytes:
    """The quantized ``models`` (keyed as in the chapter, ``f16-q4``) and the run's ``meta``
    (input size, data, settings) as the bytes of one ``torch.save`` file of plain data."""
    missing = [k for k in ("height", "width", "data_seed", "n_test", "csim_images", *SETTINGS)
               if k not in meta]  # fmt: skip
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    buffer = io.BytesIO()
    state = {"meta": dict(meta), "models": {k: enet.to_checkpoint(m) for k, m in models.items()}}
    torch.save(state, buffer)
    return buffer.getvalue()


def load_checkpoints(path: str | Path) -> tuple[dict[str, enet.CompressedENet], dict]:
    """The models and meta that :func:`checkpoint_bytes` saved."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    state = torch.load(path, weights_only=True)
    return {k: enet.from_checkpoint(v) for k, v in state["models"].items()}, state["meta"]


def test_images(meta: dict, cityscapes_dir: str | Path | None = None) -> torch.Tensor:
    """The first ``csim_images`` test images of the run the checkpoint came from."""
    hw = (meta["height"], meta["width"])
    if meta.get("data", "procedural") == "procedural":
        images = scenes.make_dataset(meta["n_test"], *hw, seed=meta["data_seed"])[0]
    elif cityscapes_dir is None:
        raise ValueError("this checkpoint was trained on Cityscapes: pass cityscapes_dir")
    else:
        images = scenes.load_cityscapes(cityscapes_dir, "val", meta["n_test"], *hw,
                                        seed=meta["data_seed"])[0]  # fmt: skip
    return images[: meta["csim_images"]]


def package_project(project_dir: str | Path, tarball: str | Path, overlay: bool = False) -> Path:
    """Pack an hls4ml ZCU102 project that holds the board's test data (``board.write_package``)
    into ``tarball``: driver, data, board code, run script, README, and with ``overlay`` the
    bitfile and ``.hwh`` that ``board.collect_overlay`` put there (only then: an older
    bitfile in the folder may come from other settings)."""
    project_dir, tarball = Path(project_dir), Path(tarball)
    needed = ["axi_stream_driver.py", *board.PACKAGE_FILES]
    overlay_files = [f"{board.OVERLAY_STEM}.{ext}" for ext in ("bit", "hwh")]
    missing = [f for f in needed + overlay_files * overlay if not (project_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{project_dir} lacks {', '.join(missing)}")
    built = overlay
    code = Path(board.__file__).parent
    root = tarball.name.removesuffix(".tar.gz")
    readme = (
        f"ENet for the ZCU102, made by reprobook from {project_dir.name}.\n"
        "On the board, as root in PYNQ's Python environment (PYNQ's overlays need root):\n"
        "    python3 run_on_board.py\n"
        + ("" if built else (
            f"No bitfile: build it on a machine with Vivado (the chapter's target 'bitstream', "
            f"or python -m reprobook.fpga package --bitstream) and add {board.OVERLAY_STEM}.bit "
            f"and {board.OVERLAY_STEM}.hwh here.\n"))
    )  # fmt: skip
    files: dict[str, bytes] = {name: (project_dir / name).read_bytes() for name in needed}
    files.update({
        "reprobook/__init__.py": b'"""The board-side part of reprobook."""\n',
        "reprobook/fpga/__init__.py": b"",
        "reprobook/fpga/board.py": (code / "board.py").read_bytes(),
        "reprobook/fpga/driver.py": (code / "driver.py").read_bytes(),
        "run_on_board.py": RUN_SCRIPT.encode(),
        "README.txt": readme.encode(),
    })  # fmt: skip
    if built:
        files.update({name: (project_dir / name).read_bytes() for name in overlay_files})
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return tarball


def package(
    checkpoint: str | Path,
    model_key: str,
    out_dir: str | Path,
    bitstream: bool = False,
    cityscapes_dir: str | Path | None = None,
    **overrides,
) -> dict:
    """Checkpoint -> hls4ml project -> C simulation checked bit for bit -> (bitfile) ->
    tarball. ``overrides`` replace the run's ``SETTINGS``. Returns what was made and checked."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; allowed: {', '.join(SETTINGS)}")
    models, meta = load_checkpoints(checkpoint)
    if model_key not in models:
        raise ValueError(f"no model {model_key!r} in {checkpoint}; it has {sorted(models)}")
    chosen = {k: v for k, v in overrides.items() if v is not None}
    settings = {k: meta[k] for k in SETTINGS} | chosen
    model, images = models[model_key], test_images(meta, cityscapes_dir)
    project = Path(out_dir) / model_key
    row, csim, hls_model = study.bit_accuracy(
        model, images, project, settings["reuse_factor"], settings["clock_period_ns"],
        settings["hls_types"], settings["fifo_depths"],
    )  # fmt: skip
    agreement, error = row["argmax_agreement"], row["max_abs_error"]
    if error > 0:
        raise RuntimeError(
            f"the C simulation of {model_key} is not bit-exact with the quantized model "
            f"(largest logit difference {error:.3g}, argmax agreement {100 * agreement:.3f} %): "
            f"nothing was packaged"
        )
    if bitstream:
        hls.build_bitstream(hls_model)
        board.collect_overlay(project)
    board.write_package(project, images, csim)
    tarball = Path(out_dir) / f"enet_zcu102_{model_key}.tar.gz"
    tarball = package_project(project, tarball, overlay=bitstream)
    return {"tarball": str(tarball), "model": model_key, "settings": settings,
            "images": len(images), "csim_argmax_agreement": agreement,
            "csim_max_abs_error": error, "bitfile": bitstream, "hls_model": hls_model}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reprobook.fpga",
        description="package: a trained checkpoint of ch13 -> a tarball for the ZCU102",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("package", help="checkpoint -> hls4ml project -> board tarball")
    root = chapters.repo_root()
    full = root / "results" / "ch13-enet-fpga-hls4ml" / "full"
    cmd.add_argument("--checkpoint", default=full / "checkpoints.pt")
    cmd.add_argument("--model", default=None, help="e.g. f16-q4 (default: the run's chosen one)")
    cmd.add_argument("--out", default=root / "build/hls/ch13-enet-fpga-hls4ml/package")
    cmd.add_argument("--bitstream", action="store_true", help="synthesize (needs Vivado)")
    cmd.add_argument("--reuse-factor", type=int, default=None)
    cmd.add_argument("--clock-period-ns", type=float, default=None)
    cmd.add_argument("--hls-types", default=None, choices=hls.TYPE_MODES)
    cmd.add_argument("--fifo-depths", default=None, choices=fifo.FIFO_MODES)
    cmd.add_argument("--cityscapes-dir", default=None)
    args = parser.parse_args(argv)
    model_key = args.model
    if model_key is None:
        meta = torch.load(args.checkpoint, weights_only=True)["meta"] if Path(
            args.checkpoint).is_file() else {}  # fmt: skip
        model_key = meta.get("chosen_model", "")
    made = package(
        args.checkpoint, model_key, args.out, bitstream=args.bitstream,
        cityscapes_dir=args.cityscapes_dir, reuse_factor=args.reuse_factor,
        clock_period_ns=args.clock_period_ns, hls_types=args.hls_types,
        fifo_depths=args.fifo_depths,
    )  # fmt: skip
    made.pop("hls_model")
    print(json.dumps(made, indent=1))
    return 0
