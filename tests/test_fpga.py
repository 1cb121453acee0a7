"""Tests of reprobook.fpga: fixed-point casts, the compressed ENet, metrics, the driver's packing
(checked against hls4ml's C simulation), the analytic estimate, the board path off the board."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fake_pynq import make_fake_pynq
from reprobook import anchors, report
from reprobook.fpga import (
    board,
    driver,
    enet,
    estimate,
    fifo,
    fixed,
    hls,
    plots,
    scenes,
    study,
    training,
)
from reprobook.fpga import report as chapter

SMALL_HW = (16, 24)


# -- fixed ---------------------------------------------------------------------------------------
def test_fixed_type_spelling_and_range():
    kind = fixed.FixedType(8, 3)
    assert kind.hls() == "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"
    assert kind.step == 2**-5 and kind.min_value == -4.0 and kind.max_value == 4 - 2**-5
    unsigned = fixed.FixedType(4, 0, signed=False)
    assert unsigned.min_value == 0 and unsigned.max_value == 15 / 16


@pytest.mark.parametrize(
    "kwargs",
    [dict(width=0, integer=0), dict(width=8, integer=99), dict(width=1, integer=0),
     dict(width=8, integer=2, rounding="AP_RND"), dict(width=8, integer=2, overflow="AP_SAT_SYM")],
)  # fmt: skip
def test_fixed_type_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        fixed.FixedType(**kwargs)


def test_quantize_rounds_half_to_even_and_saturates():
    kind = fixed.FixedType(4, 2, signed=False)  # step 0.25, max 3.75
    x = torch.tensor([0.125, 0.375, 0.625, -1.0, 3.9, 100.0])
    assert kind.quantize(x).tolist() == [0.0, 0.5, 0.5, 0.0, 3.75, 3.75]
    signed = fixed.FixedType(4, 1)  # step 1/8, range [-1, 7/8]
    assert signed.quantize(torch.tensor([-2.0, 0.0625, 0.9])).tolist() == [-1.0, 0.0, 0.875]


def test_truncation_and_wrap_modes():
    kind = fixed.FixedType(4, 4, rounding="AP_TRN", overflow="AP_WRAP")  # integers -8..7
    assert kind.quantize(torch.tensor([1.9, -1.1, 8.0, -9.0])).tolist() == [1.0, -2.0, -8.0, 7.0]


def test_fake_quantize_is_straight_through_inside_the_range():
    kind = fixed.FixedType(4, 2, signed=False)
    x = torch.tensor([0.3, 1.1, 5.0, -0.5], requires_grad=True)
    y = fixed.fake_quantize(x, kind)
    y.sum().backward()
    assert y.tolist() == [0.25, 1.0, 3.75, 0.0]
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_weight_and_activation_types():
    assert fixed.weight_type(torch.tensor([0.3, -0.2]), 8).integer == 0  # range [-0.5, 0.5)
    assert fixed.weight_type(torch.tensor([1.0]), 8).integer == 1
    assert fixed.weight_type(torch.zeros(3), 4).integer == 1
    assert fixed.activation_type(torch.linspace(0, 3, 1000), 8).integer == 2
    assert fixed.activation_type(torch.zeros(10), 4).integer == 0
    with pytest.raises(ValueError):
        fixed.weight_type(torch.ones(2), 1)
    with pytest.raises(ValueError):
        fixed.weight_type(torch.tensor([float("nan")]), 8)
    with pytest.raises(ValueError):
        fixed.activation_type(torch.ones(2), 4, quantile=0)


# -- enet ----------------------------------------------------------------------------------------
def test_enet_topology_matches_the_deployed_model():
    model = enet.CompressedENet(16)
    assert len(model.conv_names()) == 58  # the authors' h5 model has 58 QConv2D
    assert model.init_conv.out_channels == 29
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 3
    assert model(torch.rand(2, 3, *SMALL_HW)).shape == (2, 4, *SMALL_HW)


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (1, 3, 12, 16), (3, 16, 16)])
def test_enet_rejects_bad_images(shape):
    with pytest.raises(ValueError):
        enet.CompressedENet(4)(torch.rand(*shape))


def test_enet_rejects_bad_arguments():
    for kwargs in (dict(filters=0), dict(n_classes=1), dict(stage_blocks=(1, 1))):
        with pytest.raises(ValueError):
            enet.CompressedENet(**{"filters": 4, **kwargs})


def _trained_bn(filters=4, blocks=(1, 1, 1, 1, 1)):
    torch.manual_seed(0)
    model = enet.CompressedENet(filters, stage_blocks=blocks).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def test_fold_batchnorm_keeps_the_function():
    model = _trained_bn()
    x = torch.rand(3, 3, *SMALL_HW)
    folded = enet.fold_batchnorm(model)
    assert not folded.batchnorm and folded.init_bn is None
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-4)


def test_quantization_needs_folding_and_complete_types():
    model = _trained_bn()
    with pytest.raises(ValueError, match="fold"):
        model.set_quantization(enet.Quantization(bits=8))
    folded = enet.fold_batchnorm(model)
    with pytest.raises(ValueError, match="lacks types"):
        folded.set_quantization(enet.Quantization(bits=8))
    with pytest.raises(ValueError, match="bits"):
        enet.calibrate_quantization(folded, torch.rand(2, 3, *SMALL_HW), 1)


def _quantized(bits=8, filters=4, blocks=(1, 1, 1, 1, 1)):
    folded = enet.fold_batchnorm(_trained_bn(filters, blocks))
    images = torch.rand(4, 3, *SMALL_HW)
    folded.set_quantization(enet.calibrate_quantization(folded, images, bits))
    return folded


def test_export_puts_every_weight_on_its_grid():
    model = _quantized(bits=4)
    exported = enet.export_for_hls(model)
    assert exported.quant is None
    modules = dict(exported.named_modules())
    for name in model.conv_names():
        step = model.quant.weights[name].step
        codes = modules[name].weight / step
        torch.testing.assert_close(codes, codes.round())
        assert codes.abs().max() <= 2 ** (model.quant.bits - 1)
    x = torch.rand(2, 3, *SMALL_HW)
    with pytest.raises(ValueError):
        enet.export_for_hls(exported)
    # The quantized model equals the exported float model with ReLU outputs cast.
    assert model(x).shape == exported(x).shape


# -- training and metrics ------------------------------------------------------------------------
def test_confusion_matrix_and_scores_by_hand():
    pred = torch.tensor([0, 0, 1, 1, 2, 0])
    true = torch.tensor([0, 1, 1, 1, 2, 2])
    confusion = training.confusion_matrix(pred, true, 4)
    assert confusion[:3, :3].tolist() == [[1, 0, 0], [1, 2, 0], [1, 0, 1]]
    scores = training.segmentation_scores(confusion)
    # IoU: class 0: 1 / (3 + 1 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1/2; 3 absent
    assert scores["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert scores["iou"][3] is None
    assert scores["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        training.confusion_matrix(pred, true[:3], 4)
    with pytest.raises(ValueError):
        training.confusion_matrix(pred, true + 3, 4)
    with pytest.raises(ValueError):
        training.segmentation_scores(np.ones((2, 3)))


def test_training_lowers_the_loss_float_and_qat():
    images, labels = scenes.make_dataset(16, *SMALL_HW, seed=0)
    torch.manual_seed(0)
    model = enet.CompressedENet(4, stage_blocks=(1, 1, 1, 1, 1))
    losses = training.train(model, images, labels, 40, 4, 3e-3, seed=0)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    qat = enet.fold_batchnorm(model)
    qat.set_quantization(enet.calibrate_quantization(qat, images, 4))
    qat_losses = training.train(qat, images, labels, 10, 4, 1e-3, seed=1)
    assert all(math.isfinite(v) for v in qat_losses)
    with pytest.raises(ValueError):
        training.train(model, images, labels, 0, 4, 1e-3, seed=0)
    with pytest.raises(ValueError):
        training.train(model, images, labels, 5, 99, 1e-3, seed=0)


def test_predict_logits_in_float64_restores_float32():
    model = _quantized()
    x = torch.rand(2, 3, *SMALL_HW)
    out = training.predict_logits(model, x, dtype=torch.float64)
    assert out.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32


# -- scenes --------------------------------------------------------------------------------------
def test_scenes_are_deterministic_and_labelled():
    a_images, a_labels = scenes.make_dataset(3, 40, 64, seed=5)
    b_images, b_labels = scenes.make_dataset(3, 40, 64, seed=5)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert a_images.shape == (3, 3, 40, 64) and a_labels.shape == (3, 40, 64)
    assert float(a_images.min()) >= 0 and float(a_images.max()) <= 1
    assert set(a_labels.unique().tolist()) <= {0, 1, 2, 3}
    assert scenes.class_frequencies(a_labels).sum() == pytest.approx(1.0)
    for bad in ((0, 40, 64), (2, 41, 64), (2, 8, 64)):
        with pytest.raises(ValueError):
            scenes.make_dataset(*bad, seed=0)


def _fake_cityscapes(root, split="val", frames=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(frames):
        city = "aachen" if i % 2 == 0 else "bonn"
        stem = f"{city}_000000_{i:06d}"
        for folder in ("leftImg8bit", "gtFine"):
            (root / folder / split / city).mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        ids = np.full((64, 128), 11, np.uint8)  # building -> background
        ids[32:, :] = 7  # road
        ids[40:50, 10:30] = 26  # car
        ids[20:40, 100:104] = 24  # person
        Image.fromarray(ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def test_load_cityscapes_maps_the_four_classes(tmp_path):
    _fake_cityscapes(tmp_path)
    assert len(scenes.cityscapes_pairs(tmp_path, "val")) == 3
    images, labels = scenes.load_cityscapes(tmp_path, "val", 2, 16, 32, seed=0)
    assert images.shape == (2, 3, 16, 32) and labels.shape == (2, 16, 32)
    assert float(images.max()) <= 1 and set(labels.unique().tolist()) == {0, 1, 2, 3}
    assert (labels[:, 8:, :] != 0).all()  # the lower half is road (or car on it)
    cropped, _ = scenes.load_cityscapes(tmp_path, "val", 3, 16, 32, seed=1, crop=0.8)
    assert cropped.shape == (3, 3, 16, 32)
    with pytest.raises(ValueError, match="found 3"):
        scenes.load_cityscapes(tmp_path, "val", 4, 16, 32, seed=0)
    with pytest.raises(ValueError, match="not a Cityscapes folder"):
        scenes.load_cityscapes(tmp_path, "train", 1, 16, 32, seed=0)
    with pytest.raises(ValueError, match="split"):
        scenes.cityscapes_pairs(tmp_path, "dev")
    with pytest.raises(ValueError, match="crop"):
        scenes.load_cityscapes(tmp_path, "val", 1, 16, 32, seed=0, crop=1.5)


# -- driver --------------------------------------------------------------------------------------
def test_pack_is_channels_last_row_major():
    images = torch.arange(12, dtype=torch.float32).reshape(1, 3, 2, 2)
    stream = driver.pack(images)
    # pixel (0,0): R=0, G=4, B=8; pixel (0,1): 1, 5, 9; then row 1.
    assert stream.tolist() == [[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]]
    assert stream.dtype == np.float32
    with pytest.raises(ValueError):
        driver.pack(torch.zeros(1, 4, 2, 2))


def test_encode_matches_the_torch_cast():
    kind = fixed.FixedType(8, 0, signed=False)
    values = np.random.default_rng(0).uniform(-0.1, 1.1, 1000)
    codes = driver.encode(values, kind)
    assert codes.dtype == np.uint8
    expected = kind.to_codes(torch.from_numpy(values)).numpy()
    assert np.array_equal(codes.astype(np.float64), expected)
    assert np.allclose(driver.decode(codes, kind), kind.quantize(torch.from_numpy(values)).numpy())
    assert driver.encode(np.array([-3.0]), fixed.FixedType(16, 6)).dtype == np.int16
    with pytest.raises(ValueError):
        driver.encode(values, fixed.FixedType(8, 0, overflow="AP_WRAP"))


def test_unpack_inverts_the_stream_order():
    logits = np.random.default_rng(1).normal(size=(2, 4, 3, 5))
    stream = logits.transpose(0, 2, 3, 1).reshape(2, -1)
    assert np.array_equal(driver.unpack(stream, 3, 5, 4), logits)
    kind = fixed.FixedType(16, 6)
    codes = np.array([[1, 2, 3, 4]])
    assert driver.unpack(codes, 1, 1, 4, kind).ravel().tolist() == [
        c * kind.step for c in (1, 2, 3, 4)
    ]
    with pytest.raises(ValueError):
        driver.unpack(stream, 3, 5, 3)


# -- hls4ml (one compile for the module) ---------------------------------------------------------
@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    pytest.importorskip("hls4ml")
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed for hls4ml's C simulation")
    model = _quantized(bits=4)
    folder = tmp_path_factory.mktemp("hls") / "prj"
    hls_model = hls.convert(model, SMALL_HW, folder, reuse_factor=4, backend="VivadoAccelerator")
    hls.compile_csim(hls_model)
    return model, hls_model, folder


def test_config_carries_the_qat_types(compiled):
    model, _, _ = compiled
    config = hls.hls_config(model, SMALL_HW, reuse_factor=4)
    layers = config["LayerName"]
    assert layers["x"]["Precision"]["result"] == "ap_ufixed<8,0,AP_RND_CONV,AP_SAT>"
    name = "blocks.2.main"
    assert layers[hls.hls_name(name)]["Precision"]["weight"] == model.quant.weights[name].hls()
    relu = "blocks.2.main_relu"
    assert layers[hls.hls_name(relu)]["Precision"]["result"] == model.quant.activations[relu].hls()
    assert config["Model"]["Strategy"] == "Resource"


def test_csim_is_bit_exact_through_the_driver_packing(compiled):
    model, hls_model, _ = compiled
    images = scenes.make_dataset(3, *SMALL_HW, seed=3)[0]
    reference = training.predict_logits(model, images, dtype=torch.float64).double()
    csim = hls.csim_predict(hls_model, images, 4)  # goes through driver.pack / driver.unpack
    assert (csim.argmax(1) == reference.argmax(1)).double().mean() >= 0.99
    assert float((csim - reference).abs().max()) < 1e-3
    # The raw predict on the packed stream, unpacked by hand, is the same.
    stream = driver.pack(images).reshape(3, *SMALL_HW, 3)
    raw = np.asarray(hls_model.predict(stream), dtype=np.float64).reshape(3, -1)
    assert np.array_equal(driver.unpack(raw, *SMALL_HW, 4), csim.numpy())


def test_zcu102_project_is_written(compiled):
    _, _, folder = compiled
    assert (folder / "axi_stream_driver.py").is_file()
    assert "zcu102" in (folder / "design.tcl").read_text()


def test_hls_arguments_are_checked(compiled):
    model, _, _ = compiled
    with pytest.raises(ValueError, match="not quantized"):
        hls.hls_config(enet.CompressedENet(4), SMALL_HW)
    for kwargs in (
        dict(input_hw=(15, 24)),
        dict(reuse_factor=0),
        dict(strategy="Fast"),
        dict(backend="Quartus"),
    ):
        with pytest.raises(ValueError):
            hls.hls_config(model, **{"input_hw": SMALL_HW, **kwargs})
    assert hls.hls_name("blocks.0.proj") == "blocks_0_proj"


@pytest.mark.skipif(shutil.which("vivado_hls") is not None, reason="Vivado is installed here")
def test_bitstream_without_vivado_says_so(compiled):
    with pytest.raises(RuntimeError, match="Vivado"):
        hls.build_bitstream(compiled[1])


# -- board ---------------------------------------------------------------------------------------
def test_board_package_and_off_board_error(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    logits = torch.rand(2, 4, 8, 8)
    with pytest.raises(FileNotFoundError, match="reprobook.fpga package"):
        board.run_on_board(tmp_path)
    board.write_package(tmp_path, images, logits)
    assert all((tmp_path / f).is_file() for f in board.PACKAGE_FILES)
    with pytest.raises(RuntimeError, match="ZCU102"):
        board.run_on_board(tmp_path, batch_sizes=(1, 2))
    with pytest.raises(ValueError, match="batch sizes"):
        board.run_on_board(tmp_path, batch_sizes=(1, 10))  # the package holds 2 images
    with pytest.raises(FileNotFoundError, match="--bitstream"):
        board.find_bitfile(tmp_path)
    with pytest.raises(FileNotFoundError, match="bitstream"):
        board.collect_overlay(tmp_path)
    # Vivado's layout: the bitfile in the implementation run, the .hwh in the block design.
    impl = tmp_path / "myproject_vivado_accelerator" / "project_1.runs" / "impl_1"
    handoff = tmp_path / "myproject_vivado_accelerator" / "bd" / "design_1" / "hw_handoff"
    impl.mkdir(parents=True)
    handoff.mkdir(parents=True)
    (impl / "design_1_wrapper.bit").write_bytes(b"bits")
    (handoff / "design_1.hwh").write_text("<hwh/>")
    bitfile = board.collect_overlay(tmp_path)
    assert board.find_bitfile(tmp_path) == bitfile
    assert bitfile.with_suffix(".hwh").read_text() == "<hwh/>"
    with pytest.raises(ValueError):
        board.write_package(tmp_path / "missing", images, logits)
    with pytest.raises(ValueError):
        board.write_package(tmp_path, images, logits[:1])


def test_board_path_runs_the_generated_driver_on_a_fake_pynq(compiled, monkeypatch):
    # The whole board path off the board: hls4ml's own axi_stream_driver.py, loaded by
    # run_on_board, drives a stand-in pynq whose DMA runs the compiled C simulation on the
    # words it is sent, at batch 1 and batch 10; every batch size is compared with the C
    # simulation's logits saved in the package.
    _, hls_model, folder = compiled
    images = scenes.make_dataset(10, *SMALL_HW, seed=5)[0]
    csim = hls.csim_predict(hls_model, images, 4)
    board.write_package(folder, images, csim)
    bitfile = folder / f"{board.OVERLAY_STEM}.bit"
    bitfile.write_bytes(b"bits")
    bitfile.with_suffix(".hwh").write_text("<hwh/>")
    height, width = SMALL_HW

    def accelerator(words: np.ndarray) -> np.ndarray:
        pixels = words.reshape(len(words), height, width, 3)
        return np.asarray(hls_model.predict(pixels), dtype=np.float64).reshape(len(words), -1)

    fake = make_fake_pynq(accelerator)
    monkeypatch.setitem(sys.modules, "pynq", fake)
    results = board.run_on_board(folder, batch_sizes=(1, 10), repeats=2)
    for batch in (1, 10):
        assert results[f"argmax_agreement_with_csim_batch{batch}"] == 1.0
        assert results[f"max_abs_error_vs_csim_batch{batch}"] == 0.0
        assert results[f"repeats_identical_batch{batch}"]
        assert results[f"ms_per_image_batch{batch}"] > 0
    assert results["argmax_agreement_with_csim"] == 1.0
    n_in, n_out = height * width * 3, height * width * 4
    sends = [entry for entry in fake.log if entry[0] == "send"]
    receives = [entry for entry in fake.log if entry[0] == "recv"]
    assert [shape for _, shape, _, _ in sends] == [(1, n_in)] * 20 + [(10, n_in)] * 2
    assert [shape for _, shape, _, _ in receives] == [(1, n_out)] * 20 + [(10, n_out)] * 2
    assert all(dtype == np.float32 for _, _, dtype, _ in fake.log)
    assert (folder / "board_results.json").is_file()
    # A batch too large for one DMA transfer is refused before the board is touched.
    monkeypatch.setattr(board, "DMA_MAX_BYTES", 10 * n_out * 4 - 1)
    with pytest.raises(ValueError, match="26-bit"):
        board.run_on_board(folder, batch_sizes=(10,), repeats=1)


TLAST_HARNESS = r"""
#include <cstdio>
#include <cstdlib>
#include "firmware/myproject_axi.h"

