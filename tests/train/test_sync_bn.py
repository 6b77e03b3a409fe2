"""Synchronised BatchNorm over two processes (gloo, on the CPU), each holding half a
batch, is BatchNorm over the whole batch: the same outputs, input gradients, summed
weight gradients and running statistics. (In one process it is plain BatchNorm:
tests/train/test_precision.py.)"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from semilabel.models.backbones import CompactNet
from semilabel.train.sync_bn import convert_sync_batchnorm


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """8 images and a weight per output, so that the loss reaches every row differently."""
    gen = torch.Generator().manual_seed(1)
    return torch.rand(8, 1, 56, 56, generator=gen), torch.randn(8, 32, generator=gen)


def _run(model: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Two forward and backward passes in training mode (the second after the running stats moved)."""
    model.train()
    for _ in range(2):
        model.zero_grad()
        x = x.detach().requires_grad_(True)
        out = model(x)
        (out * w).sum().backward()
    return {"out": out.detach(), "x_grad": x.grad, **{f"grad.{k}": p.grad for k, p in model.named_parameters()},
            **{f"state.{k}": v for k, v in model.state_dict().items()}}


def _rank(rank: int, store: str, out: str, plain: torch.nn.Module) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        x, w = _batch()
        synced = convert_sync_batchnorm(copy.deepcopy(plain), "cpu")
        torch.save(_run(synced, x[rank::2], w[rank::2]), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_sync_batchnorm_over_two_processes_is_batchnorm_over_the_whole_batch(tmp_path):
    torch.manual_seed(0)
    plain = CompactNet(8, pooling="avg")
    mp.start_processes(_rank, args=(str(tmp_path / "store"), str(tmp_path / "rank"), plain), nprocs=2,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank.{r}", weights_only=True) for r in range(2)]
    whole = _run(copy.deepcopy(plain), *_batch())
    for k, expected in whole.items():
        # float rounding: sums over other orders; gradients are sums over 8 x 56 x 56 pixels
        rtol, atol = 1e-3, 1e-4
        if k in ("out", "x_grad"):  # rows rank, rank + 2, ...
            got = torch.stack([ranks[0][k], ranks[1][k]], 1).flatten(0, 1)
        elif k.startswith("grad."):  # each rank's share of the gradient of the whole batch's loss
            got = ranks[0][k] + ranks[1][k]
        else:  # running statistics, the same on both ranks: close enough to see the unbiased n / (n - 1)
            assert torch.equal(ranks[0][k], ranks[1][k]), k
            got, rtol, atol = ranks[0][k], 2e-6, 1e-7
        assert torch.allclose(got.double(), expected.double(), rtol=rtol, atol=atol), k
