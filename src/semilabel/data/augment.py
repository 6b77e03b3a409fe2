"""Batch augmentation and the SESEMI self-supervised transforms, as tensor ops.

Everything here works on whole batches (B, C, H, W) with no per-image Python loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The sampling grid of `F.affine_grid(theta, (B, C, H, W), align_corners=False)`,
    computed with broadcasting, which is several times faster on CPU. (B, H, W, 2)"""
    ys = ((torch.arange(height, dtype=theta.dtype, device=theta.device) + 0.5) * (2.0 / height) - 1.0).view(1, -1, 1)
    xs = ((torch.arange(width, dtype=theta.dtype, device=theta.device) + 0.5) * (2.0 / width) - 1.0).view(1, 1, -1)
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    return torch.stack([t[:, i, 0] * xs + t[:, i, 1] * ys + t[:, i, 2] for i in range(2)], dim=-1)


def random_affine(images: torch.Tensor, max_rotation_deg: float = 10.0, max_translate: float = 0.03,
                  scale_range: tuple[float, float] = (1.0, 1.0),
                  generator: torch.Generator | None = None, draws: int | None = None,
                  rows: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate each image by up to +-max_rotation_deg and shift it by up to
    +-max_translate of its side (and optionally scale), one draw per image.

    With `rows`, `images` are those rows of a batch of `draws` images: the draws are
    made for the whole batch and the rows' own applied, so a part of a batch is
    augmented exactly as the whole batch would be.

    Pixels that come from outside the image are black (the background). Values stay
    within the input's range because bilinear sampling only averages neighbours.
    """
    b, _, h, w = images.shape
    device = images.device
    u = torch.rand(b if draws is None else draws, 4, generator=generator)
    if rows is not None:
        u = u[rows]
    if len(u) == 0:
        return images
    u = u.to(device, non_blocking=True)
    angle = (u[:, 0] * 2 - 1) * math.radians(max_rotation_deg)
    scale = scale_range[0] + u[:, 1] * (scale_range[1] - scale_range[0])
    shift = (u[:, 2:] * 2 - 1) * (2 * max_translate)  # normalised coordinates span 2 per side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = affine_grid(theta.to(images.dtype), h, w)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ---- SESEMI: which rotation or flip was applied? ----------------------------------------
# Target k means: 0 identity, 1 rot90, 2 rot180, 3 rot270 (counter-clockwise), 4 horizontal
# flip (left-right), 5 vertical flip (up-down).
PRETEXT_TRANSFORMS = ("rot0", "rot90", "rot180", "rot270", "hflip", "vflip")


def apply_pretext(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Apply transform `targets[i]` (see PRETEXT_TRANSFORMS) to image i. (B, C, H, W), square."""
    out = images.clone()
    host = targets.cpu()  # which rows get which transform is decided on the host: no GPU sync
    for k in range(len(PRETEXT_TRANSFORMS)):
        idx = (host == k).nonzero(as_tuple=True)[0]
        if len(idx) == 0 or k == 0:
            continue
        idx = idx.to(images.device, non_blocking=True)
        part = images[idx]
        if k <= 3:
            out[idx] = torch.rot90(part, k, dims=(2, 3))
        elif k == 4:
            out[idx] = torch.flip(part, dims=(3,))
        else:
            out[idx] = torch.flip(part, dims=(2,))
    return out


def pretext_batch(images: torch.Tensor, generator: torch.Generator | None = None, draws: int | None = None,
                  rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one transform per image; return the transformed batch and its targets
    (`draws` and `rows` as for `random_affine`)."""
    targets = torch.randint(len(PRETEXT_TRANSFORMS), (len(images) if draws is None else draws,), generator=generator)
    if rows is not None:
        targets = targets[rows]
    return apply_pretext(images, targets), targets.to(images.device, non_blocking=True)
