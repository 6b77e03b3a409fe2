"""Style shift: score one trained run on test parts generated in other styles.

The test writers are those `make-data --seed S` held out (the same banks and seed
give the same writer split); each style draws a fresh test part from their glyphs.
`benchmarks/style_shift.py` is the command-line wrapper.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semilabel.data.combo import ComboImages, ComboStyle, compose, read_glyph_index, split_by_writer
from semilabel.data.glyphs import GlyphBank, concat_banks
from semilabel.data.style_variants import FONT_LETTERS, STYLE_VARIANTS, style_variant
from semilabel.errors import DataError


@dataclass(frozen=True)
class HeldOut:
    """The glyphs of the held-out writers, indexed as in the concatenated banks."""

    digits: GlyphBank
    letters: GlyphBank
    digit_index: np.ndarray  # positions of `digits` in the concatenated digit banks
    letter_index: np.ndarray
    writers: frozenset[str]


@dataclass(frozen=True)
class StyleScore:
    style: str
    count: int
    exact: float
    digit: float
    letter: float


def held_out_writers(digit_banks: list[GlyphBank], letter_banks: list[GlyphBank], seed: int,
                     style: ComboStyle = ComboStyle()) -> HeldOut:
    """The writer split of `make_combo(digit_banks, letter_banks, seed=seed)`: its first draws."""
    digits, letters = concat_banks(digit_banks), concat_banks(letter_banks)
    d_test, _, l_test, _, _, writers = split_by_writer(digits, letters, style.test_writer_fraction,
                                                       np.random.default_rng(seed))
    d_index, l_index = np.flatnonzero(d_test), np.flatnonzero(l_test)
    return HeldOut(digits.subset(d_index), letters.subset(l_index), d_index, l_index, frozenset(writers))


def check_split(data_dir: str | Path, held_out: HeldOut, seed: int) -> bool:
    """Check against the glyph index files of the run's data that the regenerated split
    is the one it was made with: every test glyph held out, no labelled one. False when
    the data has no glyph index (nothing to check); DataError when they disagree."""
    index = read_glyph_index(data_dir)
    if not index:
        return False
    digits, letters = set(held_out.digit_index.tolist()), set(held_out.letter_index.tolist())
    for part, inside in (("test", True), ("labeled", False), ("unlabeled", False)):
        if part not in index:
            continue
        in_digits, in_letters = np.isin(index[part][:, 0], list(digits)), np.isin(index[part][:, 1], list(letters))
        agrees = (in_digits & in_letters).all() if inside else not (in_digits | in_letters).any()
        if not agrees:
            raise DataError(f"{data_dir}: its {part} glyphs do not match the writer split of --seed {seed} with these "
                            f"glyph banks; give the seed and banks the data was made with")
    return True


def style_images(held_out: HeldOut, name: str, n: int, seed: int,
                 font_letters: GlyphBank | None = None) -> ComboImages:
    """A test part of `n` images of style `name` from the held-out writers (for
    `font_letters`, letters from `font_letters` instead). Same arguments, same images."""
    style = style_variant(name)
    letters = held_out.letters
    if name == FONT_LETTERS:
        if font_letters is None:
            raise DataError("the font_letters style needs a font letter bank")
        letters = font_letters
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    with torch.no_grad():
        return compose(held_out.digits, letters, n, rng, style)


def score_styles(run_dir: str | Path, held_out: HeldOut, seed: int, n: int = 5000,
                 styles: list[str] | None = None, font_letters: GlyphBank | None = None,
                 device: str = "cpu", batch_size: int = 512) -> list[StyleScore]:
    """Score the run's best checkpoint on a fresh test part per style."""
    from semilabel.evaluate import evaluate_indices
    from semilabel.predict import predict_images
    from semilabel.train.checkpoint import model_from_checkpoint

    model, _, schema = model_from_checkpoint(run_dir)
    scores = []
    for name in styles or list(STYLE_VARIANTS):
        part = style_images(held_out, name, n, seed, font_letters)
        pred = predict_images(model, part.images, f"style {name}", batch_size, device=device)
        result = evaluate_indices(pred.indices, part.labels, schema)
        scores.append(StyleScore(name, result.count, result.exact.accuracy, result.groups["digit"].score.accuracy,
                                 result.groups["letter"].score.accuracy))
    return scores


def markdown_table(scores: list[StyleScore]) -> str:
    """style | what changes | exact | digit | letter | exact vs in-style (points), then the
    worst style and the spread."""
    base = next((s.exact for s in scores if s.style == "default"), None)
    lines = ["| style | what changes | images | exact | digit | letter | exact vs in-style |",
             "|---|---|---|---|---|---|---|"]
    for s in scores:
        delta = "–" if base is None or s.style == "default" else f"{100 * (s.exact - base):+.1f}"
        lines.append(f"| {s.style} | {STYLE_VARIANTS[s.style][0]} | {s.count} | {s.exact:.2%} | {s.digit:.2%} | "
                     f"{s.letter:.2%} | {delta} |")
    others = [s for s in scores if s.style != "default"]
    if base is not None and others:
        worst = min(others, key=lambda s: s.exact)
        spread = max(s.exact for s in scores) - min(s.exact for s in scores)
        lines.append("")
        lines.append(f"Worst style: {worst.style} ({100 * (worst.exact - base):+.1f} points against in-style); "
                     f"spread of exact-match over the styles: {100 * spread:.1f} points.")
    return "\n".join(lines)
