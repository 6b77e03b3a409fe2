"""The process group, read from torchrun's environment and returned as a value."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_from_env() -> DistInfo:
    """Rank, world size and local rank as torchrun sets them (one process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def process_group_backend(device_kind: str) -> str:
    """gloo on CPU; on GPU, NCCL for CUDA tensors and gloo for the CPU ones (run-folder
    agreement, stop flags, gathered predictions), so every collective has a backend."""
    return "cpu:gloo,cuda:nccl" if device_kind == "cuda" else "gloo"


def init_distributed(device: torch.device | str = "cpu") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); on a GPU,
    first make `device` (cuda:LOCAL_RANK) this process's current CUDA device, so NCCL
    and object collectives use the process's own GPU. A plain `python -m semilabel`
    run is one process, rank 0."""
    info = dist_from_env()
    if not info.enabled:
        return info
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(process_group_backend(device.type))
    return info


def finish_distributed(info: DistInfo) -> None:
    """Leave the process group (no-op for one process)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (identity for one process)."""
    if info.enabled:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def from_main(value: float, info: DistInfo) -> float:
    """Rank 0's `value` on every rank (identity for one process).

    Decisions taken from a clock (has a phase's time budget run out?) are made once,
    by rank 0, so every rank takes the same branch and the collectives stay matched.
    """
    if not info.enabled:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def gather_ints(value: int, info: DistInfo) -> list[int]:
    """Every rank's `value`, in rank order ([value] for one process)."""
    if not info.enabled:
        return [int(value)]
    out = [torch.zeros(1, dtype=torch.int64) for _ in range(info.world_size)]
    dist.all_gather(out, torch.tensor([int(value)], dtype=torch.int64))
    return [int(t.item()) for t in out]
