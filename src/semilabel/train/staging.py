"""Where the training tensors live, and copies to the device that never wait.

On a CUDA device the data set is copied to it once (30,000 uint8 images of 56 px are
94 MB), so a step gathers its batch on the GPU; a set too large for a quarter of the
free GPU memory stays in host memory. Index tensors drawn on the host reach the
device through `transfer.to_device` (pinned memory, `non_blocking`), which does not
wait for the work already queued, so a gather makes no host sync.
"""

from __future__ import annotations

import torch

from semilabel.transfer import to_device


GPU_SHARE = 0.25  # at most this share of the free GPU memory holds the data set


def fits_on_device(nbytes: int, free_bytes: int) -> bool:
    return nbytes <= GPU_SHARE * free_bytes


def stage(device: torch.device, *tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """`tensors` moved to a CUDA `device` when they fit there; unchanged otherwise."""
    if device.type != "cuda":
        return tensors
    nbytes = sum(t.numel() * t.element_size() for t in tensors if t is not None)
    free, _ = torch.cuda.mem_get_info(device)
    if not fits_on_device(nbytes, free):
        return tensors
    return tuple(None if t is None else t.to(device) for t in tensors)


def gather(source: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`source[index]` on `device`; the copies do not wait for queued GPU work."""
    return to_device(source[to_device(index, source.device)], device)
