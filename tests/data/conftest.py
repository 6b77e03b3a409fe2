"""Data-layer tests run torch on one thread: the generator's small batches are several
times faster that way on a busy 2-core machine (no thread-pool contention)."""

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
