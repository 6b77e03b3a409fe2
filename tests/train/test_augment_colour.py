"""Augmentation of colour and non-square images: every op keeps a (B, 3, H, W) batch's shape
and range, turns are turns in pixels, and SESEMI draws only shape-keeping transforms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semilabel.data.augment import SHAPE_KEEPING, apply_pretext, pretext_batch
from semilabel.data.augment_policy import RANDOM_OPS, AugmentPolicy, apply_policy


def _colour_bars(n: int = 16) -> torch.Tensor:
    """(n, 3, 24, 40): a red column, a green row and a blue square over dim noise."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 24, 40, generator=g) * 0.2
    x[:, 0, 4:20, 8:12] = 0.9
    x[:, 1, 10:13, 4:36] = 0.9
    x[:, 2, 6:14, 26:34] = 0.9
    return x


@pytest.mark.parametrize("op", ["geometry", *RANDOM_OPS])
def test_every_op_works_on_three_channels_of_non_square_images(op):
    x = _colour_bars()
    changes = {"rotate_deg": 20.0, "translate": 0.1, "scale_min": 0.8, "scale_max": 1.2, "shear_deg": 10.0}
    if op != "geometry":
        changes = {"rotate_deg": 0.0, "translate": 0.0, f"{op}_p": 1.0}
    policy = dataclasses.replace(AugmentPolicy.none(), **changes)
    y = apply_policy(x, policy, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.allclose(x, y, atol=1e-3), op
    assert torch.equal(y, apply_policy(x, policy, torch.Generator().manual_seed(1)))
    if op == "geometry":  # one map for every channel: the red column's and the blue square's centres move together
        def centre(c):
            w = (y[:, c] > 0.5).float()
            xs = torch.arange(40.0).view(1, 1, -1)
            return (w * xs).sum((1, 2)) / w.sum((1, 2)).clamp(min=1)
        assert ((centre(2) - centre(0)) - 20.0).abs().max() < 8  # 20 px apart before


def test_turns_are_turns_in_pixels_on_non_square_images():
    """A dot 15 px above the centre of a 40 x 64 image stays 15 px from it when turned by 40-60
    degrees (in coordinates normalised per side, as before, it would end 17-20 px away)."""
    x = torch.zeros(64, 1, 40, 64)
    x[:, :, 4:7, 31:34] = 1.0  # centre (5.5, 32.5) px; the image's centre is (20, 32)
    policy = dataclasses.replace(AugmentPolicy.none(), rotate_deg=40.0, far_rotate_p=1.0, far_rotate_deg=60.0)
    y = apply_policy(x, policy, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(40.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    mass = y[:, 0].sum((1, 2))
    cy, cx = (y[:, 0] * ys).sum((1, 2)) / mass, (y[:, 0] * xs).sum((1, 2)) / mass
    radius = ((cy - 20) ** 2 + (cx - 32) ** 2).sqrt()
    turned = torch.rad2deg(torch.atan2((cx - 32).abs(), 20 - cy))
    assert turned.min() > 35  # every dot turned far
    assert (radius - 14.5).abs().max() < 0.75, radius


def test_pretext_on_non_square_images_draws_no_quarter_turn():
    x = torch.rand(600, 3, 8, 12)
    out, targets = pretext_batch(x, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(targets.numpy(), minlength=6)
    assert counts[[1, 3]].sum() == 0 and (counts[list(SHAPE_KEEPING)] > 100).all()
    assert out.shape == x.shape and torch.equal(out, apply_pretext(x, targets))
    assert torch.equal(out[targets == 2], x[targets == 2].flip(2, 3))
    square = torch.rand(600, 3, 8, 8)  # square images: all six, drawn as before
    _, drawn = pretext_batch(square, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn, torch.randint(6, (600,), generator=torch.Generator().manual_seed(0)))
