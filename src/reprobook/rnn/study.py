"""The chapter's four experiments as functions of a config, returning JSON-ready metrics.

1. ``equivalence_study``: the three modes of each min-cell give the same states (float64 and
   float32), with and without an initial state.
2. ``speed_study``: time and activation memory of one training step against sequence length.
3. ``selective_copy_study``: accuracy of 1-, 2-, 3-layer min-RNNs on selective copying.
4. ``char_lm_study``: test loss of minGRU, minLSTM, GRU and a Transformer of equal size.

The reading of the metrics (claims, findings, notes, the numbers the prose discusses) lives in
``reprobook.rnn.report``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from reprobook import runtime
from reprobook.profiles import Config, resolve_profile
from reprobook.rnn import bench, cells, models, tasks, training

MIN_CELLS = ("mingru", "minlstm")
LM_MODELS = ("mingru", "minlstm", "gru", "transformer")
SPEED_VARIANTS = (
    "mingru/parallel", "mingru/chunked", "mingru/sequential",
    "minlstm/parallel", "minlstm/chunked", "minlstm/sequential",
    "gru/step", "lstm/step", "gru/torch", "lstm/torch",
)  # fmt: skip
COPY_VOCAB = 16  # the paper's vocabulary, special tokens included
PROFILES = {
    "smoke": dict(  # CI: every experiment, small
        equivalence_lengths=[64, 256], speed_lengths=[64, 128, 256, 512], speed_batch=64,
        speed_hidden=128, speed_repeats=3, community_lengths=[64, 256],
        community_batches=[1, 64], copy_cells=["mingru"], copy_depths=[1, 3],
        copy_length=64, copy_tokens=4, copy_steps=300, copy_seeds=1, copy_d_model=64,
        copy_batch=64, copy_wide=True, workers=2,
        copy_expansion=2.0, lm_models=["mingru", "transformer"], lm_params=60_000,
        lm_layers=2, lm_context=64, lm_steps=60, lm_seeds=1, lm_max_chars=100_000,
        lr=3e-3, train_mode="chunked",
    ),
    "full": dict(  # the chapter's experiment: T up to 4096, both cells, 3 seeds
        equivalence_lengths=[64, 256, 1024, 4096],
        speed_lengths=[64, 128, 256, 512, 1024, 2048, 4096], speed_batch=64, speed_hidden=128,
        speed_repeats=2, community_lengths=[64, 256, 512, 1024, 4096],
        community_batches=[1, 64], copy_cells=["mingru", "minlstm"],
        copy_depths=[1, 3], copy_length=64, copy_tokens=16, copy_steps=900, copy_seeds=3,
        copy_d_model=64, copy_batch=64, copy_wide=True, workers=2, copy_expansion=2.0,
        lm_models=list(LM_MODELS), lm_params=200_000,
        lm_layers=3, lm_context=128, lm_steps=500, lm_seeds=3, lm_max_chars=0,
        lr=3e-3, train_mode="chunked",
    ),
}  # fmt: skip
_positive = (lambda n: isinstance(n, int) and n >= 1, "a positive integer")
_lengths = (lambda ls: len(ls) > 0 and all(isinstance(t, int) and t >= 2 for t in ls),
            "a non-empty list of integers >= 2")  # fmt: skip
CONFIG_CHECKS = {
    "equivalence_lengths": (  # the float32 claims compare the shortest and the longest
        lambda ls: len(set(ls)) >= 2 and all(isinstance(t, int) and t >= 2 for t in ls),
        "a list of at least two different integers >= 2",
    ),
    "speed_lengths": _lengths,
    "speed_batch": _positive,
    "speed_hidden": _positive,
    "speed_repeats": _positive,
    "community_lengths": _lengths,
    "community_batches": (
        lambda bs: len(bs) > 0 and all(isinstance(b, int) and b >= 1 for b in bs),
        "a non-empty list of positive integers",
    ),
    "copy_cells": (
        lambda cs: len(cs) > 0 and set(cs) <= set(MIN_CELLS),
        f"a subset of {MIN_CELLS}",
    ),
    "copy_depths": (
        lambda ds: len(ds) > 1 and all(d >= 1 for d in ds),
        "a list of at least two depths >= 1",
    ),  # fmt: skip
    "copy_length": _positive,
    "copy_tokens": _positive,
    "copy_steps": _positive,
    "copy_seeds": _positive,
    "copy_batch": _positive,
    "copy_wide": (lambda w: isinstance(w, bool), "True or False"),
    "workers": (
        lambda w: isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 64,
        "an integer in [1, 64] (processes, one thread each)",
    ),
    "lm_models": (lambda ms: len(ms) > 0 and set(ms) <= set(LM_MODELS), f"a subset of {LM_MODELS}"),
    "lm_params": (lambda n: n >= 10_000, "at least 10,000"),
    "lm_steps": _positive,
    "lm_seeds": _positive,
    "lm_context": (lambda n: n >= 8, "at least 8"),
    "lm_max_chars": (lambda n: n == 0 or n >= 1000, "0 (the whole corpus) or at least 1000"),
    "train_mode": (lambda m: m in cells.MODES, f"one of {cells.MODES}"),
}


def resolve_config(profile: str, **overrides) -> Config:
    """A row of ``PROFILES`` with the reader's overrides (``None`` = keep), checked."""
    config = resolve_profile(PROFILES, profile, overrides, CONFIG_CHECKS)
    if config.copy_tokens > config.copy_length:
        raise ValueError(
            f"copy_tokens ({config.copy_tokens}) must not exceed copy_length ({config.copy_length})"
        )
    return config


