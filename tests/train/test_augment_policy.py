"""Augmentation policies: labels untouched by construction, so what must hold is the
value range, the shape, strength 0 as the identity, repeatability, and that no op
erases a glyph whole."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from semilabel.data.augment_policy import RANDOM_OPS, AugmentPolicy, apply_policy, preset

NO_PIXEL_OPS = {f"{op}_p": 0.0 for op in RANDOM_OPS}
ONE_OP = {
    "rotate": dict(rotate_deg=30.0, translate=0.0),
    "far_rotate": dict(rotate_deg=0.0, translate=0.0, far_rotate_p=1.0),
    "shift": dict(rotate_deg=0.0, translate=0.1),
    "scale": dict(rotate_deg=0.0, translate=0.0, scale_min=0.8, scale_max=1.2),
    "shear": dict(rotate_deg=0.0, translate=0.0, shear_deg=15.0),
    **{op: dict(rotate_deg=0.0, translate=0.0, **{f"{op}_p": 1.0}) for op in RANDOM_OPS},
}


def _images(tiny_dataset, n=64) -> torch.Tensor:
    return torch.from_numpy(tiny_dataset.labeled.images[:n]).float().div(255).unsqueeze(1)


def _policy(**changes) -> AugmentPolicy:
    return dataclasses.replace(AugmentPolicy.none(), **changes)


def test_strength_zero_is_the_identity(tiny_dataset):
    x = _images(tiny_dataset)
    assert torch.equal(apply_policy(x, AugmentPolicy.none(), torch.Generator().manual_seed(0)), x)
    # ranges at 0 but the grid still sampled: the identity up to rounding
    y = apply_policy(x, _policy(shear_deg=1e-12), torch.Generator().manual_seed(0))
    assert torch.allclose(x, y, atol=1e-5)


@pytest.mark.parametrize("op", list(ONE_OP))
def test_each_op_keeps_shape_and_range_changes_the_image_and_is_seeded(tiny_dataset, op):
    x = _images(tiny_dataset)
    policy = _policy(**ONE_OP[op])
    y = apply_policy(x, policy, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(x, y, atol=1e-3), f"{op} did nothing"
    assert torch.equal(y, apply_policy(x, policy, torch.Generator().manual_seed(1)))
    assert not torch.equal(y, apply_policy(x, policy, torch.Generator().manual_seed(2)))


def _principal_angle(x: torch.Tensor) -> torch.Tensor:
    """(B,) orientation in degrees (0-180) of each image's ink, from its second moments."""
    b, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    m = x[:, 0] / x[:, 0].sum((1, 2), keepdim=True)
    cx, cy = (m * xx).sum((1, 2)), (m * yy).sum((1, 2))
    dx, dy = xx - cx.view(-1, 1, 1), yy - cy.view(-1, 1, 1)
    sxx, syy, sxy = (m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * sxy, sxx - syy)) % 180


def test_far_rotation_turns_the_share_asked_by_the_range_asked():
    """A horizontal bar: near rotations keep it within +-10 degrees, far ones turn it by
    10-90 degrees either way, on about the share `far_rotate_p` asks."""
    x = torch.zeros(2000, 1, 33, 33)
    x[:, :, 16, 6:27] = 1.0
    policy = _policy(rotate_deg=10.0, translate=0.0, far_rotate_p=0.3, far_rotate_deg=90.0)
    y = apply_policy(x, policy, torch.Generator().manual_seed(0))
    turn = _principal_angle(y)
    turn = torch.minimum(turn, 180 - turn)  # 0-90: how far from horizontal
    far = turn > 11
    assert 0.26 < float(far.float().mean()) < 0.34
    assert float(turn.max()) > 85 and float(turn[far].min()) < 15  # the far range is covered, not just its end
    without = apply_policy(x, dataclasses.replace(policy, far_rotate_p=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(without, apply_policy(x, _policy(rotate_deg=10.0, translate=0.0),
                                              torch.Generator().manual_seed(0)))  # off: the same draws as before


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_no_policy_erases_a_glyph_whole(tiny_dataset, name):
    """The ops that can remove ink (geometry, erosion, erasing; dots and grain only add
    or punch single pixels) keep a good part of every image's ink mass."""
    x = _images(tiny_dataset, 240)
    policy = dataclasses.replace(preset(name), dots_p=0.0, grain_p=0.0)
    for seed in range(3):
        y = apply_policy(x, policy, torch.Generator().manual_seed(seed))
        kept = y.flatten(1).sum(1) / x.flatten(1).sum(1)
        assert float(kept.min()) > 0.3, f"{name}: an image kept {float(kept.min()):.0%} of its ink"


def test_n_random_applies_that_many_pixel_ops_per_image():
    from semilabel.data.augment_policy import _op_masks

    masks = _op_masks(preset("strong"), 500, torch.Generator().manual_seed(0))
    per_image = torch.stack([masks[op] for op in RANDOM_OPS], 1).sum(1)
    assert torch.equal(per_image, torch.full((500,), 2))
    every = _op_masks(dataclasses.replace(preset("strong"), n_random=0), 500, torch.Generator().manual_seed(0))
    assert all(bool(every[op].all()) for op in RANDOM_OPS)  # probability 1 each, no choice


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="wild"):
        preset("wild")


@pytest.mark.parametrize("name", ["weak", "strong"])
def test_a_share_of_a_batch_is_augmented_as_in_the_whole_batch(tiny_dataset, name):
    """One process of three augments rows rank, rank + 3, ... of a global batch: each gets
    the whole batch's draws for its place, and the generator ends where the whole batch's
    leaves it (so the next draws agree on every rank)."""
    x, policy = _images(tiny_dataset, 20), preset(name)
    whole_gen = torch.Generator().manual_seed(4)
    whole = apply_policy(x, policy, whole_gen)
    for rank in range(3):
        gen = torch.Generator().manual_seed(4)
        part = apply_policy(x[rank::3], policy, gen, batch=20, rows=slice(rank, None, 3))
        assert torch.equal(part, whole[rank::3])
        assert torch.equal(gen.get_state(), whole_gen.get_state())
    with pytest.raises(ValueError, match="3 images given for rows"):
        apply_policy(x[:3], policy, torch.Generator(), batch=20, rows=slice(0, None, 2))