// Calls the AXI-stream wrapper n_calls times, as the DMA streams one image per call; TLAST
// on the last input word of every call, or (a batch in one DMA transfer) of the last call
// only. Prints "call index" for every output word that carries TLAST.
int main(int argc, char **argv) {
    int n_calls = atoi(argv[1]), every_call = atoi(argv[2]);
    static input_axi_t in[N_IN];
    static output_axi_t out[N_OUT];
    for (int call = 0; call < n_calls; call++) {
        for (unsigned i = 0; i < N_IN; i++) {
            bool end = i == N_IN - 1 && (every_call || call == n_calls - 1);
            in[i] = input_axi_t(T_in(0.25f + 0.5f * ((i + call) % 2)), end);
        }
        myproject_axi(in, out);
        for (unsigned i = 0; i < N_OUT; i++)
            if (out[i].last) printf("%d %u\n", call, i);
    }
    return 0;
}
"""


def test_axi_wrapper_raises_tlast_with_the_last_output_word(compiled, tmp_path):
    # The generated wrapper, compiled as the board runs it (linked against the C-simulation
    # library that holds it): TLAST leaves the chip with the last output word of an image
    # whose last input word carried it, and with no other word; a batch of 10 images in one
    # DMA transfer (TLAST only at its end) ends with TLAST only after image 10.
    import subprocess

    _, _, folder = compiled
    library = next((folder / "firmware").glob("myproject-*.so"))
    source = tmp_path / "tlast.cpp"
    source.write_text(TLAST_HARNESS)
    binary = tmp_path / "tlast"
    subprocess.run(
        ["g++", "-O1", "-std=c++11", f"-I{folder}", f"-I{folder / 'firmware' / 'ap_types'}",
         str(source), str(library), f"-Wl,-rpath,{library.parent}", "-o", str(binary)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    n_out = SMALL_HW[0] * SMALL_HW[1] * 4

    def tlast_words(n_calls: int, every_call: int) -> list[tuple[int, int]]:
        run = subprocess.run([str(binary), str(n_calls), str(every_call)], check=True,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        return [tuple(map(int, line.split())) for line in run.stdout.split("\n") if line]

    assert tlast_words(2, 1) == [(0, n_out - 1), (1, n_out - 1)]
    assert tlast_words(10, 0) == [(9, n_out - 1)]


def _as_fixed(precision) -> fixed.FixedType:
    return fixed.FixedType(int(precision.width), int(precision.integer), bool(precision.signed),
                           rounding="AP_TRN", overflow="AP_WRAP")  # fmt: skip


def test_narrow_types_keep_the_csim_bit_exact_and_save_bits(compiled, tmp_path):
    # types="narrow" lets hls4ml infer each conv's accumulator and output (exact by its rule);
    # the C simulation must give the same bits as with the wide type everywhere.
    from hls4ml.model.layers import Conv2D

    model, wide, _ = compiled
    narrow = hls.convert(model, SMALL_HW, tmp_path / "narrow", reuse_factor=4,
                         backend="VivadoAccelerator", types="narrow")  # fmt: skip
    hls.compile_csim(narrow)
    images = scenes.make_dataset(3, *SMALL_HW, seed=3)[0]
    assert torch.equal(hls.csim_predict(narrow, images, 4), hls.csim_predict(wide, images, 4))
    convs = 0
    for layer in narrow.get_layers():
        if not isinstance(layer, Conv2D):
            continue
        fan_in = (
            layer.get_attr("n_chan") * layer.get_attr("filt_height") * layer.get_attr("filt_width")
        )
        expected = hls.exact_accum_type(
            _as_fixed(layer.get_input_variable().type.precision),
            _as_fixed(layer.types["weight_t"].precision),
            _as_fixed(layer.types["bias_t"].precision),
            fan_in,
        )
        accum = layer.types["accum_t"].precision
        assert (accum.width, accum.integer, accum.signed) == (
            expected.width, expected.integer, expected.signed,
        )  # fmt: skip
        assert accum.width < enet.WIDE_TYPE.width
        convs += 1
    assert convs == len(model.conv_names())
    bits = {name: sum(e["bits"] * e["channels"] for e in hls.stream_types(m).values())
            for name, m in (("wide", wide), ("narrow", narrow))}  # fmt: skip
    assert bits["narrow"] < bits["wide"]
    with pytest.raises(ValueError, match="types"):
        hls.hls_config(model, SMALL_HW, types="exact")


def _files_fifos(folder) -> dict[str, tuple[int, int, int]]:
    """FIFOs read from the generated C++: {stream: (depth, channels, bits)}."""
    firmware = folder / "firmware"
    typedefs = {
        name: (int(channels), int(bits))
        for bits, channels, name in re.findall(
            r"typedef nnet::array<ap_u?fixed<(\d+),[^>]*>, (\d+)\*1> (\w+);",
            (firmware / "defines.h").read_text(),
        )
    }
    fifos = {}
    for source in ("myproject.cpp", "myproject_axi.cpp"):
        text = (firmware / source).read_text()
        kinds = dict((n, t) for t, n in re.findall(r"hls::stream<(\w+)> (\w+)\(", text))
        for name, depth in re.findall(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)", text):
            channels, bits = typedefs[kinds[name]]
            fifos[name] = (int(depth), channels, bits)
    return fifos


def _files_multipliers(folder) -> int:
    """Sum of hls4ml's multiplier_limit over the conv configs in parameters.h."""
    text = (folder / "firmware" / "parameters.h").read_text()
    total = 0
    for body in re.findall(r"struct config\d+ : nnet::conv2d_config \{(.*?)\n\};", text, re.S):
        get = {k: int(v) for k, v in re.findall(r"static const unsigned (\w+) = (\d+);", body)}
        n = get["filt_height"] * get["filt_width"] * get["n_chan"] * get["n_filt"]
        total += -(-n // get["reuse_factor"]) - get["n_zeros"] // get["reuse_factor"]
    return total


@pytest.mark.parametrize("types, depths", [("wide", "default"), ("narrow", "default"),
                                           ("narrow", "analytic")])  # fmt: skip
def test_project_estimate_describes_the_generated_project(compiled, tmp_path, types, depths):
    # The estimate reads the converted model; the C++ that hls4ml writes must hold the same
    # FIFOs (names, depths, word types) and the same multipliers.
    model, wide, folder = compiled
    if (types, depths) != ("wide", "default"):
        folder = tmp_path / "project"
        hls_model = hls.convert(model, SMALL_HW, folder, reuse_factor=4,
                                backend="VivadoAccelerator", types=types,
                                fifo_depths=depths)  # fmt: skip
        hls_model.write()
    else:
        hls_model = wide
    streams = {s["name"]: (s["depth"], s["channels"], s["bits"])
               for s in estimate.project_streams(hls_model)}  # fmt: skip
    ports = {hls_model.get_input_variables()[0].name: "in_local",
             hls_model.get_output_variables()[0].name: "out_local"}  # fmt: skip
    streams = {ports.get(name, name): fifo for name, fifo in streams.items()}
    assert streams == _files_fifos(folder)
    result = estimate.project_estimate(hls_model)
    assert result["multipliers"] == _files_multipliers(folder)
    fifo_bits = sum(d * c * b for d, c, b in streams.values())
    assert result["fifo_kbit"] == fifo_bits / 1024 and result["fifos"] == len(streams)
    assert result["dsp"] == 0 and result["lut"] > 0  # 4-bit operands: multipliers in LUTs
    assert result["bram_36k"] > 0 and result["fits_zcu102"]


def test_fifo_memory_rule_by_hand():
    # shallow or small FIFOs go to shift registers; the others take ceil(word / 36) BRAM36
    # per 1,024 words
    assert estimate._fifo_bram36({"depth": 2, "channels": 16, "bits": 40}) == 0
    assert estimate._fifo_bram36({"depth": 30, "channels": 1, "bits": 30}) == 0
    assert estimate._fifo_bram36({"depth": 100, "channels": 16, "bits": 20}) == 9
    assert estimate._fifo_bram36({"depth": 2000, "channels": 1, "bits": 36}) == 2


def test_exact_accum_type_by_hand():
    u8 = fixed.FixedType(8, 0, signed=False)  # the input: [0, 1) in steps of 1/256
    w4 = fixed.FixedType(4, 1)  # weights in [-1, 0.875]
    b8 = fixed.FixedType(8, 2)
    # 27 products of 12 bits (1 integer bit, signed) need 5 more integer bits: <17, 6>;
    # the bias (2 integer bits, signed) adds one: <18, 7>, fraction max(11, 6) = 11.
    accum = hls.exact_accum_type(u8, w4, b8, 27)
    assert (accum.width, accum.integer, accum.signed) == (18, 7, True)
    assert hls.exact_accum_type(u8, w4, None, 1).hls() == "ap_fixed<12,1,AP_TRN,AP_WRAP>"
    with pytest.raises(ValueError, match="fan_in"):
        hls.exact_accum_type(u8, w4, b8, 0)


def test_csim_runs_the_axi_wrapper_and_the_tcl_targets_the_zcu102(compiled):
    # hls4ml 1.3.0 rewrites the C-simulation bridge to call the AXI-stream wrapper, and builds
    # it into the library, so the bit-exact check above includes the wrapper's input cast.
    _, _, folder = compiled
    bridge = (folder / "myproject_bridge.cpp").read_text()
    assert '#include "firmware/myproject_axi.h"' in bridge and "myproject_axi(" in bridge
    assert "firmware/${PROJECT}_axi.cpp" in (folder / "build_lib.sh").read_text()
    axi = (folder / "firmware" / "myproject_axi.cpp").read_text()
    assert "is_last" in axi and "== N_OUT - 1" in axi  # TLAST only on the last output word
    design = (folder / "design.tcl").read_text()
    assert hls.ZCU102_PART in design and "zcu102" in design
    assert "group_bd_cells hier_0" in design and "axi_dma_0" in design  # the driver's hier_0
    assert "Freq {100}" in design  # the accelerator clocked at 100 MHz by the PS


# -- estimate ------------------------------------------------------------------------------------
def test_layer_costs_by_hand():
    model = enet.CompressedENet(4, stage_blocks=(1, 1, 1, 1, 1))
    costs = {c.name: c for c in estimate.layer_costs(model, (16, 24))}
    stem = costs["init_conv"]  # 3x3 conv, 3 -> 29 channels, on the pooled 8 x 12 image
    assert stem.multiplications_per_pixel == 9 * 3 * 29
    assert stem.in_pixels == stem.out_pixels == 8 * 12
    assert stem.line_buffer_values == 2 * 12 * 3
    assert costs["classifier"].out_pixels == 16 * 24
    assert costs["blocks.0.pool"].kind == "pool" and costs["blocks.0.pool"].out_pixels == 4 * 6


def test_estimate_formulas():
    model = enet.CompressedENet(4, stage_blocks=(1, 1, 1, 1, 1))
    costs = estimate.layer_costs(model, (16, 24))
    convs = [c for c in costs if c.kind == "conv"]
    one = estimate.estimate(model, (16, 24), 1, 5.0, 8, 8)
    assert one["multipliers"] == sum(c.multiplications_per_pixel for c in convs)
    cycles = [max(c.in_pixels, c.out_pixels) for c in costs]
    assert one["interval_ms"] == pytest.approx(max(cycles) * 5e-6)
    assert one["latency_ms_high"] == pytest.approx(sum(cycles) * 5e-6)
    eight = estimate.estimate(model, (16, 24), 8, 5.0, 8, 8)
    assert eight["multipliers"] == sum(math.ceil(c.multiplications_per_pixel / 8) for c in convs)
    assert eight["interval_ms"] == pytest.approx(16 * 24 * 8 * 5e-6)  # the classifier
    capped = estimate.estimate(model, (16, 24), 10**6, 5.0, 8, 8)  # R capped at n_in * c_out
    assert capped["multipliers"] == len(convs)
    assert capped["default_fifo_kbit"] == pytest.approx(
        sum(c.output_values for c in costs) * 8 / 1024
    )
    assert capped["bram_fraction_default_fifos"] > capped["bram_fraction"]
    with pytest.raises(ValueError):
        estimate.estimate(model, (16, 24), 0, 5.0, 8, 8)
    with pytest.raises(ValueError):
        estimate.estimate(model, (16, 20), 1, 5.0, 8, 8)


# -- study ---------------------------------------------------------------------------------------
def test_config_validation():
    assert study.resolve_config("smoke").filters == [8]
    with pytest.raises(ValueError, match="unknown profile"):
        study.resolve_config("huge")
    with pytest.raises(ValueError):
        study.resolve_config("smoke", height=30)
    with pytest.raises(ValueError, match="bits"):
        study.resolve_config("smoke", bits=[16])
    with pytest.raises(ValueError, match="csim_images"):
        study.resolve_config("smoke", csim_images=999)
    with pytest.raises(ValueError, match="unknown target"):
        study.check_target("asic")


def test_majority_baseline_by_hand():
    labels = torch.tensor([[0, 0, 0, 1]])
    scores = study.majority_baseline(labels, 4)
    assert scores["accuracy"] == 0.75
    assert scores["miou"] == pytest.approx((0.75 + 0.0) / 2)  # classes 2, 3 absent


def test_enet_class_weights_by_hand():
    labels = torch.tensor([0, 0, 0, 1])
    weights = study.enet_class_weights(labels, 3)
    expected = [1 / math.log(1.02 + p) for p in (0.75, 0.25, 0.0)]
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)


