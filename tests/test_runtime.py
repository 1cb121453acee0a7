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
