"""The built-in second example task, `numbers`: a two-digit number in one of four inks.

Each image is 40x64 (H x W) RGB: the tens digit then the units digit, MNIST glyphs
from the built-in bank (no download), each scaled, turned a little and jittered, drawn
in red, green, blue or yellow on a noisy, shaded background of a random dull colour.
Three label groups: tens (10 classes), units (10), ink (4). The test part is drawn
from glyphs that no labelled or unlabelled image uses, so it measures reading unseen
handwriting. Written as an image folder, the layout a user brings for a task of their
own: PNGs with labels.csv and schema.yaml, `unlabeled/` and `test/` (with its own
labels.csv) beside them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.folders import LABELS_CSV
from semilabel.data.glyphs import GLYPH_SIDE, GlyphBank
from semilabel.data.readers import DATASET_JSON, ImageSet
from semilabel.data.schema import SCHEMA_YAML, LabelGroup, LabelSchema, schema_yaml_text
from semilabel.errors import DataError

HEIGHT, WIDTH = 40, 64
INK_NAMES = ("red", "green", "blue", "yellow")
INK_RGB = np.array([[215, 35, 35], [35, 165, 55], [45, 85, 225], [230, 200, 30]], np.float32)  # before jitter
NUMBERS = LabelSchema((
    LabelGroup("tens", tuple("0123456789")),
    LabelGroup("units", tuple("0123456789")),
    LabelGroup("ink", INK_NAMES),
))
TEST_GLYPH_FRACTION = 0.2  # of each digit's glyphs, kept for the test part only
SAMPLE_GRID = "samples.png"
NAME_DIGITS = 6  # image files are 000000.png ...; a part holds at most 999,999 images
MAX_IMAGES = 10**NAME_DIGITS - 1
_NAME_PATTERN = "[0-9]" * NAME_DIGITS + ".png"
_CHUNK = 1024  # images rendered per batch (about 30 MB of float32)
GridWriter = Callable[..., None]  # (images, captions, PNG path, title=...): plots.save_image_grid


@dataclass(frozen=True)
class NumbersSplits:
    """The three parts in memory; `unlabeled.labels` are the hidden labels (not written)."""

    labeled: ImageSet
    unlabeled: ImageSet
    test: ImageSet


def make_numbers(digits: GlyphBank, n_labeled: int = 3000, n_unlabeled: int = 3000, n_test: int = 1000,
                 seed: int = 0) -> NumbersSplits:
    """Draw the three parts from `digits` (labels 0..9); the same seed gives the same images."""
    import torch

    for name, value, low in (("n_labeled", n_labeled, 1), ("n_unlabeled", n_unlabeled, 0), ("n_test", n_test, 0)):
        if not low <= value <= MAX_IMAGES:
            raise DataError(f"--{name.replace('_', '-')} must be {low} to {MAX_IMAGES:,}, got {value}")
    rng = np.random.default_rng(seed)
    train_glyphs, test_glyphs = _split_glyphs(digits, rng)
    parts = []
    with torch.no_grad():
        for n, pool in ((n_labeled, train_glyphs), (n_unlabeled, train_glyphs), (n_test, test_glyphs)):
            parts.append(_draw(digits, pool, n, rng))
    return NumbersSplits(*(ImageSet(images, labels, f"numbers:{part}")
                           for (images, labels), part in zip(parts, ("labeled", "unlabeled", "test"))))


def _split_glyphs(digits: GlyphBank, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per digit class, glyph indices for training parts and (disjoint) for the test part."""
    train, test = [], []
    for c in range(10):
        index = rng.permutation(np.flatnonzero(digits.labels == c))
        if len(index) < 2:
            raise DataError(f"{digits.source}: needs at least 2 glyphs of digit {c}, has {len(index)}")
        cut = max(1, int(round(len(index) * TEST_GLYPH_FRACTION)))
        test.append(index[:cut])
        train.append(index[cut:])
    return train, test


