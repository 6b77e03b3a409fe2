import numpy as np
import torch
import torch.nn.functional as F

from semilabel.data.augment import PRETEXT_TRANSFORMS, affine_grid, apply_pretext, pretext_batch
from semilabel.data.augment_policy import AugmentPolicy, apply_policy


def _centroid(x):
    h, w = x.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    m = x.sum(dim=(-2, -1))
    return torch.stack([(x * ys).sum(dim=(-2, -1)) / m, (x * xs).sum(dim=(-2, -1)) / m], -1)


def test_affine_grid_matches_torch():
    theta = torch.randn(3, 2, 3)
    expected = F.affine_grid(theta, [3, 1, 20, 30], align_corners=False)
    assert torch.allclose(affine_grid(theta, 20, 30), expected, atol=1e-5)


def test_weak_policy_keeps_value_range_ink_and_position(tiny_dataset):
    images = tiny_dataset.labeled.images[:64]
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = apply_policy(x, AugmentPolicy.weak(), generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 + 1e-6
    assert not torch.allclose(x, y)
    # The symbols (and so the labels) stay: ink is kept and its centre moves only a little.
    ratio = y.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert ratio.min() > 0.8 and ratio.max() < 1.2
    shift = (_centroid(y[:, 0]) - _centroid(x[:, 0])).norm(dim=1)
    assert shift.max() < 10.0


def test_pretext_targets_match_the_applied_transforms():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4).repeat(6, 1, 1, 1)
    targets = torch.arange(6)
    out = apply_pretext(x, targets)
    base = x[0, 0]
    expected = [base, torch.rot90(base, 1), torch.rot90(base, 2), torch.rot90(base, 3), base.flip(1), base.flip(0)]
    for k, name in enumerate(PRETEXT_TRANSFORMS):
        assert torch.equal(out[k, 0], expected[k]), name


def test_pretext_batch_draws_every_transform_and_labels_it():
    x = torch.rand(600, 1, 8, 8)
    out, targets = pretext_batch(x, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(targets.numpy(), minlength=6)
    assert (counts > 50).all()
    again = apply_pretext(x, targets)
    assert torch.equal(out, again)


def test_a_share_of_a_pretext_batch_draws_as_in_the_whole_batch():
    x = torch.rand(10, 1, 8, 8)
    out, targets = pretext_batch(x, generator=torch.Generator().manual_seed(3))
    part, part_targets = pretext_batch(x[1::2], generator=torch.Generator().manual_seed(3), batch=10,
                                       rows=slice(1, None, 2))
    assert torch.equal(part_targets, targets[1::2]) and torch.equal(part, out[1::2])
