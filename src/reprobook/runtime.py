"""Seeds, threads and device: the run-time settings every chapter makes the same way."""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch from ``seed``; return a torch generator seeded the same."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds legacy global users too)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure_threads(n_threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``REPROBOOK_THREADS``, else min(2, cores). Returns the count.

    Two cores are what CI and the book's readers are assumed to have; more threads than cores
    only slows small tensor work down.
    """
    if n_threads is None:
        n_threads = int(os.environ.get("REPROBOOK_THREADS", min(2, os.cpu_count() or 1)))
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    torch.set_num_threads(n_threads)
    return n_threads


def pick_device(prefer_gpu: bool = True) -> torch.device:
    """CUDA when present and wanted, else the CPU."""
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def describe_device(device: torch.device | str = "cpu") -> str:
    """A one-line description of where the run happened, for provenance."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    return f"cpu: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