def _draw(digits: GlyphBank, pool: list[np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 40, 64, 3) uint8 and their labels (n, 3) int64: tens, units, ink."""
    labels = np.stack([rng.integers(0, 10, n), rng.integers(0, 10, n), rng.integers(0, len(INK_NAMES), n)], axis=1)
    images = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        images[start:stop] = _render(digits, pool, labels[start:stop], rng)
    return images, labels.astype(np.int64)


def _render(digits: GlyphBank, pool: list[np.ndarray], labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    n = len(labels)
    ink = np.zeros((n, HEIGHT, WIDTH), np.float32)  # coverage 0..1 of both digits
    for slot, centre_x in ((0, 20.0), (1, 44.0)):  # tens on the left, units on the right
        picks = np.empty(n, np.int64)
        for c in range(10):
            rows = np.flatnonzero(labels[:, slot] == c)
            picks[rows] = pool[c][rng.integers(0, len(pool[c]), len(rows))]
        glyphs = torch.from_numpy(digits.images[picks].astype(np.float32) / 255).unsqueeze(1)  # (n, 1, 28, 28)
        scale = rng.uniform(1.05, 1.45, n)  # a 20 px MNIST digit becomes 21-29 px tall
        angle = np.deg2rad(np.clip(rng.normal(0, 7, n), -15, 15))
        cx = centre_x + rng.normal(0, 1.8, n)
        cy = HEIGHT / 2 + rng.normal(0, 1.8, n)
        grid = torch.from_numpy(_grid(_affine(scale, angle, cx, cy)))
        drawn = F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        ink = np.maximum(ink, drawn[:, 0].numpy())
    colour = np.clip(INK_RGB[labels[:, 2]] + _f32(rng.normal(0, 14, (n, 3))), 0, 255)  # (n, 3)
    background = _background(n, rng)  # (n, H, W, 3)
    alpha = np.clip(ink * _f32(rng.uniform(1.0, 1.4, (n, 1, 1))), 0, 1)[..., None]
    image = background * (1 - alpha) + colour[:, None, None, :] * alpha
    image += rng.standard_normal(image.shape, dtype=np.float32) * _f32(rng.uniform(3, 14, (n, 1, 1, 1)))
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)


def _f32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)  # the per-image draws; every (n, H, W, 3) array stays float32


def _grid(theta: np.ndarray) -> np.ndarray:
    """`affine_grid(theta, (n, 1, 40, 64), align_corners=False)` in NumPy: (n, H, W, 2)
    float32 (torch's own is slow under thread contention, and this is a few products)."""
    xs = (2 * np.arange(WIDTH, dtype=np.float32) + 1) / WIDTH - 1  # pixel centres, normalised
    ys = (2 * np.arange(HEIGHT, dtype=np.float32) + 1) / HEIGHT - 1
    t = theta[:, :, :, None, None]  # (n, 2, 3, 1, 1)
    grid = t[:, :, 0] * xs[None, None, None, :] + t[:, :, 1] * ys[None, None, :, None] + t[:, :, 2]  # (n, 2, H, W)
    return np.ascontiguousarray(grid.transpose(0, 2, 3, 1), dtype=np.float32)


def _affine(scale: np.ndarray, angle: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """(n, 2, 3) theta for an affine grid (align_corners=False): the 28x28 glyph's centre
    lands at (cx, cy) of the 40x64 canvas (pixel units, edges at 0), turned by `angle`
    and enlarged `scale` times. Output offset (dU, dV) from the centre reads the glyph at
    R(-angle) (dU, dV) / scale; normalised coordinates span half a side per unit."""
    half_w, half_h, half_g = WIDTH / 2, HEIGHT / 2, GLYPH_SIDE / 2
    cos, sin = np.cos(angle), np.sin(angle)
    k = 1.0 / (half_g * scale)
    du, dv = half_w - cx, half_h - cy  # offset of the canvas centre from the glyph centre
    theta = np.stack([
        np.stack([k * cos * half_w, k * sin * half_h, k * (cos * du + sin * dv)], axis=1),
        np.stack([-k * sin * half_w, k * cos * half_h, k * (-sin * du + cos * dv)], axis=1),
    ], axis=1)
    return theta.astype(np.float32)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    """A dull random colour per image with a linear shade across it: (n, H, W, 3) float32."""
    level = _f32(rng.uniform(15, 115, (n, 1, 1, 1)))
    tint = _f32(rng.normal(0, 14, (n, 1, 1, 3)))  # dull: a tint too strong could hide an ink of its hue
    ys = np.linspace(-1, 1, HEIGHT, dtype=np.float32)[None, :, None, None]
    xs = np.linspace(-1, 1, WIDTH, dtype=np.float32)[None, None, :, None]
    shade = _f32(rng.normal(0, 10, (n, 1, 1, 3))) * xs + _f32(rng.normal(0, 10, (n, 1, 1, 3))) * ys
    return level + tint + shade


# ---- writing ------------------------------------------------------------------------
def managed_files() -> set[str]:
    """The names a numbers set owns in its folder (see `io_utils.staged_folder`)."""
    return {LABELS_CSV, SCHEMA_YAML, DATASET_JSON, SAMPLE_GRID, _NAME_PATTERN,
            f"unlabeled/{_NAME_PATTERN}", f"test/{LABELS_CSV}", f"test/{_NAME_PATTERN}"}


def write_numbers(splits: NumbersSplits, out_dir: str | Path, seed: int | None = None,
                  draw_grid: GridWriter | None = None) -> Path:
    """Write the image folder: labelled PNGs with labels.csv and schema.yaml, then
    `unlabeled/` (images only) and `test/` (with labels.csv), a sample grid when
    `draw_grid` is given, and dataset.json (the seed and the set's fingerprint, which
    the readers check).

    The set is staged inside `out_dir` and renamed into place file by file, dataset.json
    first: a write cut short leaves a set the readers refuse, and files in `out_dir` or
    its subfolders that are not the set's own are never touched."""
    from semilabel.data.fingerprint import fingerprint
    from semilabel.data.readers import Dataset
    from semilabel.io_utils import atomic_write_text, staged_folder

    written = Dataset(splits.labeled, _without_labels(splits.unlabeled), splits.test, NUMBERS)
    with staged_folder(out_dir, managed_files(), first=DATASET_JSON) as staged:
        _write_part(staged, splits.labeled, labelled=True)
        atomic_write_text(staged / SCHEMA_YAML, schema_yaml_text(NUMBERS))
        for name, part, labelled in (("unlabeled", splits.unlabeled, False), ("test", splits.test, True)):
            if len(part):
                (staged / name).mkdir()
                _write_part(staged / name, part, labelled)
        if draw_grid is not None:
            shown = min(48, len(splits.labeled))
            captions = [" ".join(names) for names in NUMBERS.names_of(splits.labeled.labels[:shown])]
            draw_grid(splits.labeled.images[:shown], captions, staged / SAMPLE_GRID,
                      title="numbers samples (tens units ink)")
        facts = {"task": "numbers", "seed": seed,
                 "counts": {p: len(getattr(splits, p)) for p in ("labeled", "unlabeled", "test")},
                 "fingerprint": fingerprint(written)}
        atomic_write_text(staged / DATASET_JSON, json.dumps(facts, indent=2) + "\n")
    return Path(out_dir)


def _without_labels(part: ImageSet) -> ImageSet:
    return ImageSet(part.images, None, part.source)


def _write_part(folder: Path, part: ImageSet, labelled: bool) -> None:
    """PNGs 000000.png ... and, for a labelled part, labels.csv naming them."""
    from PIL import Image

    names = [f"{i:0{NAME_DIGITS}d}.png" for i in range(len(part))]
    for name, image in zip(names, part.images):
        Image.fromarray(image).save(folder / name)
    if labelled:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", *NUMBERS.names])
        writer.writerows([name, *classes] for name, classes in zip(names, NUMBERS.names_of(part.labels)))
        (folder / LABELS_CSV).write_text(out.getvalue())
