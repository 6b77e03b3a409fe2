"""What several probes share: a generated set drawn again, and bad input as one line.

The generator records how it drew each symbol (ink boxes, turns, strokes, ink, noise
regime, layout) in memory, not on disk. Drawing a set again from the glyph banks it
was made from and the seed in its `dataset.json` gives those records back, once the
redrawn images are checked to be the ones on disk.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from semilabel.data.combo import ComboImages, make_combo
from semilabel.data.glyphs import GlyphBank
from semilabel.data.readers import DATASET_JSON, Dataset
from semilabel.errors import DataError, SemilabelError

PARTS = ("labeled", "unlabeled", "test")


def dataset_seed(folder: Path) -> int:
    """The seed `make-data` recorded in `folder`'s dataset.json."""
    path = Path(folder) / DATASET_JSON
    try:
        return int(json.loads(path.read_text())["seed"])
    except FileNotFoundError:
        raise DataError(f"{path}: missing; a generated set (make-data) is needed") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: no readable seed ({exc.__class__.__name__})") from None


def redraw_parts(folder: Path, data: Dataset, digit_banks: Sequence[GlyphBank], letter_banks: Sequence[GlyphBank],
                 parts: Sequence[str]) -> dict[str, ComboImages]:
    """`parts` of the set in `folder` (read as `data`) drawn again from the banks and its
    seed, each checked image for image against the one on disk (DataError naming the
    part where they differ: other banks, another seed, or a set not made by make-data)."""
    seed = dataset_seed(folder)
    counts = {p: len(getattr(data, p)) if getattr(data, p) is not None else 0 for p in PARTS}
    splits = make_combo(list(digit_banks), list(letter_banks), counts["labeled"], counts["unlabeled"],
                        counts["test"], seed)
    drawn = {}
    for part in parts:
        on_disk = getattr(data, part)
        drawn[part] = getattr(splits, part)
        if on_disk is None or not np.array_equal(drawn[part].images, on_disk.images):
            raise DataError(f"{folder}: its {part} images are not the ones these glyph banks and seed {seed} draw")
    return drawn


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a probe's `main(argv)`; bad input (a SemilabelError) is one line on stderr and exit status 2."""
    try:
        main(argv)
    except SemilabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