def _metrics(mious: dict[str, float], agreement: float = 1.0) -> dict:
    models = {}
    for key, miou in mious.items():
        filters, precision = key.split("-")
        bits = None if precision == "float" else int(precision[1:])
        models[key] = {
            "filters": int(filters[1:]),
            "bits": bits,
            "test": {"miou": miou, "accuracy": 0.9, "iou": [0.5] * 4},
        }
    return {
        "metrics_version": study.METRICS_VERSION, "height": 152, "width": 240, "n_classes": 4,
        "models": models,
        "bit_accuracy": {k: {"argmax_agreement": agreement, "max_abs_error": 0.0}
                         for k in models if not k.endswith("float")},
        "losses": {k: [2.0] * 10 + [1.0] * 10 for k in models},
        "estimates": [{"model": "f16-q4", "reuse_factor": 16, "interval_ms": 2.9,
                       "latency_ms_low": 2.9, "latency_ms_high": 15.0,
                       "dsp_fraction_upper": 1.1, "bram_fraction": 0.01,
                       "bram_fraction_default_fifos": 0.4}],
        "estimate_hw": [152, 240],
        "majority_baseline": {"miou": 0.16, "accuracy": 0.65},
        "latency": {"cpu, batch 1": 5.0},
        "chosen_model": "f16-q4", "clock_ns": 5.0, "reuse_factor": 16,
        "resources": [
            {"model": "f16-q4", "types": "wide", "fifo_depths": "default", "dsp": 0,
             "lut": 300_000, "bram_36k": 2000, "fifo_kbit": 40_000.0, "accumulator_bits": 2320,
             "fits_zcu102": False},
            {"model": "f16-q4", "types": "narrow", "fifo_depths": "default", "dsp": 0,
             "lut": 150_000, "bram_36k": 1500, "fifo_kbit": 12_000.0, "accumulator_bits": 1000,
             "fits_zcu102": False},
            {"model": "f16-q4", "types": "narrow", "fifo_depths": "analytic", "dsp": 0,
             "lut": 150_000, "bram_36k": 200, "fifo_kbit": 2_000.0, "accumulator_bits": 1000,
             "fits_zcu102": True},
        ],
        "fifo_check": {"hw": [152, 240], "fifos": 169, "chain_fifos": 150,
                       "backlog_depths": {"pool_cpy2": 153, "blocks_0_skip": 94},
                       "out_local_depth": 17_041, "out_local_words": 36_480,
                       "sized_finished": True, "sized_delivered": 36_480,
                       "chain_finished": False, "chain_delivered": 0,
                       "chain_full_merge_inputs": ["pool_cpy2"]},
    }  # fmt: skip


