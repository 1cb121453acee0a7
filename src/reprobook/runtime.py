"""Seeds, threads and device: the run-time settings every chapter makes the same way."""

from __future__ import annotations

import multiprocessing
import os
import platform
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch
from tqdm.std import tqdm


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


def _pin_worker(cpus: Any) -> None:
    """Pool initializer: one torch thread, and this worker alone on the next free CPU."""
    torch.set_num_threads(1)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus.get()})


def map_processes(
    fn: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, progress: str | None = None
) -> list[Any]:
    """``[fn(*args) for args in jobs]``, in order, over ``workers`` single-threaded processes.

    For loops bound by Python overhead (small networks, batch 16), one thread per process and one
    process per core beat more threads in one process; each worker is pinned to its own CPU
    when the process may use at least ``workers`` of them. ``workers = 1`` runs in this process,
    with its thread setting unchanged. ``fn`` must be importable (a module-level function); a job
    that seeds its own generators returns the same result in either mode. ``progress`` names a
    progress bar over the jobs (none when None).
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")

    def bar(items: Any) -> Any:
        return tqdm(items, total=len(jobs), desc=progress, disable=progress is None, mininterval=10)

    if workers == 1 or len(jobs) <= 1:
        return [fn(*args) for args in bar(jobs)]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    workers = min(workers, len(jobs))
    # Pin each worker to its own CPU when there are enough: unpinned, two single-threaded
    # workers were measured sharing one of two cores (each at half speed) on a 2-core VM.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    queue = None
    if 1 < workers <= len(cpus):
        queue = spawn.Queue()
        for cpu in cpus[:workers]:
            queue.put(cpu)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=spawn, initializer=_pin_worker, initargs=(queue,)
    ) as pool:
        return list(bar(pool.map(fn, *zip(*jobs, strict=True))))


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