# --- 1. equivalence ----------------------------------------------------------------------------


def equivalence_study(lengths: Sequence[int], seed: int, batch: int = 4, hidden: int = 16) -> dict:
    """Max |mode - sequential| for the parallel, chunked and stable modes per cell, h0, dtype."""
    out: dict = {}
    generator = torch.Generator().manual_seed(seed)
    for cell_name in MIN_CELLS:
        for dtype in (torch.float64, torch.float32):
            for with_h0 in (False, True):
                worst = {"parallel": 0.0, "chunked": 0.0, "stable": 0.0}
                for length in lengths:
                    torch.manual_seed(seed)
                    cell = _min_cell(cell_name, hidden, hidden).to(dtype)
                    x = torch.randn(batch, length, hidden, generator=generator).to(dtype)
                    h0 = None
                    if with_h0:  # a state the cell itself produced: positive, as in use
                        h0 = cell(torch.randn(batch, 5, hidden, generator=generator).to(dtype))
                        h0 = h0[:, -1]
                    with torch.no_grad():
                        ref = cell(x, h0=h0, mode="sequential")
                        for mode in worst:
                            err = (cell(x, h0=h0, mode=mode) - ref).abs().max().item()
                            worst[mode] = max(worst[mode], err)
                key = (
                    f"{cell_name}/{str(dtype).removeprefix('torch.')}/{'h0' if with_h0 else 'zero'}"
                )
                out[key] = worst
    return out


FLOAT32_MODES = ("parallel", "stable", "chunked")


