"""The Combo generator: one digit and one letter glyph on a noisy 56x56 canvas.

The defaults follow the measured figures of the original images
(`ORIGINAL_DATA.md` beside the shared glyph banks): small symbols (longer ink side
12/15/17 px at p10/50/90) placed near the middle, more often one above the other
than side by side and mostly apart; upright or turned a few degrees, one in ten
much further; MNIST-like strokes, some thicker, some thinner and fainter; every
image scaled to a brightest pixel of 255 with the dimmer symbol at about 3/4 of the
brighter; then one of three noise regimes: clean (dim, grainy ink scaled up),
salt-and-pepper (bright and dark dots), or a grey grainy background.

Training/unlabelled images and test images come from disjoint writers, so test
accuracy measures reading new hands. Glyph warping is batched with
`torch.nn.functional.grid_sample`; all randomness comes from one seeded NumPy
generator, so a seed gives byte-identical output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semilabel.data.augment import affine_grid
from semilabel.data.glyphs import GLYPH_SIDE, GlyphBank, concat_banks
from semilabel.data.npy import write_npy
from semilabel.data.readers import GLYPH_FILES, ORIGINAL_FILES, read_glyph_ids
from semilabel.data.safe_pickle import save_array_pickle
from semilabel.data.schema import COMBO
from semilabel.errors import DataError
from semilabel.io_utils import atomic_write

CANVAS = 56
INK_LEVEL = 0.35  # "ink" = pixels above this fraction of the image's maximum (ORIGINAL_DATA.md)
NOISE_REGIMES = ("clean", "salt_pepper", "grey")
LAYOUTS = ("side_by_side", "stacked", "diagonal")  # named from the centre offset (see _layout_of)
STROKES = ("thin", "as_drawn", "thick")
SAMPLE_GRID = "samples.png"
GridWriter = Callable[..., None]  # (images (N, H, W) uint8, captions, PNG path, title=...): plots.save_image_grid
_CHUNK = 4096  # images warped per grid_sample call
_Z90 = 1.2815516  # standard normal quantile at 90%


@dataclass(frozen=True)
class ComboStyle:
    """Knobs of the generator. Each default names the figure of the original data
    (ORIGINAL_DATA.md) it follows; `style_variant` changes one at a time."""

    # Symbols / Size: longer side of the ink box 12 / 15 / 17 px at p10 / p50 / p90. The knob is the
    # longer side of the glyph's own ink box (above 35% of its max) before rotation, thinning and
    # dimming, drawn from a split normal; set so that the measured boxes read 12 / 15 / 17.
    size_p10_p50_p90: tuple[float, float, float] = (12.4, 14.9, 16.8)
    size_clip: tuple[float, float] = (8.0, 22.0)
    # Place: centres between 12 and 44 px (p5-p95) on both axes. The midpoint of the pair
    # scatters around the canvas centre with this standard deviation (px); ink keeps
    # `border` px from the edge ("ink seldom touches the border").
    centre_std: float = 6.0
    border: float = 2.0
    # Arrangement: median |dx| 13 px and about 10% with |dx| < 2.5 px: |dx| uniform on [0, dx_max],
    # or, for `stacked_prob` of the pairs, under `stacked_dx` px (stacked almost exactly).
    dx_max: float = 30.0
    stacked_prob: float = 0.04
    stacked_dx: float = 1.5
    # Arrangement: median |dy| 16 px ("more often one above the other").
    dy_range: tuple[float, float] = (3.0, 23.0)
    # Arrangement: "mostly separated by background": overlapping boxes are pushed apart
    # vertically to a gap of `gap_px`, except a minority drawn touching or overlapping.
    touch_prob: float = 0.12
    gap_px: tuple[float, float] = (1.0, 4.0)
    touch_overlap_px: tuple[float, float] = (0.0, 4.0)  # box overlap of touching pairs
    # Rotation: "upright or turned by a few degrees" (normal, degrees) ...
    rotation_std_deg: float = 4.0
    # ... "roughly one in ten turned much further, some lying on their side".
    far_rotation_prob: float = 0.1
    far_rotation_deg: tuple[float, float] = (20.0, 90.0)
    # Strokes: "MNIST-like as a rule; some a pixel thicker, some thinner and fainter". STROKES:
    # thin = glyph ** thin_gamma (faded edges: a narrower stroke) at thin_ink of the brightness;
    # thick = a 2x2 max filter on the canvas (one pixel wider).
    stroke_probs: tuple[float, float, float] = (0.12, 0.76, 0.12)
    thin_gamma: float = 2.0
    thin_ink: tuple[float, float] = (0.7, 0.9)
    # Brightness: the dimmer symbol at roughly three quarters of the brighter.
    dim_ratio: tuple[float, float] = (0.55, 0.9)
    # Noise: about 26% clean, 57% salt-and-pepper, 17% grey background (NOISE_REGIMES).
    noise_probs: tuple[float, float, float] = (0.26, 0.57, 0.17)
    # Clean: "the ink itself is dim and grainy after the scaling": ink drawn at a peak of
    # `clean_peak` grey levels with relative grain `clean_grain`, rounded, then scaled to 255.
    clean_peak: tuple[float, float] = (40.0, 110.0)
    clean_grain: float = 0.12
    # Salt-and-pepper: 2.3-2.7% of the pixels bright dots, and as many dark ones (set to 0); exact
    # counts per image.
    dot_density: tuple[float, float] = (0.023, 0.027)
    # ... bright dots at 255, or at about 176 when the ink reaches 255 (this share of images);
    # under dots at 255 the ink peaks at `ink_under_dots` of 255.
    ink_over_dots_prob: float = 0.5
    dot_level_under_ink: float = 176.0
    ink_under_dots: tuple[float, float] = (0.55, 0.9)
    # ... "in some images a part of the dots is dim (about 50)", leaving 0.5-1.5% bright.
    dim_dots_prob: float = 0.3
    dim_dot_level: float = 50.0
    bright_left: tuple[float, float] = (0.005, 0.015)
    # Grey background: median dark 21-28 or light 49-63 of 255, std about 0.3 of its mean.
    grey_dark: tuple[float, float] = (21.0, 28.0)
    grey_light: tuple[float, float] = (49.0, 63.0)
    grey_light_prob: float = 0.5
    grey_rel_std: float = 0.3
    # Split (not a figure): share of the writers held out for the test part.
    test_writer_fraction: float = 0.2


@dataclass(frozen=True)
class ComboImages:
    """Generated images with their labels and what made them (for tests and plots)."""

    images: np.ndarray  # (N, 56, 56) uint8
    labels: np.ndarray  # (N, 2) int64: digit, letter
    noise: np.ndarray  # (N,) int64 index into NOISE_REGIMES
    layout: np.ndarray  # (N,) int64 index into LAYOUTS
    boxes: np.ndarray  # (N, 2, 4) float32 ink boxes x0, y0, x1, y1 of digit and letter (x1, y1 exclusive)
    writers: np.ndarray  # (N, 2) str: writer of the digit and of the letter
    glyphs: np.ndarray  # (N, 2) int64: index of the digit and letter glyph in the (concatenated) banks
    angles: np.ndarray  # (N, 2) float32: rotation of the digit and letter in degrees
    strokes: np.ndarray  # (N, 2) int64: index into STROKES of the digit and letter
    ink: np.ndarray  # (N, 2) float32: peak ink of the digit and letter before the image's scaling (1 = full)

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class ComboSplits:
    labeled: ComboImages
    unlabeled: ComboImages
    test: ComboImages
    train_writers: frozenset[str] = field(repr=False)
    test_writers: frozenset[str] = field(repr=False)


# ---- glyph geometry ----------------------------------------------------------------
def ink_boxes(images: np.ndarray, threshold: int | np.ndarray = 40) -> np.ndarray:
    """(N, H, W) images -> (N, 4) float32 x0, y0, x1, y1 of pixels above threshold
    (x1, y1 exclusive; `threshold` a number or one per image). An empty image gets
    the whole frame."""
    threshold = np.asarray(threshold)
    ink = images > (threshold.reshape(-1, 1, 1) if threshold.ndim else threshold)
    cols, rows = ink.any(axis=1), ink.any(axis=2)  # (N, W), (N, H)

    def span(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        side = mask.shape[1]
        first = np.where(mask.any(1), mask.argmax(1), 0)
        last = np.where(mask.any(1), side - mask[:, ::-1].argmax(1), side)
        return first, last

    x0, x1 = span(cols)
    y0, y1 = span(rows)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def split_by_writer(digits: GlyphBank, letters: GlyphBank, test_fraction: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, set, set]:
    """Choose test writers from the union of both banks' writers (one person's digits
    and letters fall on the same side). Returns boolean test masks per bank and the
    train/test writer sets. Every class must appear on both sides."""
    writers = np.unique(np.concatenate([digits.writers, letters.writers]))
    shuffled = rng.permutation(writers)
    n_test = max(1, int(round(test_fraction * len(writers))))
    test_writers = set(shuffled[:n_test].tolist())
    train_writers = set(shuffled[n_test:].tolist())
    masks = []
    for bank, n_classes, name in ((digits, 10, "digit"), (letters, 26, "letter")):
        is_test = np.isin(bank.writers, list(test_writers))
        for side, mask in (("test", is_test), ("train", ~is_test)):
            missing = sorted(set(range(n_classes)) - set(np.unique(bank.labels[mask]).tolist()))
            if missing:
                raise DataError(
                    f"{bank.source}: after the writer split, the {side} side has no {name} glyph of class(es) "
                    f"{missing[:5]}; give more writers or a different --seed"
                )
        masks.append(is_test)
    return masks[0], ~masks[0], masks[1], ~masks[1], train_writers, test_writers


# ---- composition ---------------------------------------------------------------------
def _pick_by_class(bank: GlyphBank, n_classes: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into `bank`: class uniform, then a glyph of that class uniform."""
    classes = rng.integers(0, n_classes, size=n)
    order = np.argsort(bank.labels, kind="stable")
    starts = np.searchsorted(bank.labels[order], np.arange(n_classes))
    counts = np.bincount(bank.labels, minlength=n_classes)
    return order[starts[classes] + (rng.random(n) * counts[classes]).astype(np.int64)]


