"""Augmentation policies: named ops composed into `weak` and `strong` presets.

Every op works on whole batches (B, 1, H, W) of floats in 0-1, draws one set of
parameters per image from a `torch.Generator`, and keeps the value range and shape.
Geometric ops (rotation, shift, scale, shear, elastic distortion) are fused into one
sampling grid, so a policy costs one `grid_sample`; the pixel ops follow: stroke width
(dilate / erode), random erasing of one small patch, and the two noise regimes of the
data (salt-and-pepper dots, grey grain). With `n_random` > 0 each image gets that many
of the pixel ops and the elastic distortion, chosen at random (RandAugment-style), each
then applied with its probability; with `n_random` = 0 each op is applied with its own
probability. A strength of 0 (no rotation, shift or shear, scale 1, all probabilities 0) is the identity.

No op erases a glyph whole: an erased patch is at most `erase_size` pixels wide (a
symbol is 12-17 px), erosion keeps half of each stroke's value, and dots are sparse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semilabel.data.augment import affine_grid
from semilabel.transfer import to_device

RANDOM_OPS = ("elastic", "stroke", "erase", "dots", "grain")  # the ops `n_random` chooses from


@dataclass(frozen=True)
class AugmentPolicy:
    """One augmentation policy; every field is a range or a probability."""

    rotate_deg: float = 10.0  # +- rotation per image
    far_rotate_p: float = 0.0  # share of images turned further: +-rotate_deg to +-far_rotate_deg
    far_rotate_deg: float = 90.0  # (the original data turns about one symbol in ten far, some on their side)
    translate: float = 0.03  # +- shift, fraction of the side
    scale_min: float = 1.0  # zoom range (1 = none)
    scale_max: float = 1.0
    shear_deg: float = 0.0  # +- horizontal shear
    elastic_p: float = 0.0  # elastic distortion (Simard et al. 2003)
    elastic_px: float = 1.5  # largest displacement, pixels
    stroke_p: float = 0.0  # dilate or erode the strokes by about a pixel (half each)
    erase_p: float = 0.0  # black out one small patch
    erase_size: int = 6  # patch side, up to this many pixels
    dots_p: float = 0.0  # salt-and-pepper dots
    dots_density: float = 0.025  # up to this fraction of pixels bright, as many dark
    grain_p: float = 0.0  # grey grainy background
    grain_level: float = 0.25  # up to this mean grey (std 0.3 of the mean)
    n_random: int = 0  # >0: each image gets this many of RANDOM_OPS, chosen at random

    @classmethod
    def none(cls) -> "AugmentPolicy":
        return cls(rotate_deg=0.0, translate=0.0)

    @classmethod
    def weak(cls) -> "AugmentPolicy":
        """Small rotations and shifts: the view a teacher labels."""
        return cls()

    @classmethod
    def strong(cls) -> "AugmentPolicy":
        """Large geometric changes plus two of elastic distortion and the pixel ops, at random:
        the view a student learns from."""
        return cls(rotate_deg=30.0, far_rotate_p=0.15, translate=0.08, scale_min=0.85, scale_max=1.15,
                   shear_deg=15.0, elastic_p=1.0, stroke_p=1.0, erase_p=1.0, dots_p=1.0, grain_p=1.0, n_random=2)


PRESETS = {"none": AugmentPolicy.none, "weak": AugmentPolicy.weak, "strong": AugmentPolicy.strong}


def preset(name: str) -> AugmentPolicy:
    """A named policy (none, weak, strong)."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation policy {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[name]()


def policy_errors(policy: AugmentPolicy) -> list[tuple[str, str]]:
    """(field, what it must be) for each field out of its range: probabilities in [0, 1],
    ranges and sizes not negative, scale_min <= scale_max, far_rotate_deg >= rotate_deg."""
    errors = [(f.name, "in [0, 1]") for f in dataclasses.fields(policy)
              if f.name.endswith("_p") and not 0 <= getattr(policy, f.name) <= 1]
    errors += [(name, "0 or more") for name in ("rotate_deg", "translate", "shear_deg", "elastic_px", "erase_size",
                                                "dots_density", "grain_level", "n_random")
               if getattr(policy, name) < 0]
    if not 0 < policy.scale_min <= policy.scale_max:
        errors.append(("scale_min", f"positive and at most scale_max ({policy.scale_max})"))
    if policy.far_rotate_p > 0 and policy.far_rotate_deg < policy.rotate_deg:
        errors.append(("far_rotate_deg", f"at least rotate_deg ({policy.rotate_deg})"))
    return errors


def is_identity(policy: AugmentPolicy) -> bool:
    return policy == dataclasses.replace(AugmentPolicy.none(), erase_size=policy.erase_size,
                                         far_rotate_deg=policy.far_rotate_deg,
                                         elastic_px=policy.elastic_px, dots_density=policy.dots_density,
                                         grain_level=policy.grain_level, n_random=policy.n_random)


def _on(flags: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) per-image values drawn on the CPU -> (B, 1, 1, 1) on x's device."""
    return to_device(flags.view(-1, 1, 1, 1), x.device)


def _uniform(b: int, gen: torch.Generator | None, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=gen)