def float32_error_by_length(
    lengths: Sequence[int], seed: int, batch: int = 4, hidden: int = 16
) -> dict[str, dict[str, float]]:
    """Largest relative error of each scan in float32 against the float64 step loop, per T.

    One minGRU with the same weights in both precisions and the same inputs; the step loop in
    float64 is the reference. Shows how the plain log-space scan's error grows with T (its
    cumulative decay a* grows like T and is cancelled against a number of the same size; about
    linearly in our measurements)."""
    torch.manual_seed(seed)
    cell64 = _min_cell("mingru", hidden, hidden).double()
    cell32 = _min_cell("mingru", hidden, hidden).float()
    cell32.load_state_dict({k: v.float() for k, v in cell64.state_dict().items()})
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {mode: {} for mode in FLOAT32_MODES}
    for length in lengths:
        x = torch.randn(batch, length, hidden, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            reference = cell64(x, mode="sequential")
            for mode in FLOAT32_MODES:
                error = (cell32(x.float(), mode=mode).double() - reference).abs() / reference
                out[mode][str(length)] = float(error.max())
    return out


def _min_cell(name: str, d_in: int, d_hidden: int, mode: str = "parallel") -> nn.Module:
    return (cells.MinGRU if name == "mingru" else cells.MinLSTM)(d_in, d_hidden, mode=mode)


# --- 2. speed and memory -----------------------------------------------------------------------


def build_speed_variant(variant: str, d_in: int, d_hidden: int) -> nn.Module:
    """One layer of the speed study, by name (see ``SPEED_VARIANTS``)."""
    if variant not in SPEED_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(SPEED_VARIANTS)}")
    kind, how = variant.split("/")
    if kind in MIN_CELLS:
        return _min_cell(kind, d_in, d_hidden, mode=how)
    if how == "step":
        return (cells.StepGRU if kind == "gru" else cells.StepLSTM)(d_in, d_hidden)
    return cells.TorchRNN(kind, d_in, d_hidden)


def speed_study(
    lengths: Sequence[int],
    batch: int,
    hidden: int,
    repeats: int,
    seed: int,
    device: torch.device | str = "cpu",
    variants: Sequence[str] = SPEED_VARIANTS,
) -> dict:
    """Seconds and activation bytes of one training step per variant and length."""
    device = torch.device(device)
    timings: dict = {v: {} for v in variants}
    jobs = [(length, v) for length in lengths for v in variants]
    for length, variant in tqdm(jobs, desc="speed", mininterval=10):
        torch.manual_seed(seed)
        layer = build_speed_variant(variant, hidden, hidden).to(device)
        x = torch.randn(batch, length, hidden, device=device)
        timings[variant][str(length)] = bench.time_training_step(layer, x, repeats=repeats)
        del layer, x
        bench.release_memory()
    return {"batch": batch, "hidden": hidden, "device": str(device), "timings": timings}


def speedup(speed: dict, slow: str, fast: str) -> dict[str, float]:
    """t(slow) / t(fast) per length: how many times faster ``fast`` trains than ``slow``."""
    timings = speed["timings"]
    return {t: timings[slow][t]["seconds"] / timings[fast][t]["seconds"] for t in timings[fast]}


def speedup_table(speed: dict) -> dict[str, dict[str, float]]:
    """The speedups the chapter discusses, keyed ``"<fast> vs <slow>"``."""
    pairs = [(f"{cell}/{mode}", slow) for cell, base in (("mingru", "gru"), ("minlstm", "lstm"))
             for mode in ("parallel", "chunked")
             for slow in (f"{cell}/sequential", f"{base}/step", f"{base}/torch")]  # fmt: skip
    timings = speed["timings"]
    return {
        f"{fast} vs {slow}": speedup(speed, slow, fast)
        for fast, slow in pairs
        if fast in timings and slow in timings
    }


def speed_ratios_at(speed: dict, length: int) -> dict[str, float]:
    """The speedups of ``speedup_table`` at one length (``nan`` where it was not timed)."""
    return {
        name: curve.get(str(length), float("nan")) for name, curve in speedup_table(speed).items()
    }


# --- 2b. against the community package ---------------------------------------------------------

COMMUNITY_PACKAGE = "minGRU-pytorch"  # lucidrains' minGRU, the most used community one (PyPI)
OUR_MODES = ("chunked", "parallel", "sequential")
COMMUNITY_MODES = ("parallel", "sequential")
PHASES = ("training", "inference")


def community_mingru(hidden: int) -> nn.Module:
    """The community package's minGRU of width ``hidden`` (expansion 1: one bias-free Linear to
    the hidden state and gate, no output projection), the same function as ours."""
    try:
        from minGRU_pytorch.minGRU import minGRU
    except ImportError as error:  # a benchmark-only dependency, pinned in requirements.txt
        raise ImportError(
            f"the speed comparison needs the community package {COMMUNITY_PACKAGE} "
            "(pip install minGRU-pytorch==0.2.1, as pinned in requirements.txt)"
        ) from error
    return minGRU(hidden)


