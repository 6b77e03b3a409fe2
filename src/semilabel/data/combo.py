"""The Combo generator: one digit and one letter glyph on a noisy 56x56 canvas.

Each image gets a digit and a letter (classes drawn uniformly), each scaled to a
random height of 12-20 px, slightly rotated, with random stroke thickness and ink
strength, placed side by side, stacked or diagonally (sometimes touching or
overlapping), anywhere on the canvas; then one of four noise regimes: clean, sparse
bright dots, dense bright dots, or a grey grainy background.

Training/unlabelled images and test images come from disjoint writers, so test
accuracy measures reading new hands. Glyph warping is batched with
`torch.nn.functional.grid_sample`; all randomness comes from one seeded NumPy
generator, so a seed gives byte-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semilabel.data.augment import affine_grid
from semilabel.data.glyphs import GLYPH_SIDE, GlyphBank, concat_banks
from semilabel.data.readers import ORIGINAL_FILES
from semilabel.data.safe_pickle import save_array_pickle
from semilabel.data.schema import COMBO
from semilabel.errors import DataError

CANVAS = 56
NOISE_REGIMES = ("clean", "sparse_dots", "dense_dots", "grainy")
LAYOUTS = ("side_by_side", "stacked", "diagonal")
SAMPLE_GRID = "samples.png"
_CHUNK = 4096  # images warped per grid_sample call


@dataclass(frozen=True)
class ComboStyle:
    """Knobs of the generator; the defaults imitate the original data."""

    height_range: tuple[float, float] = (12.0, 20.0)  # symbol ink height, px
    max_rotation_deg: float = 10.0
    gap_range: tuple[float, float] = (0.8, 1.3)  # centre distance / half-extents: <1 touches or overlaps
    layout_probs: tuple[float, float, float] = (0.45, 0.25, 0.30)  # LAYOUTS
    thickness_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)  # as drawn, dilate 2x2, dilate 3x3
    noise_probs: tuple[float, float, float, float] = (0.3, 0.2, 0.2, 0.3)  # NOISE_REGIMES
    sparse_density: tuple[float, float] = (0.005, 0.02)  # fraction of pixels lit
    dense_density: tuple[float, float] = (0.04, 0.10)
    grain_mean: tuple[float, float] = (40.0, 90.0)  # grey level of the grainy background
    grain_std: tuple[float, float] = (20.0, 45.0)
    test_writer_fraction: float = 0.2


@dataclass(frozen=True)
class ComboImages:
    """Generated images with their labels and what made them (for tests and plots)."""

    images: np.ndarray  # (N, 56, 56) uint8
    labels: np.ndarray  # (N, 2) int64: digit, letter
    noise: np.ndarray  # (N,) int64 index into NOISE_REGIMES
    layout: np.ndarray  # (N,) int64 index into LAYOUTS
    boxes: np.ndarray  # (N, 2, 4) float32 ink boxes x0, y0, x1, y1 of digit and letter
    writers: np.ndarray  # (N, 2) str: writer of the digit and of the letter

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
def ink_boxes(images: np.ndarray, threshold: int = 40) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 4) float32 x0, y0, x1, y1 of pixels above threshold
    (x1, y1 exclusive). An empty glyph gets the whole frame."""
    ink = images > threshold
    cols, rows = ink.any(axis=1), ink.any(axis=2)  # (N, 28) each
    side = images.shape[1]

    def span(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _thicken(glyphs: torch.Tensor, kind: np.ndarray) -> torch.Tensor:
    """Grayscale dilation: kind 0 as drawn, 1 a 2x2 max filter, 2 a 3x3 one. (N,1,28,28)"""
    out = glyphs.clone()
    for k, size in ((1, 2), (2, 3)):
        idx = torch.from_numpy(np.flatnonzero(kind == k))
        if len(idx):
            pad = (0, 1, 0, 1) if size == 2 else (1, 1, 1, 1)
            out[idx] = F.max_pool2d(F.pad(glyphs[idx], pad), size, stride=1)
    return out


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


def _layout_offsets(layout: np.ndarray, size_a: np.ndarray, size_b: np.ndarray, style: ComboStyle,
                    rng: np.random.Generator) -> np.ndarray:
    """Centre-to-centre offset (N, 2) from the first symbol to the second, in pixels.
    size_*: (N, 2) width, height of each symbol on the canvas."""
    n = len(layout)
    half = (size_a + size_b) / 2  # (N, 2)
    gap = rng.uniform(*style.gap_range, size=n)
    jitter = rng.uniform(-0.35, 0.35, size=(n, 2))
    sign = rng.choice([-1.0, 1.0], size=(n, 2))
    dx = np.select([layout == 0, layout == 1], [gap * half[:, 0], jitter[:, 0] * half[:, 0]], 0.75 * gap * half[:, 0])
    dy = np.select([layout == 0, layout == 1], [jitter[:, 1] * half[:, 1], gap * half[:, 1]], 0.75 * gap * half[:, 1])
    return np.stack([dx, dy], axis=1) * sign


def _add_noise(canvas: np.ndarray, regime: np.ndarray, style: ComboStyle, rng: np.random.Generator) -> np.ndarray:
    """Apply each image's noise regime to float canvases (N, 56, 56) in 0-255."""
    n = len(canvas)
    out = canvas
    dotted = np.flatnonzero((regime == 1) | (regime == 2))
    if len(dotted):
        sparse = regime[dotted] == 1
        density = np.where(sparse, rng.uniform(*style.sparse_density, len(dotted)),
                           rng.uniform(*style.dense_density, len(dotted))).astype(np.float32)[:, None, None]
        uniform = rng.random((len(dotted), CANVAS, CANVAS), dtype=np.float32)
        levels = 180 + 75 * rng.random((len(dotted), CANVAS, CANVAS), dtype=np.float32)
        part = out[dotted]
        part = np.where(uniform < density, np.maximum(part, levels), part)  # bright salt
        out[dotted] = np.where(uniform > 1 - density / 3, part * 0.2, part)  # dark pepper, rarer
    grainy = np.flatnonzero(regime == 3)
    if len(grainy):
        mean = rng.uniform(*style.grain_mean, size=(len(grainy), 1, 1)).astype(np.float32)
        std = rng.uniform(*style.grain_std, size=(len(grainy), 1, 1)).astype(np.float32)
        background = np.clip(mean + std * rng.standard_normal((len(grainy), CANVAS, CANVAS), dtype=np.float32), 0, 255)
        ink = out[grainy]
        out[grainy] = np.clip(ink + background * (1 - ink / 255), 0, 255)
    assert out.shape == (n, CANVAS, CANVAS)
    return out


def compose(digits: GlyphBank, letters: GlyphBank, n: int, rng: np.random.Generator,
            style: ComboStyle = ComboStyle()) -> ComboImages:
    """Compose `n` Combo images from the two banks (any writers in them)."""
    parts = [_compose_chunk(digits, letters, min(_CHUNK, n - start), rng, style) for start in range(0, n, _CHUNK)]
    if not parts:
        parts = [_compose_chunk(digits, letters, 0, rng, style)]
    return ComboImages(*(np.concatenate(arrays) for arrays in zip(*(
        (p.images, p.labels, p.noise, p.layout, p.boxes, p.writers) for p in parts))))


def _compose_chunk(digits: GlyphBank, letters: GlyphBank, n: int, rng: np.random.Generator,
                   style: ComboStyle) -> ComboImages:
    picks = [_pick_by_class(digits, 10, n, rng), _pick_by_class(letters, 26, n, rng)]
    banks = (digits, letters)
    layout = rng.choice(len(LAYOUTS), size=n, p=style.layout_probs)
    digit_first = rng.random(n) < 0.5
    sizes, scales, angles, centres_src, glyphs = [], [], [], [], []
    for bank, pick in zip(banks, picks):
        box = ink_boxes(bank.images[pick])  # (n, 4)
        width, height = np.maximum(box[:, 2] - box[:, 0], 1), np.maximum(box[:, 3] - box[:, 1], 1)
        target = rng.uniform(*style.height_range, size=n)
        scale = np.minimum(target / height, 24.0 / width)  # very wide glyphs stay on the canvas
        scales.append(scale)
        angles.append(np.deg2rad(rng.uniform(-style.max_rotation_deg, style.max_rotation_deg, size=n)))
        sizes.append(np.stack([width * scale, height * scale], axis=1))
        centres_src.append(np.stack([(box[:, 0] + box[:, 2]) / 2 - 0.5, (box[:, 1] + box[:, 3]) / 2 - 0.5], axis=1))
        thickness = rng.choice(3, size=n, p=style.thickness_probs)
        glyphs.append(_thicken(torch.from_numpy(bank.images[pick]).float().unsqueeze(1), thickness))
    first = np.where(digit_first[:, None], sizes[0], sizes[1])
    second = np.where(digit_first[:, None], sizes[1], sizes[0])
    offset = _layout_offsets(layout, first, second, style, rng)
    # Union box of both symbols around the first symbol's centre; shrink the offset if too big.
    lo = np.minimum(-first / 2, offset - second / 2)
    hi = np.maximum(first / 2, offset + second / 2)
    span = hi - lo
    too_big = np.maximum(span.max(axis=1) / (CANVAS - 4), 1.0)
    offset = offset / too_big[:, None]
    lo = np.minimum(-first / 2, offset - second / 2)
    hi = np.maximum(first / 2, offset + second / 2)
    room = np.maximum(CANVAS - 2 - (hi - lo), 0)
    centre_first = 1 - lo + rng.random((n, 2)) * room  # canvas position of the first centre
    centre_second = centre_first + offset
    centres = [np.where(digit_first[:, None], centre_first, centre_second),
               np.where(digit_first[:, None], centre_second, centre_first)]
    ink = rng.uniform(170, 255, size=(n, 2))
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.float32)
    boxes = np.empty((n, 2, 4), dtype=np.float32)
    for s in range(2):
        placed = _warp(glyphs[s], centres_src[s], centres[s] - 0.5, scales[s], angles[s])[:, 0].numpy()
        canvas = np.maximum(canvas, placed * (ink[:, s, None, None] / 255))
        boxes[:, s, :2] = centres[s] - sizes[s] / 2
        boxes[:, s, 2:] = centres[s] + sizes[s] / 2
    noise = rng.choice(len(NOISE_REGIMES), size=n, p=style.noise_probs)
    canvas = _add_noise(canvas, noise, style, rng)
    return ComboImages(
        images=np.clip(np.rint(canvas), 0, 255).astype(np.uint8),
        labels=np.stack([digits.labels[picks[0]], letters.labels[picks[1]]], axis=1).astype(np.int64),
        noise=noise.astype(np.int64),
        layout=layout.astype(np.int64),
        boxes=boxes,
        writers=np.stack([digits.writers[picks[0]], letters.writers[picks[1]]], axis=1),
    )