def _op_masks(policy: AugmentPolicy, b: int, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
    """(B,) bool per op in RANDOM_OPS: whether image i gets it."""
    probs = torch.tensor([getattr(policy, f"{op}_p") for op in RANDOM_OPS])
    chance = torch.rand(b, len(RANDOM_OPS), generator=gen) < probs
    if policy.n_random > 0:
        k = min(policy.n_random, len(RANDOM_OPS))
        picked = torch.rand(b, len(RANDOM_OPS), generator=gen).argsort(dim=1)[:, :k]
        chosen = torch.zeros(b, len(RANDOM_OPS), dtype=torch.bool).scatter_(1, picked, True)
        chance &= chosen
    return {op: chance[:, i] for i, op in enumerate(RANDOM_OPS)}


def _geometric_grid(policy: AugmentPolicy, b: int, h: int, w: int, elastic: torch.Tensor,
                    gen: torch.Generator | None) -> torch.Tensor:
    """One sampling grid (B, H, W, 2) for rotation, shift, scale, shear and elastic distortion."""
    angle = _uniform(b, gen) * math.radians(policy.rotate_deg)
    if policy.far_rotate_p > 0:  # drawn only when asked, so other policies keep their random stream
        far = torch.rand(b, generator=gen) < policy.far_rotate_p
        turn = torch.deg2rad(_uniform(b, gen, policy.rotate_deg, max(policy.far_rotate_deg, policy.rotate_deg)))
        sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        angle = torch.where(far, sign * turn, angle)
    scale = _uniform(b, gen, policy.scale_min, policy.scale_max)
    shear = torch.tan(_uniform(b, gen) * math.radians(policy.shear_deg))
    shift = torch.stack([_uniform(b, gen), _uniform(b, gen)], 1) * (2 * policy.translate)  # normalised units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # inverse map: rotation / scale, then shear of x by y
    theta = torch.stack([torch.stack([cos - shear * sin, -sin + shear * cos, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = affine_grid(theta, h, w)
    idx = elastic.nonzero(as_tuple=True)[0]
    if len(idx):
        # a smooth random field: coarse noise (K, 2, 4, 4) upsampled; largest displacement elastic_px
        coarse = torch.rand(len(idx), 2, 4, 4, generator=gen) * 2 - 1
        field = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
        field = field * (2 * policy.elastic_px / torch.tensor([w, h], dtype=field.dtype).view(1, 2, 1, 1))
        grid = grid.index_add(0, idx, field.permute(0, 2, 3, 1))
    return grid


def _stroke(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Dilate half of the images, erode the other half, by about a pixel."""
    dilate = _on(torch.rand(len(x), generator=gen) < 0.5, x)
    grown = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    eroded = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, stride=1)
    shrunk = (x + eroded) / 2  # halfway to the 2x2 erosion: a thin stroke fades but never vanishes
    return torch.where(dilate, grown, shrunk)


def _erase(x: torch.Tensor, size: int, gen: torch.Generator | None) -> torch.Tensor:
    """Black out one square patch of 2..size pixels per image."""
    b, _, h, w = x.shape
    side = (2 + torch.rand(b, generator=gen) * (max(size, 2) - 1)).floor()
    x0 = (torch.rand(b, generator=gen) * (w - side)).floor()
    y0 = (torch.rand(b, generator=gen) * (h - side)).floor()
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    inside = (cols >= _on(x0, x)) & (cols < _on(x0 + side, x)) & (rows >= _on(y0, x)) & (rows < _on(y0 + side, x))
    return x.masked_fill(inside, 0.0)


def _dots(x: torch.Tensor, density: float, gen: torch.Generator | None) -> torch.Tensor:
    """Bright salt and as many dark pepper dots, up to `density` of the pixels each."""
    d = _on(torch.rand(len(x), generator=gen) * density, x)
    u = to_device(torch.rand(x.shape, generator=gen), x.device)
    return x.masked_fill(u < d, 1.0).masked_fill(u > 1 - d, 0.0)


def _grain(x: torch.Tensor, level: float, gen: torch.Generator | None) -> torch.Tensor:
    """A grey background of mean up to `level`, grain std 0.3 of the mean, under the ink."""
    mean = _on(torch.rand(len(x), generator=gen) * level, x)
    background = (mean * (1 + 0.3 * to_device(torch.randn(x.shape, generator=gen), x.device))).clamp(0, 1)
    return x + background * (1 - x)


def apply_policy(images: torch.Tensor, policy: AugmentPolicy, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch (B, 1, H, W) in 0-1 by `policy`, one draw per image.

    Parameters are drawn on the CPU from `generator` (the same draws on any device),
    then the batch is transformed where it lives; each pixel op touches only the
    images that drew it.
    """
    if is_identity(policy) or len(images) == 0:
        return images
    b, _, h, w = images.shape
    gen = generator
    masks = _op_masks(policy, b, gen)
    grid = to_device(_geometric_grid(policy, b, h, w, masks["elastic"], gen), images.device, images.dtype)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ops = (("stroke", lambda part: _stroke(part, gen)),
           ("erase", lambda part: _erase(part, policy.erase_size, gen)),
           ("dots", lambda part: _dots(part, policy.dots_density, gen)),
           ("grain", lambda part: _grain(part, policy.grain_level, gen)))
    for name, op in ops:
        idx = masks[name].nonzero(as_tuple=True)[0]  # on the CPU: its length is known without a sync
        if len(idx):
            idx = to_device(idx, x.device)
            x = x.index_copy(0, idx, op(x.index_select(0, idx)))
    return x.clamp_(0, 1)