def _community_step_loop(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The package's sequential (RNN) mode: one token per call, carrying the hidden state."""
    hidden, outputs = None, []
    for t in range(x.shape[1]):
        out, hidden = layer(x[:, t : t + 1], prev_hidden=hidden, return_next_prev_hidden=True)
        outputs.append(out)
    return torch.cat(outputs, 1)


def community_variant(variant: str, hidden: int) -> tuple[nn.Module, Callable]:
    """A layer and its forward for ``ours/<mode>`` or ``community/<mode>``."""
    side, _, mode = variant.partition("/")
    if side == "ours" and mode in OUR_MODES:
        return cells.MinGRU(hidden, hidden, mode=mode), lambda layer, x: layer(x)
    if side == "community" and mode in COMMUNITY_MODES:
        forward = _community_step_loop if mode == "sequential" else (lambda layer, x: layer(x))
        return community_mingru(hidden), forward
    valid = [f"ours/{m}" for m in OUR_MODES] + [f"community/{m}" for m in COMMUNITY_MODES]
    raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(valid)}")


def community_study(
    lengths: Sequence[int],
    batches: Sequence[int],
    hidden: int,
    repeats: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> dict:
    """Seconds per training step (forward + backward) and per inference pass (forward under
    ``torch.inference_mode``) of our minGRU in each mode and the community package's in each of
    its modes, at every batch and length, timed one after the other in this one run."""
    from importlib.metadata import version

    device = torch.device(device)
    variants = [f"ours/{m}" for m in OUR_MODES] + [f"community/{m}" for m in COMMUNITY_MODES]
    timings: dict = {p: {str(b): {v: {} for v in variants} for b in batches} for p in PHASES}
    jobs = [(b, t, v) for b in batches for t in lengths for v in variants]
    for batch, length, variant in tqdm(jobs, desc="community", mininterval=10):
        torch.manual_seed(seed)
        layer, forward = community_variant(variant, hidden)
        layer = layer.to(device)
        x = torch.randn(batch, length, hidden, device=device)
        train = bench.time_training_step(layer, x, repeats, forward=forward, memory=False)
        infer = bench.time_inference(layer, x, repeats, forward=forward)
        timings["training"][str(batch)][variant][str(length)] = train["seconds"]
        timings["inference"][str(batch)][variant][str(length)] = infer["seconds"]
        del layer, x
        bench.release_memory()
    return {"package": f"{COMMUNITY_PACKAGE} {version(COMMUNITY_PACKAGE)}", "hidden": hidden,
            "device": str(device), "timings": timings}  # fmt: skip


def community_ratios(community: dict) -> dict:
    """Per phase, batch and length: the community package's best time over ours (> 1: ours is
    faster) and which mode was best on each side."""
    out: dict = {}
    for phase, per_batch in community["timings"].items():
        for batch, per_variant in per_batch.items():
            # the lengths every variant was timed at
            lengths = sorted(set.intersection(*(set(c) for c in per_variant.values())), key=int)
            rows = {}
            for length in lengths:
                best = {}
                for side in ("ours", "community"):
                    side_times = {v.split("/")[1]: c[length] for v, c in per_variant.items()
                                  if v.startswith(side + "/")}  # fmt: skip
                    best[side] = min(side_times.items(), key=lambda item: item[1])
                rows[length] = {
                    "ratio": best["community"][1] / best["ours"][1],
                    "ours_best": best["ours"][0],
                    "community_best": best["community"][0],
                }
            out[f"{phase}/{batch}"] = rows
    return out


# --- 3. selective copying ----------------------------------------------------------------------


def copy_model(cell: str, depth: int, config: Config, d_model: int | None = None) -> nn.Module:
    """The selective-copy model: no conv and no MLP, as in the official configuration."""
    return models.RecurrentLM(
        COPY_VOCAB, cell, d_model or config.copy_d_model, depth, expansion=config.copy_expansion,
        conv_kernel=0, mlp=False, mode=config.train_mode,
    )  # fmt: skip


def copy_wide_width(cell: str, config: Config) -> int:
    """The width of a one-layer copy model with the parameter count of the deepest one."""
    target = models.count_parameters(copy_model(cell, max(config.copy_depths), config))
    return width_for_budget(lambda d: copy_model(cell, 1, config, d), target, step=2)


def train_selective_copy(
    cell: str, depth: int, seed: int, config: Config, d_model: int | None = None
) -> dict:
    """Train one copy model; per-token accuracy and exact match on 2,000 fresh test sequences."""
    torch.manual_seed(seed)
    model = copy_model(cell, depth, config, d_model)
    data = torch.Generator().manual_seed(seed)
    length, k = config.copy_length, config.copy_tokens

    def loss_on_batch(module: nn.Module, step: int) -> torch.Tensor:
        inputs, targets = tasks.selective_copy_batch(config.copy_batch, length, k, COPY_VOCAB, data)
        logits = module(inputs)[:, -k:]
        return F.cross_entropy(logits.reshape(-1, COPY_VOCAB), targets.reshape(-1))

    start = time.perf_counter()
    training.train(model, loss_on_batch, config.copy_steps, config.lr,
                   desc=f"copy {cell} x{depth} seed {seed}")  # fmt: skip
    seconds = time.perf_counter() - start
    test = torch.Generator().manual_seed(10_000 + seed)
    inputs, targets = tasks.selective_copy_batch(2000, length, k, COPY_VOCAB, test)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(part)[:, -k:] for part in inputs.split(250)])
        accuracy, exact = tasks.copy_accuracy(logits, targets)
    return {"accuracy": accuracy, "exact_match": exact, "seconds": seconds,
            "params": models.count_parameters(model)}  # fmt: skip