def _split_normal(rng: np.random.Generator, n: int, p10: float, p50: float, p90: float) -> np.ndarray:
    """Draws whose 10th, 50th and 90th percentiles are p10, p50, p90 (two half normals)."""
    z = rng.standard_normal(n)
    return p50 + z * np.where(z < 0, p50 - p10, p90 - p50) / _Z90


def _angles(n: int, style: ComboStyle, rng: np.random.Generator) -> np.ndarray:
    """Rotation (radians): a few degrees as a rule, far further for a minority."""
    small = rng.standard_normal(n) * style.rotation_std_deg
    far = rng.random(n) < style.far_rotation_prob
    big = rng.uniform(*style.far_rotation_deg, size=n) * rng.choice([-1.0, 1.0], size=n)
    return np.deg2rad(np.where(far, big, small))


def _warp(glyphs: torch.Tensor, centre_src: np.ndarray, centre_dst: np.ndarray,
          scale: np.ndarray, angle: np.ndarray) -> torch.Tensor:
    """Place (N,1,28,28) glyphs on (N,1,56,56) canvases: the glyph point `centre_src`
    (pixels) lands on canvas point `centre_dst`, scaled by `scale`, rotated by `angle`."""
    # Inverse map, in pixel coordinates: p_src = c_src + A (q_dst - c_dst), A = R(-angle) / scale.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    a = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1)  # (N, 2, 2)
    # Normalised coordinates (align_corners=False): pixel = (norm + 1) * side / 2 - 0.5.
    half_dst, half_src = CANVAS / 2, GLYPH_SIDE / 2
    offset = centre_src + np.einsum("nij,nj->ni", a, (half_dst - 0.5) - centre_dst)
    theta = np.empty((len(scale), 2, 3), dtype=np.float32)
    theta[:, :, :2] = a * (half_dst / half_src)
    theta[:, :, 2] = (offset + 0.5) / half_src - 1.0
    grid = affine_grid(torch.from_numpy(theta), CANVAS, CANVAS)
    return F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _offsets(size_a: np.ndarray, size_b: np.ndarray, style: ComboStyle, rng: np.random.Generator) -> np.ndarray:
    """Centre-to-centre offset (N, 2) from the first symbol to the second, in pixels.
    size_*: (N, 2) width, height of each symbol's (rotated) box on the canvas."""
    n = len(size_a)
    need = (size_a + size_b) / 2  # centre distance at which the boxes meet, per axis
    adx = np.where(rng.random(n) < style.stacked_prob, rng.uniform(0, style.stacked_dx, size=n),
                   rng.uniform(0, style.dx_max, size=n))
    ady = rng.uniform(*style.dy_range, size=n)
    touch = rng.random(n) < style.touch_prob
    gap = rng.uniform(*style.gap_px, size=n)
    overlap = rng.uniform(*style.touch_overlap_px, size=n)
    sign = rng.choice([-1.0, 1.0], size=(n, 2))
    overlapping = (adx < need[:, 0]) & (ady < need[:, 1])
    ady = np.where(overlapping & ~touch, need[:, 1] + gap, ady)  # apart: push to a background gap
    vertical = ady / need[:, 1] >= adx / need[:, 0]  # touching along the axis they are furthest apart on
    ady = np.where(touch & vertical, need[:, 1] - overlap, np.where(touch, np.minimum(ady, need[:, 1] - overlap), ady))
    adx = np.where(touch & ~vertical, need[:, 0] - overlap, np.where(touch, np.minimum(adx, need[:, 0] - overlap), adx))
    return np.maximum(np.stack([adx, ady], axis=1), 0.0) * sign


