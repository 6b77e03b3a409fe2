"""Glyph banks: isolated 28x28 symbols that the Combo generator composes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.npy import read_npz_arrays
from semilabel.errors import DataError

GLYPH_SIDE = 28


@dataclass(frozen=True)
class GlyphBank:
    """Isolated symbols, white ink on black.

    images: (N, 28, 28) uint8; labels: (N,) int64 class index within one label group;
    writers: (N,) str identifying the hand (or font) that drew each glyph, or None
    when unknown (then images themselves are the unit of a disjoint split).
    """

    images: np.ndarray
    labels: np.ndarray
    writers: np.ndarray | None
    source: str

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.shape[1:] != (GLYPH_SIDE, GLYPH_SIDE):
            raise DataError(f"{self.source}: glyphs must be (N, 28, 28), got {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise DataError(f"{self.source}: glyphs must be uint8, got {self.images.dtype}")
        if n == 0:
            raise DataError(f"{self.source}: glyph bank is empty")
        if self.labels.shape != (n,):
            raise DataError(f"{self.source}: {n} glyphs but labels have shape {self.labels.shape}")
        if self.writers is not None and self.writers.shape != (n,):
            raise DataError(f"{self.source}: {n} glyphs but writers have shape {self.writers.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "GlyphBank":
        writers = None if self.writers is None else self.writers[index]
        return GlyphBank(self.images[index], self.labels[index], writers, self.source)


def load_glyph_bank(path: str | Path, n_classes: int) -> GlyphBank:
    """Read a glyph bank `.npz` with `x` (N,28,28) uint8, `y` (N,) and optional `writer`."""
    path = Path(path)
    npz = read_npz_arrays(path)  # each member's declared size checked against its bytes; one line on any problem
    missing = {"x", "y"} - set(npz)
    if missing:
        raise DataError(f"{path}: glyph bank lacks array(s) {sorted(missing)}")
    images, labels = npz["x"], npz["y"]
    writers = npz["writer"].astype(str) if "writer" in npz else None
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels `y` must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):  # size: y may be 0-d
        raise DataError(f"{path}: labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    return GlyphBank(images, labels, writers, str(path))


def concat_banks(banks: list[GlyphBank]) -> GlyphBank:
    """Join banks, keeping writer ids as they are so that one person's digits and
    letters (same id in two banks) land on the same side of a writer split.

    A bank without writer ids gets one pseudo-writer per image, so a writer-disjoint
    split of the result is an image-disjoint split of that bank.
    """
    writers = []
    for i, bank in enumerate(banks):
        if bank.writers is None:
            writers.append(np.char.add(f"bank{i}:{bank.source}#", np.arange(len(bank)).astype(str)))
        else:
            writers.append(bank.writers.astype(str))
    return GlyphBank(
        np.concatenate([b.images for b in banks]),
        np.concatenate([b.labels for b in banks]),
        np.concatenate(writers),
        "+".join(b.source for b in banks),
    )
