"""Augmentation policies: named ops composed into `weak` and `strong` presets.

Every op works on whole batches (B, C, H, W) of floats in 0-1 (C = 1 grey, 3 colour),
draws one set of parameters per image from a `torch.Generator`, and keeps the value
range and shape. Geometry acts on all channels alike; the noise ops draw each channel's
noise on its own (colour images get coloured dots and grain). Rotations and shears turn
by their angle in pixels, also on images that are not square.
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


@dataclass(frozen=True)
class _Draws:
    """Every random parameter of a batch of n images, drawn on the CPU in one fixed order."""

    masks: dict[str, torch.Tensor]  # (n,) bool per op in RANDOM_OPS
    theta: torch.Tensor  # (n, 2, 3) inverse affine maps
    ops: dict[str, tuple[torch.Tensor, ...]]  # elastic and pixel ops: per-image parameters of the
    # images that drew the op, in row order (absent when none did)


def _theta(policy: AugmentPolicy, b: int, gen: torch.Generator | None) -> torch.Tensor:
    """(B, 2, 3) inverse maps of rotation, shift, scale and shear."""
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
    return torch.stack([torch.stack([cos - shear * sin, -sin + shear * cos, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def _draw(policy: AugmentPolicy, n: int, shape: tuple[int, int, int], gen: torch.Generator | None) -> _Draws:
    """The draws of a batch of `n` images of `shape` (C, H, W), in the order the
    policy has always made them: op masks, geometry, elastic noise, then each pixel op."""
    c, h, w = shape
    masks = _op_masks(policy, n, gen)
    theta = _theta(policy, n, gen)
    draws = {
        # a smooth random field: coarse noise (K, 2, 4, 4), upsampled when applied
        "elastic": lambda k: (torch.rand(k, 2, 4, 4, generator=gen) * 2 - 1,),
        "stroke": lambda k: (torch.rand(k, generator=gen) < 0.5,),  # dilate (else erode)
        "erase": lambda k: _erase_draws(k, h, w, policy.erase_size, gen),
        "dots": lambda k: (torch.rand(k, generator=gen) * policy.dots_density,  # density
                           torch.rand((k, c, h, w), generator=gen)),
        "grain": lambda k: (torch.rand(k, generator=gen) * policy.grain_level,  # mean grey
                            torch.randn((k, c, h, w), generator=gen)),
    }
    ops = {}
    for name in ("elastic", "stroke", "erase", "dots", "grain"):
        k = int(masks[name].sum())  # a host tensor: no sync
        if k:
            ops[name] = draws[name](k)
    return _Draws(masks, theta, ops)


def _erase_draws(k: int, h: int, w: int, size: int, gen: torch.Generator | None) -> tuple[torch.Tensor, ...]:
    """(x0, y0, side) of one square patch of 2..size pixels per image."""
    side = (2 + torch.rand(k, generator=gen) * (max(size, 2) - 1)).floor()
    x0 = (torch.rand(k, generator=gen) * (w - side)).floor()
    y0 = (torch.rand(k, generator=gen) * (h - side)).floor()
    return x0, y0, side


def _stroke(x: torch.Tensor, dilate: torch.Tensor) -> torch.Tensor:
    """Dilate the images flagged, erode the others, by about a pixel."""
    grown = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    eroded = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, stride=1)
    shrunk = (x + eroded) / 2  # halfway to the 2x2 erosion: a thin stroke fades but never vanishes
    return torch.where(_on(dilate, x), grown, shrunk)


def _erase(x: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Black out one square patch per image."""
    _, _, h, w = x.shape
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    inside = (cols >= _on(x0, x)) & (cols < _on(x0 + side, x)) & (rows >= _on(y0, x)) & (rows < _on(y0 + side, x))
    return x.masked_fill(inside, 0.0)


def _dots(x: torch.Tensor, density: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Bright salt and as many dark pepper dots, `density` of the pixels each."""
    d = _on(density, x)
    u = to_device(u, x.device)
    return x.masked_fill(u < d, 1.0).masked_fill(u > 1 - d, 0.0)


def _grain(x: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """A grey background of mean `mean`, grain std 0.3 of the mean, under the ink."""
    background = (_on(mean, x) * (1 + 0.3 * to_device(noise, x.device))).clamp(0, 1)
    return x + background * (1 - x)


PIXEL_OPS = {"stroke": _stroke, "erase": _erase, "dots": _dots, "grain": _grain}  # applied in this order


def _drawn_by(masks: dict[str, torch.Tensor], name: str, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Of the images at `rows` of the drawn batch: the positions (in `rows`) of those that
    drew op `name`, and their rows in that op's parameters. Host tensors."""
    drew = masks[name]
    here = drew[rows]
    return here.nonzero(as_tuple=True)[0], (drew.cumsum(0) - 1)[rows][here]


def _apply(images: torch.Tensor, policy: AugmentPolicy, d: _Draws, rows: torch.Tensor) -> torch.Tensor:
    """Transform `images`, rows `rows` of the drawn batch, by their draws in `d`."""
    _, _, h, w = images.shape
    theta = d.theta[rows]
    if h != w:  # the maps act on coordinates normalised per side; in pixels, a turn stays a turn
        theta = theta.clone()
        theta[:, 0, 1] *= h / w
        theta[:, 1, 0] *= w / h
    grid = affine_grid(theta, h, w)
    local, which = _drawn_by(d.masks, "elastic", rows)
    if len(local):
        field = F.interpolate(d.ops["elastic"][0][which], size=(h, w), mode="bilinear", align_corners=True)
        field = field * (2 * policy.elastic_px / torch.tensor([w, h], dtype=field.dtype).view(1, 2, 1, 1))
        grid = grid.index_add(0, local, field.permute(0, 2, 3, 1))  # largest displacement elastic_px
    x = F.grid_sample(images, to_device(grid, images.device, images.dtype), mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    for name, op in PIXEL_OPS.items():
        local, which = _drawn_by(d.masks, name, rows)  # on the CPU: its length is known without a sync
        if len(local):
            idx = to_device(local, x.device)
            x = x.index_copy(0, idx, op(x.index_select(0, idx), *(p[which] for p in d.ops[name])))
    return x.clamp_(0, 1)


def apply_policy(images: torch.Tensor, policy: AugmentPolicy, generator: torch.Generator | None = None, *,
                 batch: int | None = None, rows: slice = slice(None)) -> torch.Tensor:
    """Augment a batch (B, C, H, W) in 0-1 by `policy`, one draw per image.

    Parameters are drawn on the CPU from `generator` (the same draws on any device),
    then the batch is transformed where it lives; each pixel op touches only the
    images that drew it. With `batch`, `images` are rows `rows` of a batch of that
    many images (one process's share of a global batch): the draws are the whole
    batch's, so each image is transformed as it would be in the whole batch, and only
    these images are.
    """
    batch = len(images) if batch is None else batch
    positions = torch.arange(batch)[rows]
    if len(positions) != len(images):
        raise ValueError(f"apply_policy: {len(images)} images given for rows {rows} of a batch of {batch}")
    if is_identity(policy) or batch == 0:
        return images
    draws = _draw(policy, batch, tuple(images.shape[1:]), generator)
    return _apply(images, policy, draws, positions) if len(images) else images
