"""Staging: on the CPU the tensors stay where they are and a gather is plain indexing;
on a GPU the data set moves there only within a share of the free memory, leaving the
rest to training."""

from __future__ import annotations

import pytest
import torch

from semilabel.train.staging import fits_on_device, gather, stage

REFERENCE_SET = 30_000 * 56 * 56  # bytes: the Combo training images, uint8 (94 MB)


def test_cpu_tensors_stay_and_a_gather_is_indexing():
    x = torch.arange(24, dtype=torch.uint8).view(6, 2, 2)
    staged, missing = stage(torch.device("cpu"), x, None)
    assert staged is x and missing is None
    index = torch.tensor([4, 0, 4])
    assert torch.equal(gather(x, index, torch.device("cpu")), x[index])


def test_staging_takes_the_reference_set_and_leaves_most_free_memory_to_training():
    assert fits_on_device(REFERENCE_SET, 2 * 2**30)  # any GPU with 2 GiB free holds it
    for free in (2**30, 16 * 2**30, 80 * 2**30):
        assert not fits_on_device(free // 2 + 1, free)  # never more than half of what is free
        largest = max(n for n in (free // 64, free // 16, free // 8, free // 4) if fits_on_device(n, free))
        assert all(fits_on_device(n, free) for n in (0, 1, largest // 2, largest))  # less always fits
        assert fits_on_device(largest, 2 * free)  # so does the same set with more free


def test_a_set_too_large_for_its_share_of_free_gpu_memory_stays_on_the_host(monkeypatch):
    """The decision reads the free memory the GPU reports; a set that does not fit is
    returned as it is (were it moved, this machine without a GPU would fail the copy)."""
    x, y = torch.zeros(1000, 8, dtype=torch.uint8), torch.zeros(1000, 2, dtype=torch.int64)
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: asked.append(device) or (24_000, 2**34))
    staged = stage(torch.device("cuda", 0), x, y, None)  # 24 kB to place in 24 kB free
    assert staged[0] is x and staged[1] is y and staged[2] is None
    assert asked == [torch.device("cuda", 0)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_set_that_fits_moves_to_the_gpu():
    x = torch.arange(24, dtype=torch.uint8).view(6, 2, 2)
    (staged,) = stage(torch.device("cuda", 0), x)
    assert staged.is_cuda and torch.equal(staged.cpu(), x)
    assert torch.equal(gather(staged, torch.tensor([4, 0]), torch.device("cuda", 0)).cpu(), x[[4, 0]])