PAPER_LIKE = {"f4-float": 0.30, "f4-q4": 0.17, "f4-q8": 0.22, "f8-float": 0.34, "f8-q4": 0.32,
              "f8-q8": 0.33, "f16-float": 0.37, "f16-q4": 0.36, "f16-q8": 0.35}  # fmt: skip


def test_resources_frame_and_numbers():
    metrics = _metrics(PAPER_LIKE)
    frame = chapter.resources_frame(metrics)
    assert list(frame.index) == [("f16-q4", "wide", "default"), ("f16-q4", "narrow", "default"),
                                 ("f16-q4", "narrow", "analytic")]  # fmt: skip
    assert list(frame["fits the ZCU102"]) == ["no", "no", "yes"]
    assert list(frame.columns) == list(chapter.RESOURCE_COLUMNS.values())
    numbers = chapter.prose_numbers(metrics)
    assert numbers["narrow_fifo_kbit"] == "40,000 to 12,000 kbit"
    assert numbers["narrow_bram"] == "2,000 to 1,500 BRAM36 of 912"
    assert numbers["narrow_lut"] == "300,000 to 150,000"
    assert numbers["narrow_fit"] == "0 of 1" and numbers["resources_rf"] == "16"
    assert numbers["sized_bram"] == "200 BRAM36 of 912 (from 1,500)"
    assert numbers["sized_fifo_kbit"] == "2,000 kbit (from 12,000)"
    assert numbers["sized_fit"] == "1 of 1" and numbers["wide_sized_fit"] == "—"
    assert numbers["fifo_backlog_depths"] == (
        "94 to 153 words on 2 FIFOs; the output FIFO 17,041 of 36,480 words"
    )
    claims = chapter.check_claims(metrics)
    assert claims["sized_fifos_finish"] and claims["chain_fifos_deadlock"]
    assert claims["deployed_fits_zcu102"]
    findings = chapter.miniature_findings(dict(metrics, claims=claims))
    assert ("narrow types, analytic FIFOs: 0 DSP, 150,000 LUT, 200 BRAM36 (fits)"
            in findings["resources"])  # fmt: skip
    assert ("wide types, default FIFOs: 0 DSP, 300,000 LUT, 2000 BRAM36 (does not fit)"
            in findings["resources"])  # fmt: skip
    notes = chapter.reading_notes(dict(metrics, claims=claims))
    assert (
        "Narrow types take its FIFOs from 40,000 to 12,000 kbit and its BRAM from 2,000 to "
        in notes
    )
    assert "1 of 1 quantized models fit with narrow types and sized FIFOs" in notes
    assert "passes the token simulation" in notes
    assert "2 words deep it deadlocks where two paths meet" in notes
    # a run made before the FIFOs were sized still reads
    old = dict(metrics, resources=[{k: v for k, v in r.items() if k != "fifo_depths"}
                                   for r in metrics["resources"][:2]])  # fmt: skip
    assert list(chapter.resources_frame(old).index)[0] == ("f16-q4", "wide", "default")
    assert chapter.prose_numbers(old)["sized_bram"] == "—"
    failing = dict(metrics, fifo_check=dict(metrics["fifo_check"], sized_finished=False,
                                            chain_finished=True))  # fmt: skip
    claims = chapter.check_claims(failing)
    assert not claims["sized_fifos_finish"] and not claims["chain_fifos_deadlock"]
    elsewhere = dict(metrics, fifo_check=dict(metrics["fifo_check"], chain_full_merge_inputs=[]))
    assert not chapter.check_claims(elsewhere)["chain_fifos_deadlock"]  # stuck, not at a merge
    wide = dict(metrics, hls_types="wide")  # the run deployed a design with no row: no verdict
    assert "deployed_fits_zcu102" not in chapter.check_claims(wide)


