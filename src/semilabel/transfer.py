"""Host-to-device copies that never make the host wait for the GPU.

A blocking copy to a CUDA device waits for every kernel already queued; a
`non_blocking` one from pageable memory may too (the driver may synchronise with the
stream to stage it). From page-locked (pinned) memory the copy is queued and the host
goes on at once; PyTorch's caching host allocator keeps the pinned block until the
copy has run. On any other device the copy is an ordinary one (a no-op on the CPU).
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (and in `dtype` if given), copied without a host sync."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    if dtype is None:
        return tensor.to(device, non_blocking=True)
    return tensor.to(device, dtype, non_blocking=True)
