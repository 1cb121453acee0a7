"""Unit tests of ``reprobook.runtime``: seeding, threads and devices."""

import random

import numpy as np
import pytest
import torch

from reprobook import runtime


def test_seed_everything_makes_every_rng_reproducible():
    gen = runtime.seed_everything(3)
    first = (torch.rand(4), np.random.rand(4), random.random(), torch.rand(3, generator=gen))  # noqa: NPY002
    gen = runtime.seed_everything(3)
    second = (torch.rand(4), np.random.rand(4), random.random(), torch.rand(3, generator=gen))  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert torch.equal(first[3], second[3])
    assert isinstance(gen, torch.Generator)
    assert gen.initial_seed() == 3


def test_seed_everything_accepts_seeds_beyond_32_bits():
    runtime.seed_everything(2**40)


@pytest.mark.parametrize("seed", [-1, True, 1.0, "3", None])
def test_seed_everything_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        runtime.seed_everything(seed)


def test_configure_threads():
    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_configure_threads_from_environment(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("REPROBOOK_THREADS", "1")
    try:
        assert runtime.configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_configure_threads_refuses_zero():
    with pytest.raises(ValueError, match=">= 1"):
        runtime.configure_threads(0)


def test_pick_and_describe_device():
    assert runtime.pick_device(prefer_gpu=False) == torch.device("cpu")
    assert runtime.describe_device("cpu").startswith("cpu:")


def _seeded_draw(seed: int, n: int) -> list[float]:
    torch.manual_seed(seed)
    return [torch.get_num_threads(), *torch.rand(n).tolist()]


def test_map_processes_keeps_order_and_matches_the_inline_run():
    jobs = [(0, 3), (1, 2), (2, 4)]
    inline = runtime.map_processes(_seeded_draw, jobs, workers=1)
    pooled = runtime.map_processes(_seeded_draw, jobs, workers=2, progress="draws")
    assert [r[1:] for r in pooled] == [r[1:] for r in inline]
    assert [len(r) for r in pooled] == [4, 3, 5]
    assert all(r[0] == 1 for r in pooled)  # one thread per worker process


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_map_processes_refuses_bad_worker_counts(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        runtime.map_processes(_seeded_draw, [(0, 1)], workers=workers)


def _cpus_of_this_process(_: int) -> list[int]:
    import os
    import time

    time.sleep(0.5)  # long enough that both workers take jobs
    return sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(
    not hasattr(__import__("os"), "sched_getaffinity")
    or len(__import__("os").sched_getaffinity(0)) < 2,
    reason="needs two CPUs",
)
def test_map_processes_pins_each_worker_to_its_own_cpu():
    cpus = runtime.map_processes(_cpus_of_this_process, [(i,) for i in range(6)], workers=2)
    assert all(len(c) == 1 for c in cpus)  # each worker alone on one CPU
    assert len({c[0] for c in cpus}) == 2  # the two workers on different CPUs
