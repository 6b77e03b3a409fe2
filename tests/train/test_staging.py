"""Staging: on the CPU the tensors stay where they are; a gather is plain indexing."""

from __future__ import annotations

import torch

from semilabel.train.staging import fits_on_device, gather, stage


def test_cpu_tensors_stay_and_a_gather_is_indexing():
    x = torch.arange(24, dtype=torch.uint8).view(6, 2, 2)
    staged, missing = stage(torch.device("cpu"), x, None)
    assert staged is x and missing is None
    index = torch.tensor([4, 0, 4])
    assert torch.equal(gather(x, index, torch.device("cpu")), x[index])


def test_a_data_set_is_staged_only_within_its_share_of_free_memory():
    assert fits_on_device(25, 100) and not fits_on_device(26, 100)