def test_project_resources_tiny(tmp_path):
    pytest.importorskip("hls4ml")
    model = _quantized(bits=4)
    rows = study.project_resources({"f4-q4": model}, SMALL_HW, 4, 10.0, tmp_path)
    assert [(r["types"], r["fifo_depths"]) for r in rows] == study.DESIGNS
    wide, narrow, wide_sized, narrow_sized = rows
    assert narrow["fifo_kbit"] < wide["fifo_kbit"] and narrow["lut"] < wide["lut"]
    assert narrow["multipliers"] == wide["multipliers"]  # narrowing moves no multiplier
    assert narrow_sized["fifo_kbit"] < narrow["fifo_kbit"]
    assert wide_sized["fifo_kbit"] < wide["fifo_kbit"]
    assert narrow_sized["lut"] > narrow["lut"]  # small FIFOs become shift registers (LUTs)
    check = study.fifo_check(model, SMALL_HW, 4, tmp_path / "check")
    assert check["sized_finished"] and check["sized_delivered"] == math.prod(SMALL_HW)
    assert not check["chain_finished"] and check["backlog_depths"]
    assert "pool_cpy2" in check["chain_full_merge_inputs"]
    with pytest.raises(ValueError, match="types"):
        hls.check_settings(SMALL_HW, 4, types="exact")


