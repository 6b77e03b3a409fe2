"""Style shift: one trained run scored on test parts drawn in other styles.

Regenerates the writer split of `make-data --seed S` from the same glyph banks (the
defaults: ../shared/data, as benchmarks/runner.py uses; the same banks and
seed give the same split), checks it against the run's data (its glyph index files)
when they are there, draws a fresh test part of --n images per style from the held-out
writers (STYLE_VARIANTS: one change each from the calibrated default; font_letters uses
the built-in font letters, which no run trained on handwriting has seen), scores the
run's best checkpoint on each and writes a dated note with the table
(benchmarks/notes/DATE-style-shift-RUN.md unless --out names another file).

    python benchmarks/style_shift.py runs/default --seed 551                 # 5,000 images per style
    python benchmarks/style_shift.py runs/default --seed 551 --n 500 --styles default rotate45   # smoke run
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semilabel.data.combo import ComboImages, ComboStyle, compose, read_glyph_index, split_by_writer
from semilabel.data.glyphs import GlyphBank, concat_banks
from semilabel.data.style_variants import FONT_LETTERS, STYLE_VARIANTS, style_variant
from semilabel.errors import DataError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
NOTES = HERE / "notes"


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
    from semilabel.models.checkpoint import model_from_checkpoint

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


# ---- the note ---------------------------------------------------------------------------------
def commit() -> str:
    """The checkout's short commit hash, or "an unknown commit" outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"


def machine(device: str) -> str:
    """What scored: the GPU's name, or the CPU cores and architecture."""
    from semilabel.predict import cpu_count

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name(torch.device(device))}"
    return f"{cpu_count()} CPU cores ({platform.processor() or platform.machine()})"


def default_note(run: Path, day: datetime.date) -> Path:
    """benchmarks/notes/DAY-style-shift-RUN.md, the run's folder name in kebab case."""
    slug = re.sub(r"[^a-z0-9]+", "-", run.resolve().name.lower()).strip("-") or "run"
    return NOTES / f"{day.isoformat()}-style-shift-{slug}.md"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, metavar="RUN_DIR", help="trained run folder (best.pt)")
    p.add_argument("--seed", type=int, required=True, help="the --seed its data was made with (make-data)")
    p.add_argument("--digits", nargs="+", type=Path,
                   default=[SHARED / "digits_mnist.npz", SHARED / "digits_unipen.npz"], help="digit glyph banks")
    p.add_argument("--letters", nargs="+", type=Path, default=[SHARED / "letters_unipen.npz"], help="letter glyph banks")
    p.add_argument("--n", type=int, default=5000, help="test images per style")
    p.add_argument("--styles", nargs="+", default=list(STYLE_VARIANTS), choices=list(STYLE_VARIANTS))
    p.add_argument("--font-variants", type=int, default=5, help="distorted copies per font for font_letters")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="markdown file to write (default: benchmarks/notes/DATE-style-shift-RUN.md)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def run(args: argparse.Namespace) -> str:
    """Score every style and return the note (also written to --out)."""
    from semilabel.data.embedded import embedded_letter_bank
    from semilabel.data.glyphs import load_glyph_bank
    from semilabel.io_utils import atomic_write_text
    from semilabel.models.checkpoint import load_checkpoint, resolve_checkpoint

    started, today = time.monotonic(), datetime.date.today()
    digits = [load_glyph_bank(p, 10) for p in args.digits]
    letters = [load_glyph_bank(p, 26) for p in args.letters]
    held_out = held_out_writers(digits, letters, args.seed)
    checkpoint = resolve_checkpoint(args.run)
    data = load_checkpoint(checkpoint).get("data")
    checked = bool(data) and Path(data).is_dir() and check_split(data, held_out, args.seed)
    fonts = embedded_letter_bank(args.font_variants) if FONT_LETTERS in args.styles else None
    scores = score_styles(args.run, held_out, args.seed, args.n, args.styles, fonts, args.device)
    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(__file__, ROOT), *args.argv])
    page = "\n".join([
        f"# Style shift of run `{args.run.resolve().name}`", "",
        f"Measured at commit {commit()} ({today}), {machine(args.device)}.", "",
        f"Run `{args.run}` ({checkpoint.name}), data made with `--seed {args.seed}`; "
        f"{len(held_out.writers)} held-out writers"
        + (" (split checked against the data's glyph index)." if checked else " (split not checked: no glyph index)."),
        f"Each style: {args.n} fresh test images from the held-out writers, one change from the calibrated default; "
        f"{time.monotonic() - started:.0f} s with `{command}`.", "",
        markdown_table(scores), ""])
    atomic_write_text(args.out or default_note(args.run, today), page)
    return page


def main(argv: list[str] | None = None) -> int:
    from semilabel.errors import SemilabelError

    try:
        print(run(parse(argv)))
    except SemilabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
