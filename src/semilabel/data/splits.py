"""The seeded split of a labelled set into training and validation positions, shared by
training (which holds the validation part out) and the report (which rebuilds it for a
run folder without val_index.npy)."""

from __future__ import annotations

import numpy as np


def split_validation(n: int, fraction: float, seed: int,
                     glyphs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) positions; at least one validation image if fraction > 0.

    With `glyphs` (N, G), the glyph each image of each group was drawn from (generated
    sets), training keeps only images that share no glyph with a validation image, so
    validation measures handwriting the network has never been taught (the images so
    left out are typically 10-15% of the labelled set at a 10% validation fraction).
    """
    order = np.random.default_rng([seed, 7919]).permutation(n)
    n_val = 0 if fraction <= 0 else max(1, int(round(fraction * n)))
    val, rest = np.sort(order[:n_val]), np.sort(order[n_val:])
    if glyphs is not None and n_val:
        shared = np.zeros(len(rest), dtype=bool)
        for g in range(glyphs.shape[1]):
            shared |= np.isin(glyphs[rest, g], glyphs[val, g])
        rest = rest[~shared]
    return rest, val
