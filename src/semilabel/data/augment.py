"""Batched sampling grids and the SESEMI self-supervised transforms, as tensor ops
(the augmentation policies built on them are in `augment_policy`).

Everything here works on whole batches (B, C, H, W) with no per-image Python loop.
"""

from __future__ import annotations


import torch

from semilabel.transfer import to_device


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The sampling grid of `F.affine_grid(theta, (B, C, H, W), align_corners=False)`,
    computed with broadcasting, which is several times faster on CPU. (B, H, W, 2)"""
    ys = ((torch.arange(height, dtype=theta.dtype, device=theta.device) + 0.5) * (2.0 / height) - 1.0).view(1, -1, 1)
    xs = ((torch.arange(width, dtype=theta.dtype, device=theta.device) + 0.5) * (2.0 / width) - 1.0).view(1, 1, -1)
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    return torch.stack([t[:, i, 0] * xs + t[:, i, 1] * ys + t[:, i, 2] for i in range(2)], dim=-1)


# ---- SESEMI: which rotation or flip was applied? ----------------------------------------
# Target k means: 0 identity, 1 rot90, 2 rot180, 3 rot270 (counter-clockwise), 4 horizontal
# flip (left-right), 5 vertical flip (up-down).
PRETEXT_TRANSFORMS = ("rot0", "rot90", "rot180", "rot270", "hflip", "vflip")
SHAPE_KEEPING = (0, 2, 4, 5)  # the transforms that keep a non-square image's shape (no quarter turns)


def apply_pretext(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Apply transform `targets[i]` (see PRETEXT_TRANSFORMS) to image i. (B, C, H, W); a
    quarter turn (1, 3) only on square images.

    Every transform is applied to the whole batch and chosen per image by a mask: no
    data-dependent shapes, so no host sync on a GPU."""
    out = images
    which = targets.view(-1, 1, 1, 1)
    square = images.shape[-1] == images.shape[-2]
    for k in range(1, len(PRETEXT_TRANSFORMS)):
        if k in (1, 3) and not square:
            continue  # never drawn for such images (pretext_batch)
        if k <= 3:
            moved = torch.rot90(images, k, dims=(2, 3))
        elif k == 4:
            moved = torch.flip(images, dims=(3,))
        else:
            moved = torch.flip(images, dims=(2,))
        out = torch.where(which == k, moved, out)
    return out


def pretext_batch(images: torch.Tensor, generator: torch.Generator | None = None, *, batch: int | None = None,
                  rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one transform per image; return the transformed batch and its targets.

    With `batch`, `images` are rows `rows` of a batch of that many images: the draws
    are the whole batch's (as `augment_policy.apply_policy`), these rows' are used.
    Non-square images draw from the four transforms that keep their shape (SHAPE_KEEPING)."""
    batch = len(images) if batch is None else batch
    if images.shape[-1] == images.shape[-2]:
        drawn = torch.randint(len(PRETEXT_TRANSFORMS), (batch,), generator=generator)[rows]
    else:
        drawn = torch.tensor(SHAPE_KEEPING)[torch.randint(len(SHAPE_KEEPING), (batch,), generator=generator)][rows]
    if len(drawn) != len(images):
        raise ValueError(f"pretext_batch: {len(images)} images given for rows {rows} of a batch of {batch}")
    targets = to_device(drawn, images.device)
    return apply_pretext(images, targets), targets
