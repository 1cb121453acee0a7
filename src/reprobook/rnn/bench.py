"""Timing and memory of one training step (forward + backward) of a sequence layer.

Time is the median wall time of ``repeats`` steps after ``warmup`` untimed ones (CUDA is
synchronised). Memory is the activation memory a training step keeps for its backward pass: the
bytes of every distinct tensor autograd saves, counted through ``saved_tensors_hooks``. This is
exact and the same on any device, unlike a process's resident size; on CUDA the peak allocated
memory is recorded as well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory() -> None:
    """Free what a large step left behind: collect garbage and, on glibc, return freed heap pages
    to the system (``malloc_trim``). Without it, a sweep of GB-sized steps of varying shapes
    fragments the heap until the process is killed for memory (seen at T = 4096 on 24 GB)."""
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def saved_activation_bytes(step: Callable[[], Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves while ``step()`` builds its graph."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = step()
    del out
    return sum(seen.values())


def time_training_step(
    layer: nn.Module,
    x: Tensor,
    repeats: int = 3,
    warmup: int = 1,
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
    memory: bool = True,
) -> dict[str, float]:
    """Median seconds of forward + backward of ``layer`` on ``x``, and (``memory``) its
    activation memory."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    forward = forward or (lambda module, inputs: module(inputs))

    def step() -> Tensor:
        return forward(layer, x).float().square().mean()

    times = []
    for i in range(warmup + repeats):
        layer.zero_grad(set_to_none=True)
        _sync(x.device)
        start = time.perf_counter()
        step().backward()
        _sync(x.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    result = {"seconds": statistics.median(times), "seconds_min": min(times)}
    if not memory:
        return result
    result["activation_bytes"] = float(saved_activation_bytes(step))
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        step().backward()
        result["cuda_peak_bytes"] = float(torch.cuda.max_memory_allocated(x.device) - base)
    return result


def time_inference(
    layer: nn.Module,
    x: Tensor,
    repeats: int = 3,
    warmup: int = 1,
    forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """Median seconds of a forward pass of ``layer`` on ``x`` under ``torch.inference_mode``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    forward = forward or (lambda module, inputs: module(inputs))
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            forward(layer, x)
            _sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "seconds_min": min(times)}