def _copy_job(cell: str, depth: int, seed: int, config: Config, d_model: int | None) -> dict:
    return train_selective_copy(cell, depth, seed, config, d_model)


def _pooled(runs: list[dict]) -> dict:
    return {
        "accuracy": [r["accuracy"] for r in runs],
        "exact_match": [r["exact_match"] for r in runs],
        "params": runs[0]["params"],
        "seconds": sum(r["seconds"] for r in runs),
    }


def selective_copy_study(config: Config, seeds: Sequence[int]) -> dict:
    """``{"depths": {cell: {depth: runs}}, "wide": {cell: runs}}``, where runs holds accuracy
    and exact match per seed, the parameter count and the training seconds; "wide" is one layer
    as wide as makes it the deepest model's size (when ``config.copy_wide``). The runs go to
    ``config.workers`` single-threaded processes (each seeds itself: same results)."""
    jobs = [
        (cell, depth, s, config, None)
        for cell in config.copy_cells
        for depth in config.copy_depths
        for s in seeds
    ]
    widths = {c: copy_wide_width(c, config) for c in config.copy_cells} if config.copy_wide else {}
    if config.copy_wide:
        jobs += [(cell, 1, s, config, widths[cell]) for cell in config.copy_cells for s in seeds]
    done = iter(runtime.map_processes(_copy_job, jobs, config.workers))
    out: dict = {"depths": {}, "wide": {}}
    for cell in config.copy_cells:
        out["depths"][cell] = {str(d): _pooled([next(done) for _ in seeds])
                               for d in config.copy_depths}  # fmt: skip
    if config.copy_wide:
        for cell in config.copy_cells:
            out["wide"][cell] = dict(_pooled([next(done) for _ in seeds]), d_model=widths[cell])
    return out


# --- 4. character language model ---------------------------------------------------------------


