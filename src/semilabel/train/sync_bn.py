"""Batch-norm statistics over the global batch in multi-process training.

With 2 processes each seeing half a batch, plain BatchNorm normalises each half by
its own statistics, so the run differs from one process with the whole batch.
`torch.nn.SyncBatchNorm` fixes that on GPUs only (it refuses CPU tensors), so on CPU
(gloo) `CpuSyncBatchNorm` all-reduces the sums itself, through autograd-aware
collectives so gradients flow across ranks exactly as in one big batch.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn as nn

# The autograd-aware collectives warn that they are deprecated; they still
# differentiate through all_reduce, which is what this layer needs.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated",
                        category=FutureWarning)


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every rank (two-pass mean/variance)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = (1, c, *([1] * (x.dim() - 2)))
        count = x.new_full((1,), x.numel() / max(c, 1))
        first = dist_fn.all_reduce(torch.cat([x.sum(dims), count]))
        n = first[c]
        mean = first[:c] / n
        centred = x - mean.view(shape)
        var = dist_fn.all_reduce((centred * centred).sum(dims)) / n  # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp(min=1))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Swap every BatchNorm2d for a synchronised one (same parameters and buffers)."""
    if device_type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = CpuSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child, device_type)
    return module