def make_combo(digit_banks: list[GlyphBank], letter_banks: list[GlyphBank], n_labeled: int = 30000,
               n_unlabeled: int = 30000, n_test: int = 15000, seed: int = 0,
               style: ComboStyle = ComboStyle()) -> ComboSplits:
    """Labelled and unlabelled images from training writers, test images from the others."""
    for name, value in (("n_labeled", n_labeled), ("n_unlabeled", n_unlabeled), ("n_test", n_test)):
        if value < 0:
            raise DataError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
    rng = np.random.default_rng(seed)
    digits, letters = concat_banks(digit_banks), concat_banks(letter_banks)
    d_test, d_train, l_test, l_train, train_writers, test_writers = split_by_writer(
        digits, letters, style.test_writer_fraction, rng)
    train_d, train_l = digits.subset(d_train), letters.subset(l_train)
    with torch.no_grad():
        labeled = compose(train_d, train_l, n_labeled, rng, style)
        unlabeled = compose(train_d, train_l, n_unlabeled, rng, style)
        test = compose(digits.subset(d_test), letters.subset(l_test), n_test, rng, style)
    return ComboSplits(labeled, unlabeled, test, frozenset(train_writers), frozenset(test_writers))


def write_combo(splits: ComboSplits, out_dir: str | Path, seed: int | None = None) -> list[Path]:
    """Write the original layout, plus labels_test.pkl (to score the test part),
    labels_ul.pkl (hidden labels of the unlabelled part: training never learns from
    them, it only reports how accurate its pseudo-labels were), a sample grid PNG and
    dataset.json (the seed and the set's fingerprint, which readers check).

    The set is written into a temporary folder that then replaces `out_dir` whole, so
    an interrupted write never leaves images of one set beside labels of another."""
    import json

    from semilabel.data.fingerprint import fingerprint
    from semilabel.data.readers import DATASET_JSON
    from semilabel.io_utils import atomic_write_text, staged_folder

    final = Path(out_dir)
    managed = {*ORIGINAL_FILES.values(), SAMPLE_GRID, DATASET_JSON}
    with staged_folder(final, managed) as out_dir:
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
        if len(splits.labeled):
            from semilabel.plots import save_image_grid

            shown = min(48, len(splits.labeled))
            titles = [f"{d} {l}" for d, l in COMBO.names_of(splits.labeled.labels[:shown])]
            save_image_grid(splits.labeled.images[:shown], titles, out_dir / SAMPLE_GRID,
                            title="Combo samples (digit letter)")
            written.append(out_dir / SAMPLE_GRID)
        facts = {"seed": seed, "counts": {p: len(getattr(splits, p)) for p in ("labeled", "unlabeled", "test")},
                 "fingerprint": fingerprint(splits)}
        atomic_write_text(out_dir / DATASET_JSON, json.dumps(facts, indent=2) + "\n")
        written.append(out_dir / DATASET_JSON)
    return [final / p.name for p in written]