def build_lm(kind: str, vocab: int, d_model: int, config: Config) -> nn.Module:
    """A character LM of width ``d_model``: recurrent blocks (conv 4 + MLP) or a Transformer."""
    if kind == "transformer":
        return models.CausalTransformer(vocab, d_model, config.lm_layers, 4, config.lm_context)
    return models.RecurrentLM(vocab, kind, d_model, config.lm_layers, conv_kernel=4, mlp=True,
                              mode=config.train_mode)  # fmt: skip


def width_for_budget(build: Callable[[int], nn.Module], target: int, step: int = 4) -> int:
    """The width (a multiple of ``step``) whose model's parameter count is closest to ``target``."""
    low, high = 1, 1024 // step  # parameter counts grow with width: bisect, then pick the nearer
    while low < high:
        mid = (low + high) // 2
        if models.count_parameters(build(mid * step)) < target:
            low = mid + 1
        else:
            high = mid
    candidates = {max(1, low - 1) * step, low * step}
    return min(sorted(candidates), key=lambda d: abs(models.count_parameters(build(d)) - target))


def train_char_lm(kind: str, seed: int, corpus: tasks.CharCorpus, config: Config) -> dict:
    """Train one LM; validation loss along the way and test loss (nats per char) at the end."""
    width = width_for_budget(lambda d: build_lm(kind, corpus.vocab, d, config), config.lm_params)
    torch.manual_seed(seed)
    model = build_lm(kind, corpus.vocab, width, config)
    data = torch.Generator().manual_seed(seed)
    context, vocab = config.lm_context, corpus.vocab
    val = tasks.sequential_windows(corpus.val, context)
    test = tasks.sequential_windows(corpus.test, context)

    def loss_on_batch(module: nn.Module, step: int) -> torch.Tensor:
        inputs, targets = tasks.random_windows(corpus.train, 32, context, data)
        return F.cross_entropy(module(inputs).reshape(-1, vocab), targets.reshape(-1))

    def mean_loss(module: nn.Module, windows: tuple[torch.Tensor, torch.Tensor]) -> float:
        inputs, targets = windows
        return F.cross_entropy(module(inputs).reshape(-1, vocab), targets.reshape(-1)).item()

    start = time.perf_counter()
    history = training.train(
        model, loss_on_batch, config.lm_steps, config.lr, evaluate=lambda m: mean_loss(m, val),
        eval_every=max(1, config.lm_steps // 7), desc=f"LM {kind} seed {seed}",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        test_loss = mean_loss(model, test)
    return {
        "test_loss": test_loss, "val_steps": history["eval_step"], "val_loss": history["eval"],
        "params": models.count_parameters(model), "width": width, "seconds": seconds,
    }  # fmt: skip


def _lm_job(kind: str, seed: int, config: Config) -> dict:
    return train_char_lm(kind, seed, tasks.load_char_corpus(config.lm_max_chars), config)


def char_lm_study(config: Config, seeds: Sequence[int]) -> dict:
    """``{corpus: {...}, models: {kind: {test_loss: [per seed], val_loss: [[...]], ...}}}``; the
    runs go to ``config.workers`` single-threaded processes (each seeds itself)."""
    corpus = tasks.load_char_corpus(config.lm_max_chars)
    out: dict = {"corpus": {"source": corpus.source, "sha256": corpus.sha256,
                            "vocab": corpus.vocab, "train_chars": len(corpus.train),
                            "test_chars": len(corpus.test)}, "models": {}}  # fmt: skip
    jobs = [(kind, s, config) for kind in config.lm_models for s in seeds]
    done = iter(runtime.map_processes(_lm_job, jobs, config.workers))
    for kind in config.lm_models:
        runs = [next(done) for _ in seeds]
        out["models"][kind] = {
            "test_loss": [r["test_loss"] for r in runs],
            "val_steps": runs[0]["val_steps"],
            "val_loss": [r["val_loss"] for r in runs],
            "params": runs[0]["params"],
            "width": runs[0]["width"],
            "seconds": sum(r["seconds"] for r in runs),
        }
    return out