def _layout_of(offset: np.ndarray) -> np.ndarray:
    """LAYOUTS index from the centre offset: side by side when |dy| < |dx| / 2,
    stacked when |dx| < |dy| / 2, diagonal otherwise."""
    adx, ady = np.abs(offset[:, 0]), np.abs(offset[:, 1])
    return np.select([ady < adx / 2, adx < ady / 2], [0, 1], 2).astype(np.int64)


def _strokes(placed: torch.Tensor, kind: np.ndarray, style: ComboStyle) -> torch.Tensor:
    """STROKES on placed glyphs (N, 1, 56, 56) in 0-1: thin = a power (narrower, faded
    edges), thick = a 2x2 max filter (one pixel wider)."""
    out = placed.clone()
    thin = torch.from_numpy(np.flatnonzero(kind == 0))
    if len(thin):
        out[thin] = placed[thin] ** style.thin_gamma
    thick = torch.from_numpy(np.flatnonzero(kind == 2))
    if len(thick):
        out[thick] = F.max_pool2d(F.pad(placed[thick], (0, 1, 0, 1)), 2, stride=1)
    return out


def _add_noise(canvas: np.ndarray, regime: np.ndarray, style: ComboStyle, rng: np.random.Generator) -> np.ndarray:
    """Each image's noise regime on canvases (N, 56, 56) in 0-1 whose brightest pixel is 1;
    returns 0-1 canvases scaled again to a brightest pixel of 1."""
    n = len(canvas)
    uniform = rng.random((n, CANVAS, CANVAS), dtype=np.float32)
    normal = rng.standard_normal((n, CANVAS, CANVAS), dtype=np.float32)

    def per_image(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return values[idx].astype(np.float32)[:, None, None]

    out = np.empty_like(canvas)
    # clean: dim grainy ink, rounded to grey levels, then scaled up
    peak = rng.uniform(*style.clean_peak, size=n)
    k = np.flatnonzero(regime == 0)
    c = canvas[k]
    dim = np.where(c > 0, np.rint(np.maximum(per_image(peak, k) * c * (1 + style.clean_grain * normal[k]), 0)), 0)
    out[k] = dim / np.maximum(dim.max(axis=(1, 2), keepdims=True), 1)
    # salt-and-pepper: bright dots (at 1, or at dot_level_under_ink when the ink reaches 1), dim
    # dots in some images, and as many dark dots as bright and dim ones together
    over = rng.random(n) < style.ink_over_dots_prob
    ink_peak = np.where(over, 1.0, rng.uniform(*style.ink_under_dots, size=n))
    dot_level = np.where(over, style.dot_level_under_ink / 255, 1.0)
    density = rng.uniform(*style.dot_density, size=n)
    dim_dots = rng.random(n) < style.dim_dots_prob
    bright = np.where(dim_dots, np.minimum(rng.uniform(*style.bright_left, size=n), density), density)
    k = np.flatnonzero(regime == 1)
    u = uniform[k]
    # exact dot counts per image (the figures are per image, tighter than binomial scatter):
    # the pixels with the lowest uniform draws get the bright, then the dim dots; the highest the dark
    ranked = np.sort(u.reshape(len(k), CANVAS * CANVAS), axis=1)
    pixels = CANVAS * CANVAS
    row = np.arange(len(k))
    ranked = np.concatenate([ranked, np.full((len(k), 1), 2.0, np.float32)], axis=1)  # beyond every draw

    def count(share: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(share[k] * pixels), 0, pixels).astype(np.int64)

    below_bright = ranked[row, count(bright)][:, None, None]
    below_dim = ranked[row, count(density)][:, None, None]
    dark_from = ranked[row, pixels - count(density)][:, None, None]
    dark_from = np.where(count(density)[:, None, None] == 0, np.float32(2.0), dark_from)
    dotted = np.where(u < below_bright, per_image(dot_level, k), canvas[k] * per_image(ink_peak, k))
    dotted = np.where((u >= below_bright) & (u < below_dim), np.float32(style.dim_dot_level / 255), dotted)
    out[k] = np.where(u >= dark_from, 0, dotted)
    # grey: a Gaussian grain background under the ink
    light = rng.random(n) < style.grey_light_prob
    level = np.where(light, rng.uniform(*style.grey_light, size=n), rng.uniform(*style.grey_dark, size=n)) / 255
    k = np.flatnonzero(regime == 2)
    background = np.clip(per_image(level, k) * (1 + style.grey_rel_std * normal[k]), 0, 1)
    out[k] = canvas[k] + background * (1 - canvas[k])
    return out / np.maximum(out.max(axis=(1, 2), keepdims=True), 1e-6)


def compose(digits: GlyphBank, letters: GlyphBank, n: int, rng: np.random.Generator,
            style: ComboStyle = ComboStyle()) -> ComboImages:
    """Compose `n` Combo images from the two banks (any writers in them); `glyphs`
    indexes these banks."""
    parts = [_compose_chunk(digits, letters, min(_CHUNK, n - start), rng, style) for start in range(0, n, _CHUNK)]
    if not parts:
        parts = [_compose_chunk(digits, letters, 0, rng, style)]
    names = [f.name for f in dataclasses.fields(ComboImages)]
    return ComboImages(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


def _compose_chunk(digits: GlyphBank, letters: GlyphBank, n: int, rng: np.random.Generator,
                   style: ComboStyle) -> ComboImages:
    """`n` images: glyphs picked and sized, laid out, inked, drawn, then noised (the draws from
    `rng` in this order)."""
    picks = [_pick_by_class(digits, 10, n, rng), _pick_by_class(letters, 26, n, rng)]
    digit_first = rng.random(n) < 0.5
    drawn = [_size_glyphs(bank.images[pick], style, rng) for bank, pick in zip((digits, letters), picks)]
    centres = _place(drawn[0].size, drawn[1].size, digit_first, style, rng)
    stroke_kinds = np.stack([d.stroke for d in drawn], axis=1)  # (n, 2) index into STROKES
    ink = _ink_levels(stroke_kinds, style, rng)
    placed = [_draw(d, centres[s], ink[:, s], style) for s, d in enumerate(drawn)]
    canvas = np.maximum(placed[0], placed[1])
    top = np.maximum(canvas.max(axis=(1, 2)), 1e-6)
    canvas = (canvas / top[:, None, None]).astype(np.float32)
    boxes = np.stack([ink_boxes(p, INK_LEVEL * top) for p in placed], axis=1)  # ink as ORIGINAL_DATA.md measures it
    noise = rng.choice(len(NOISE_REGIMES), size=n, p=style.noise_probs)
    canvas = _add_noise(canvas, noise, style, rng)
    return ComboImages(
        images=np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8),
        labels=np.stack([digits.labels[picks[0]], letters.labels[picks[1]]], axis=1).astype(np.int64),
        noise=noise.astype(np.int64),
        layout=_layout_of(centres[1] - centres[0]),
        boxes=boxes,
        writers=np.stack([digits.writers[picks[0]], letters.writers[picks[1]]], axis=1),
        glyphs=np.stack(picks, axis=1).astype(np.int64),
        angles=np.rad2deg(np.stack([d.angle for d in drawn], axis=1)).astype(np.float32),
        strokes=stroke_kinds.astype(np.int64),
        ink=ink.astype(np.float32),
    )


@dataclass(frozen=True)
class _Sized:
    """One symbol of each of n images, before it is placed."""

    glyph: torch.Tensor  # (n, 1, GLYPH_SIDE, GLYPH_SIDE) the glyphs in 0-1
    centre_src: np.ndarray  # (n, 2) x, y of the centre of each glyph's ink box, in its pixels
    scale: np.ndarray  # (n,) glyph px -> canvas px
    angle: np.ndarray  # (n,) radians
    size: np.ndarray  # (n, 2) width, height on the canvas: the box of the rotated ink box
    stroke: np.ndarray  # (n,) index into STROKES


def _size_glyphs(images: np.ndarray, style: ComboStyle, rng: np.random.Generator) -> _Sized:
    """Draw a size, an angle and a stroke for each of the (n, GLYPH_SIDE, GLYPH_SIDE) glyphs."""
    n = len(images)
    box = ink_boxes(images, INK_LEVEL * images.max(axis=(1, 2), initial=1))  # (n, 4)
    width, height = np.maximum(box[:, 2] - box[:, 0], 1), np.maximum(box[:, 3] - box[:, 1], 1)
    target = np.clip(_split_normal(rng, n, *style.size_p10_p50_p90), *style.size_clip)
    scale = target / np.maximum(width, height)
    angle = _angles(n, style, rng)
    cos, sin = np.abs(np.cos(angle)), np.abs(np.sin(angle))
    w, h = width * scale, height * scale
    return _Sized(glyph=torch.from_numpy(images).float().unsqueeze(1) / 255,
                  centre_src=np.stack([(box[:, 0] + box[:, 2]) / 2 - 0.5, (box[:, 1] + box[:, 3]) / 2 - 0.5], axis=1),
                  scale=scale, angle=angle, size=np.stack([cos * w + sin * h, sin * w + cos * h], axis=1),
                  stroke=rng.choice(len(STROKES), size=n, p=style.stroke_probs))


def _place(digit_size: np.ndarray, letter_size: np.ndarray, digit_first: np.ndarray, style: ComboStyle,
           rng: np.random.Generator) -> list[np.ndarray]:
    """Centres (n, 2) of the digit and of the letter on the canvas: the second symbol offset
    from the first (moved closer where the pair would not fit), the pair jittered around the
    middle and kept `style.border` px inside the edges."""
    first = np.where(digit_first[:, None], digit_size, letter_size)
    second = np.where(digit_first[:, None], letter_size, digit_size)
    offset = _offsets(first, second, style, rng)
    inner = CANVAS - 2 * style.border
    lo = np.minimum(-first / 2, offset - second / 2)  # union box around the first centre
    hi = np.maximum(first / 2, offset + second / 2)
    offset = offset / np.maximum((hi - lo).max(axis=1) / inner, 1.0)[:, None]  # too big: move closer
    lo = np.minimum(-first / 2, offset - second / 2)
    hi = np.maximum(first / 2, offset + second / 2)
    middle = CANVAS / 2 + style.centre_std * rng.standard_normal((len(first), 2)) - (lo + hi) / 2  # first centre
    middle = np.clip(middle, style.border - lo, CANVAS - style.border - hi)
    centre_first, centre_second = middle, middle + offset
    return [np.where(digit_first[:, None], centre_first, centre_second),
            np.where(digit_first[:, None], centre_second, centre_first)]


def _ink_levels(stroke_kinds: np.ndarray, style: ComboStyle, rng: np.random.Generator) -> np.ndarray:
    """Peak ink (n, 2) of the digit and the letter: one (either) dimmer; thin strokes fainter."""
    n = len(stroke_kinds)
    dimmer = rng.integers(0, 2, size=n)
    ratio = rng.uniform(*style.dim_ratio, size=n)
    ink = np.where(np.arange(2)[None, :] == dimmer[:, None], ratio[:, None], 1.0)
    thin_ink = rng.uniform(*style.thin_ink, size=(n, 2))
    return np.where(stroke_kinds == 0, ink * thin_ink, ink)


def _draw(sized: _Sized, centre: np.ndarray, ink: np.ndarray, style: ComboStyle) -> np.ndarray:
    """(n, H, W) canvases with the symbols warped to `centre` (n, 2), stroked, peaking at `ink` (n,)."""
    drawn = _warp(sized.glyph, sized.centre_src, centre - 0.5, sized.scale, sized.angle)
    drawn = _strokes(drawn, sized.stroke, style)[:, 0].numpy()
    drawn = drawn / np.maximum(drawn.max(axis=(1, 2), keepdims=True), 1e-6)
    return drawn * ink[:, None, None]


def _reindex(images: ComboImages, digit_index: np.ndarray, letter_index: np.ndarray) -> ComboImages:
    """Glyph indices of a subset bank -> indices in the full (concatenated) banks."""
    glyphs = np.stack([digit_index[images.glyphs[:, 0]], letter_index[images.glyphs[:, 1]]], axis=1)
    return dataclasses.replace(images, glyphs=glyphs.astype(np.int64))


def make_combo(digit_banks: list[GlyphBank], letter_banks: list[GlyphBank], n_labeled: int = 30000,
               n_unlabeled: int = 30000, n_test: int = 15000, seed: int = 0,
               style: ComboStyle = ComboStyle()) -> ComboSplits:
    """Labelled and unlabelled images from training writers, test images from the others.
    `glyphs` index the concatenation of `digit_banks` and of `letter_banks`."""
    for name, value in (("n_labeled", n_labeled), ("n_unlabeled", n_unlabeled), ("n_test", n_test)):
        if value < 0:
            raise DataError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
    rng = np.random.default_rng(seed)
    digits, letters = concat_banks(digit_banks), concat_banks(letter_banks)
    d_test, d_train, l_test, l_train, train_writers, test_writers = split_by_writer(
        digits, letters, style.test_writer_fraction, rng)
    train = (np.flatnonzero(d_train), np.flatnonzero(l_train))
    test_index = (np.flatnonzero(d_test), np.flatnonzero(l_test))
    train_d, train_l = digits.subset(train[0]), letters.subset(train[1])
    with torch.no_grad():
        labeled = _reindex(compose(train_d, train_l, n_labeled, rng, style), *train)
        unlabeled = _reindex(compose(train_d, train_l, n_unlabeled, rng, style), *train)
        test = _reindex(compose(digits.subset(test_index[0]), letters.subset(test_index[1]), n_test, rng, style),
                        *test_index)
    return ComboSplits(labeled, unlabeled, test, frozenset(train_writers), frozenset(test_writers))


def write_combo(splits: ComboSplits, out_dir: str | Path, seed: int | None = None,
                draw_grid: GridWriter | None = None) -> list[Path]:
    """Write the original layout, plus labels_test.pkl (to score the test part),
    labels_ul.pkl (hidden labels of the unlabelled part: training never learns from
    them, it only reports how accurate its pseudo-labels were), a sample grid PNG when
    `draw_grid` is given (the data layer draws nothing itself) and the glyph index
    side files glyphs_l.npy, glyphs_ul.npy, glyphs_test.npy: (N, 2) int64, row i =
    index of image i's digit and letter glyph in the concatenated digit and letter
    banks (training holds whole glyphs out for validation with them), and
    dataset.json (the seed and the set's fingerprint, which readers check).

    The set is staged in a hidden folder inside `out_dir`, then each file is renamed
    into place, dataset.json first: a write cut short between two renames leaves files
    that the readers refuse (their fingerprint is not dataset.json's), and files in
    `out_dir` that are not the set's own are never touched."""
    import json

    from semilabel.data.fingerprint import fingerprint
    from semilabel.data.readers import DATASET_JSON
    from semilabel.io_utils import atomic_write_text, staged_folder

    final = Path(out_dir)
    managed = {*ORIGINAL_FILES.values(), *GLYPH_FILES.values(), SAMPLE_GRID, DATASET_JSON}
    with staged_folder(final, managed, first=DATASET_JSON) as out_dir:
        files = {
            ORIGINAL_FILES["labeled"]: splits.labeled.images,
            ORIGINAL_FILES["labels"]: COMBO.to_multihot(splits.labeled.labels),
            ORIGINAL_FILES["unlabeled"]: splits.unlabeled.images,
            ORIGINAL_FILES["hidden_labels"]: COMBO.to_multihot(splits.unlabeled.labels),
            ORIGINAL_FILES["test"]: splits.test.images,
            ORIGINAL_FILES["test_labels"]: COMBO.to_multihot(splits.test.labels),
        }
        written = []
        for name, array in files.items():
            if len(array) == 0:  # readers refuse empty files: leave an empty part out
                continue
            save_array_pickle(array, out_dir / name)
            written.append(out_dir / name)
        for part, name in GLYPH_FILES.items():
            glyphs = getattr(splits, part).glyphs
            if len(glyphs):
                atomic_write(out_dir / name, lambda tmp, g=glyphs: write_npy(tmp, g.astype(np.int64, copy=False)))
                written.append(out_dir / name)
        if len(splits.labeled) and draw_grid is not None:
            shown = min(48, len(splits.labeled))
            titles = [f"{d} {l}" for d, l in COMBO.names_of(splits.labeled.labels[:shown])]
            draw_grid(splits.labeled.images[:shown], titles, out_dir / SAMPLE_GRID,
                      title="Combo samples (digit letter)")
            written.append(out_dir / SAMPLE_GRID)
        facts = {"seed": seed, "counts": {p: len(getattr(splits, p)) for p in ("labeled", "unlabeled", "test")},
                 "fingerprint": fingerprint(splits)}
        atomic_write_text(out_dir / DATASET_JSON, json.dumps(facts, indent=2) + "\n")
        written.append(out_dir / DATASET_JSON)
    return [final / p.name for p in written]


def read_glyph_index(folder: str | Path) -> dict[str, np.ndarray]:
    """The glyph index side files of a generated set: part name -> (N, 2) int64; parts
    whose file is absent (data not made here, or an older set) are left out."""
    found = {part: read_glyph_ids(Path(folder) / name) for part, name in GLYPH_FILES.items()}
    return {part: ids for part, ids in found.items() if ids is not None}