def test_claims_on_paper_like_numbers():
    claims = chapter.check_claims(_metrics(PAPER_LIKE))
    assert claims == {
        "csim_agrees": True, "training_loss_falls": True, "beats_majority_baseline": True,
        "miou_rises_with_filters": True, "q4_close_to_q8_at_8_16_filters": True,
        "q4_drops_most_at_4_filters": True, "sized_fifos_finish": True,
        "chain_fifos_deadlock": True, "deployed_fits_zcu102": True,
    }  # fmt: skip


def test_claims_fail_when_they_should():
    bad = dict(PAPER_LIKE, **{"f16-q4": 0.20})  # 4-bit far below 8-bit at 16 filters
    claims = chapter.check_claims(_metrics(bad, agreement=0.95))
    assert not claims["csim_agrees"]
    assert not claims["q4_close_to_q8_at_8_16_filters"]
    assert not claims["miou_rises_with_filters"]  # hom4 falls from 8 (0.32) to 16 (0.20)
    shrinking = chapter.check_claims(_metrics(dict(PAPER_LIKE, **{"f16-float": 0.25})))
    assert not shrinking["miou_rises_with_filters"]
    single = chapter.check_claims(_metrics({"f8-float": 0.3, "f8-q8": 0.3}))
    assert "miou_rises_with_filters" not in single
    dip = chapter.check_claims(_metrics(dict(PAPER_LIKE, **{"f8-q8": 0.36})))  # 8 > 16 filters
    assert not dip["miou_rises_with_filters"]
    floor = chapter.check_claims(_metrics(dict(PAPER_LIKE, **{"f4-q4": 0.15})))
    assert not floor["beats_majority_baseline"]


def test_findings_cover_the_anchors_and_note_reads():
    metrics = _metrics(PAPER_LIKE)
    metrics["claims"] = chapter.check_claims(metrics)
    findings = chapter.miniature_findings(metrics)
    table = anchors.comparison_table(anchors.load_anchors("ch13-enet-fpga-hls4ml"), findings)
    assert len(table) == len(findings)
    assert "not measured" in findings["latency_batch1"]
    note = chapter.reading_notes(metrics)
    assert "rises" in note and "agrees with the quantized PyTorch model on every pixel" in note
    assert "at least 100" not in note
    assert report.can_read(chapter, metrics) and not report.can_read(
        chapter, {"metrics_version": 0}
    )
    table = chapter.miou_table(metrics)
    assert list(table.index) == [4, 8, 16]
    assert table[("mIoU", "4-bit QAT")].tolist() == [0.17, 0.32, 0.36]
    assert list(table["mIoU"].columns) == ["float", "4-bit QAT", "8-bit QAT"]
    assert chapter.iou_table(metrics).shape == (9, 4)


