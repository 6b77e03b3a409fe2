"""Style shift: one trained run scored on test parts drawn in other styles.

Regenerates the writer split of `make-data --seed S` from the same glyph banks (the
defaults: ../shared/data, as benchmarks/train_benchmark.py uses), checks it against
the run's data (its glyph index files) when they are there, draws a fresh test part
of --n images per style from the held-out writers (STYLE_VARIANTS: one change each
from the calibrated default; font_letters uses the built-in font letters, which no
run trained on handwriting has seen), scores the run's best checkpoint on each and
writes a markdown table.

    python benchmarks/style_shift.py runs/default --seed 551                 # 5,000 images per style
    python benchmarks/style_shift.py runs/default --seed 551 --n 500 --styles default rotate45   # smoke run
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
RESULTS = HERE / "RESULTS-style-shift.md"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from semilabel.data.style_variants import STYLE_VARIANTS

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
    p.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def run(args: argparse.Namespace) -> str:
    """Score every style and return the markdown page (also written to --out)."""
    from semilabel.data.embedded import embedded_letter_bank
    from semilabel.data.glyphs import load_glyph_bank
    from semilabel.data.style_variants import FONT_LETTERS
    from semilabel.io_utils import atomic_write_text
    from semilabel.style_shift import check_split, held_out_writers, markdown_table, score_styles
    from semilabel.train.checkpoint import load_checkpoint, resolve_checkpoint

    started = time.monotonic()
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
        "# Style shift", "",
        f"Run `{args.run}` ({checkpoint.name}), data made with `--seed {args.seed}`; "
        f"{len(held_out.writers)} held-out writers"
        + (" (split checked against the data's glyph index)." if checked else " (split not checked: no glyph index)."),
        f"Each style: {args.n} fresh test images from the held-out writers, one change from the calibrated default. "
        f"Measured {datetime.date.today()} in {time.monotonic() - started:.0f} s with `{command}`.", "",
        markdown_table(scores), ""])
    atomic_write_text(args.out, page)
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