def test_report_module_follows_the_protocols():
    assert report.protocol_gaps(chapter, report.ChapterReport) == []
    assert report.protocol_gaps(study, report.ChapterStudy) == []
    assert set(chapter.HEADLINE_CLAIMS) <= set(chapter.CLAIMS)
    assert set(chapter.check_claims(_metrics(PAPER_LIKE))) <= set(chapter.CLAIMS)
    assert chapter.KEY_ANCHOR in anchors.load_anchors("ch13-enet-fpga-hls4ml")
    metrics = _metrics(PAPER_LIKE)
    metrics["claims"] = chapter.check_claims(metrics)
    del metrics["estimate_hw"]
    assert not report.can_read(chapter, metrics)


def test_key_number_and_prose_numbers_on_the_hand_case():
    metrics = _metrics(PAPER_LIKE)
    assert chapter.key_number(metrics) == (
        "16 filters: mIoU hom4 0.360, hom8 0.350 (procedural scenes, not Cityscapes)"
    )
    numbers = chapter.prose_numbers(metrics)
    assert numbers["miou_trend"] == (
        "float 0.300 → 0.340 → 0.370; hom4 0.170 → 0.320 → 0.360; hom8 0.220 → 0.330 → 0.350"
    )
    assert (
        numbers["q4_minus_q8"] == "-0.050 at 4 filters, -0.010 at 8 filters, +0.010 at 16 filters"
    )
    assert numbers["q4_largest_loss"] == "0.050 at 4 filters"
    assert numbers["filters_steps"] == "4 → 8 → 16" and numbers["n_models"] == "9"
    assert numbers["n_csim_models"] == "6" and numbers["csim_agreement_min"] == "100.00 %"
    assert numbers["estimate_latency"] == "2.90–15.00 ms" and numbers["estimate_rf"] == "16"
    assert numbers["estimate_dsp"] == "≤ 110 %" and numbers["majority_miou"] == "0.160"
    assert numbers["cpu_latency_batch1"] == "5.00 ms" and numbers["person_share"] == "not recorded"
    assert all(isinstance(v, str) and v for v in numbers.values())
    single = chapter.prose_numbers(_metrics({"f8-float": 0.3, "f8-q8": 0.31}, agreement=0.995))
    assert single["q4_minus_q8"].startswith("not run") and single["csim_agreement_min"] == "99.50 %"
    assert chapter.key_number(_metrics({"f8-float": 0.3, "f8-q8": 0.31})).startswith(
        "8 filters: mIoU hom8 0.310"
    )


def test_torch_latency_is_positive():
    model = enet.CompressedENet(4, stage_blocks=(1, 1, 1, 1, 1))
    assert study.torch_latency(model, (16, 24), 2, torch.device("cpu"), 2) > 0


def test_plots_draw():
    metrics = _metrics(PAPER_LIKE)
    images, labels = scenes.make_dataset(2, *SMALL_HW, seed=0)
    for fig in (
        plots.plot_panels(images, labels, {"pred": labels}),
        plots.plot_miou(metrics["models"]),
        plots.plot_losses(metrics["losses"]),
        plots.plot_estimates(metrics["estimates"], {"paper": 4.9}),
    ):
        assert fig.axes
        fig.clf()


def test_plot_estimates_gives_identical_estimates_one_line_naming_every_model():
    def rows(model, scale):
        return [
            {"model": model, "reuse_factor": rf, "interval_ms": scale * rf,
             "latency_ms_low": scale * rf, "latency_ms_high": 2 * scale * rf}
            for rf in (1, 2, 4)
        ]  # fmt: skip

    estimates = rows("f4-q4", 1.0) + rows("f8-q4", 1.0) + rows("f8-q8", 3.0)
    fig = plots.plot_estimates(estimates, {"paper": 2.0})
    try:
        labels = fig.axes[0].get_legend_handles_labels()[1]
        assert labels == ["f4-q4, f8-q4 (estimate, identical)", "f8-q8 (estimate)", "paper"]
        assert len(fig.axes[0].lines) == 3  # two estimate lines and the paper's
    finally:
        plt.close(fig)


def test_note_states_partial_agreement_as_a_lower_bound():
    metrics = _metrics(PAPER_LIKE)
    next(iter(metrics["bit_accuracy"].values()))["argmax_agreement"] = 0.995
    metrics["claims"] = chapter.check_claims(metrics)
    note = chapter.reading_notes(metrics)
    assert "on at least 99.50 % of pixels" in note and "every pixel" not in note


def test_estimate_table_is_headed_in_words():
    from reprobook.results import load_results

    frame = chapter.estimate_frame(load_results("ch13-enet-fpga-hls4ml", "full").metrics)
    assert list(frame.index.names) == ["model", "reuse factor"]
    assert "interval [ms]" in frame.columns
    assert not [c for c in frame.columns if "_" in c]


# -- FIFO depths ---------------------------------------------------------------------------------
def _layer(kind, in_hw, out_hw, **extra):
    return {"name": kind, "kind": kind, "inputs": ["a"], "outputs": ["b"], "in_hw": in_hw,
            "out_hw": out_hw, **extra}  # fmt: skip


def test_words_needed_by_hand():
    # 2x2 padded by one to 4x4: the inner words are the 6th, 7th, 10th and 11th written
    pad = fifo.words_needed(_layer("ZeroPadding2D", (2, 2), (4, 4), pad=(1, 1)))
    assert pad.tolist() == [0, 0, 0, 0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4]
    conv = fifo.words_needed(_layer("Conv2D", (4, 4), (2, 2), window=(3, 3), stride=(1, 1)))
    assert conv.tolist() == [11, 12, 15, 16]  # bottom-right corner of each 3x3 window
    pool = fifo.words_needed(_layer("Pooling2D", (4, 4), (2, 2), window=(2, 2), stride=(2, 2)))
    assert pool.tolist() == [6, 8, 14, 16]
    resize = fifo.words_needed(_layer("Resize", (2, 2), (4, 4)))
    assert resize.tolist() == [2] * 8 + [4] * 8  # a whole input row before its two copies
    assert fifo.words_needed(_layer("Activation", (2, 2), (2, 2))).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="one-input"):
        fifo.words_needed(_layer("Merge", (2, 2), (2, 2)))
    # the processes the token simulation runs read and write in the same order
    for layer in (
        _layer("ZeroPadding2D", (2, 3), (4, 5), pad=(1, 1)),
        _layer("Conv2D", (5, 6), (3, 4), window=(3, 3), stride=(1, 1)),
        _layer("Pooling2D", (4, 6), (2, 3), window=(2, 2), stride=(2, 2)),
        _layer("Resize", (2, 3), (4, 6)),
        _layer("PointwiseConv2D", (2, 2), (2, 2)),
    ):
        assert fifo.reads_before_writes(layer) == fifo.words_needed(layer).tolist()


def test_analytic_depths_let_one_image_through_and_smaller_ones_deadlock(compiled):
    _, hls_model, _ = compiled
    occupancy = fifo.occupancy(hls_model)
    depths = fifo.analytic_depths(hls_model)
    n_out = math.prod(SMALL_HW)
    result = fifo.simulate(hls_model, depths)
    assert result["finished"] and result["delivered"] == n_out
    # the pooled image waits for the initial 3x3 conv in front of the concatenation
    assert occupancy["pool_cpy2"] > 1 and depths["pool_cpy2"] > fifo.CHAIN_DEPTH
    assert all(depths[f"blocks_{i}_skip"] > fifo.CHAIN_DEPTH for i in range(5))
    # the FIFO straight into the concatenation needs the most words it holds plus one (room
    # for the clone's next word), not one word less
    tight = dict(depths, pool_cpy2=occupancy["pool_cpy2"] + 1)
    assert fifo.simulate(hls_model, tight)["finished"]
    short = dict(depths, pool_cpy2=occupancy["pool_cpy2"])
    stuck = fifo.simulate(hls_model, short)
    assert not stuck["finished"] and "pool_cpy2" in stuck["full"]
    wrapper = (hls_model.inputs[0], hls_model.outputs[0])
    chain = {k: v if k in wrapper else fifo.CHAIN_DEPTH for k, v in depths.items()}
    stuck = fifo.simulate(hls_model, chain)
    assert not stuck["finished"] and stuck["delivered"] < n_out
    assert "pool_cpy2" in stuck["full"]
    with pytest.raises(ValueError, match="no depth"):
        fifo.simulate(hls_model, {"x": 2})
    with pytest.raises(ValueError, match="slack"):
        fifo.analytic_depths(hls_model, slack=-1)


def test_fifo_modes_are_checked_and_cosim_needs_vivado(compiled, tmp_path, monkeypatch):
    model, _, _ = compiled
    with pytest.raises(ValueError, match="fifo_depths"):
        hls.check_settings(SMALL_HW, 4, fifo_depths="tiny")
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "vivado_hls" else
                        real_which(tool))  # fmt: skip
    with pytest.raises(RuntimeError, match="vivado_hls is not on PATH"):
        hls.convert(model, SMALL_HW, tmp_path / "p", backend="VivadoAccelerator",
                    fifo_depths="cosim")  # fmt: skip
    from hls4ml.model.flow import get_available_flows

    assert "vivadoaccelerator:fifo_depth_optimization" in get_available_flows()


# -- checkpoints and the board package ----------------------------------------------------------
def test_checkpoint_restores_the_quantized_model_exactly():
    model = _quantized(bits=4)
    state = enet.to_checkpoint(model)
    assert state["weight_codes"].dtype == torch.int8  # 4-bit codes
    restored = enet.from_checkpoint(state)
    images = torch.rand(2, 3, *SMALL_HW)
    assert torch.equal(training.predict_logits(model, images, dtype=torch.float64),
                       training.predict_logits(restored, images, dtype=torch.float64))  # fmt: skip
    again = enet.to_checkpoint(restored)
    assert torch.equal(again["weight_codes"], state["weight_codes"])
    assert torch.equal(again["bias_codes"], state["bias_codes"])
    with pytest.raises(ValueError, match="architecture"):
        enet.from_checkpoint(dict(state, weight_codes=state["weight_codes"][:-1]))
    with pytest.raises(ValueError, match="checkpoint"):
        enet.from_checkpoint({"format": 0})
    with pytest.raises(ValueError, match="quantized"):
        enet.to_checkpoint(enet.CompressedENet(4))


def test_package_goes_from_checkpoint_to_a_board_tarball(tmp_path, capsys):
    # One command's path: checkpoint -> hls4ml project -> bit-exact C simulation -> tarball.
    # The unpacked tarball's own run_on_board.py then runs in a fresh Python with a stand-in
    # pynq whose DMA answers with the C simulation's logits, at batch 1 and 10.
    pytest.importorskip("hls4ml")
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed for hls4ml's C simulation")
    import subprocess
    import tarfile

    from reprobook.fpga import deploy

    meta = {"height": SMALL_HW[0], "width": SMALL_HW[1], "data": "procedural", "data_seed": 3,
            "n_test": 12, "csim_images": 10, "reuse_factor": 4, "clock_period_ns": 10.0,
            "hls_types": "narrow", "fifo_depths": "analytic", "chosen_model": "f4-q4"}  # fmt: skip
    checkpoint = tmp_path / "checkpoints.pt"
    checkpoint.write_bytes(deploy.checkpoint_bytes({"f4-q4": _quantized(bits=4)}, meta))
    with pytest.raises(ValueError, match="no model"):
        deploy.package(checkpoint, "f8-q8", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown settings"):
        deploy.package(checkpoint, "f4-q4", tmp_path / "out", reuse=3)
    # the command a reader types; --model defaults to the run's chosen model
    assert deploy.main(["package", "--checkpoint", str(checkpoint), "--out",
                        str(tmp_path / "out")]) == 0  # fmt: skip
    made = json.loads(capsys.readouterr().out)
    assert made["model"] == "f4-q4" and made["images"] == 10
    assert made["csim_argmax_agreement"] == 1.0 and made["csim_max_abs_error"] == 0.0
    assert made["settings"]["fifo_depths"] == "analytic"
    with tarfile.open(made["tarball"]) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "board", filter="data")
    root = tmp_path / "board" / "enet_zcu102_f4-q4"
    inside = {n.split("/", 1)[1] for n in names if "/" in n}
    assert {"axi_stream_driver.py", "images.npy", "csim_logits.npy", "package.json",
            "run_on_board.py", "README.txt", "reprobook/fpga/board.py",
            "reprobook/fpga/driver.py"} <= inside  # fmt: skip
    assert "No bitfile" in (root / "README.txt").read_text()
    with pytest.raises(FileNotFoundError, match="enet_zcu102.bit"):  # none was built
        deploy.package_project(tmp_path / "out" / "f4-q4", tmp_path / "x.tar.gz", overlay=True)
    (root / f"{board.OVERLAY_STEM}.bit").write_bytes(b"bits")  # as Vivado would add them
    (root / f"{board.OVERLAY_STEM}.hwh").write_text("<hwh/>")
    runner = (
        "import sys, runpy, numpy as np\n"
        f"sys.path[:0] = [{str(root)!r}, {str(Path(__file__).parent)!r}]\n"
        "from fake_pynq import make_fake_pynq\n"
        "import reprobook.fpga.board as b\n"
        f"assert b.__file__.startswith({str(root)!r}), b.__file__\n"
        f"images = np.load({str(root / 'images.npy')!r})\n"
        f"csim = np.load({str(root / 'csim_logits.npy')!r})\n"
        "words = images.transpose(0, 2, 3, 1).reshape(len(images), -1)\n"
        "outs = csim.transpose(0, 2, 3, 1).reshape(len(csim), -1)\n"
        "def device(sent):\n"
        "    return np.stack([outs[np.flatnonzero((words == w).all(1))[0]] for w in sent])\n"
        "sys.modules['pynq'] = make_fake_pynq(device)\n"
        f"runpy.run_path({str(root / 'run_on_board.py')!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "batch 1:" in done.stdout and "batch 10:" in done.stdout
    assert "agreement with the C simulation 1.0000" in done.stdout
    assert (root / "board_results.json").is_file()
