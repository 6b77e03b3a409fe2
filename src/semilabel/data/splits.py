"""The seeded split of a labelled set into training and validation positions, shared by
training (which holds the validation part out) and the report (which rebuilds it for a
run folder without val_index.npy)."""

from __future__ import annotations

import numpy as np

VAL_MAX_SHARE = 0.2  # the validation floor never takes more than this share of the labelled images


def split_validation(n: int, fraction: float, seed: int, glyphs: np.ndarray | None = None, *,
                     keep: int | None = None, val_min: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) positions; at least one validation image if fraction > 0.

    `keep` < n keeps a seeded `keep` of the n labelled images (the label curve: the others
    join the unlabelled pool, as every position in neither part does). Validation is
    `fraction` of the kept images, raised to `val_min` images where that is more, but
    never past VAL_MAX_SHARE of them: with 1,000 labels a 5% split is 50 images, whose
    exact-match is +-14 points (95%), 200 images give +-7.

    With `glyphs` (N, G), the glyph each image of each group was drawn from (generated
    sets), training keeps only images that share no glyph with a validation image, so
    validation measures handwriting the network has never been taught (the images so
    left out are typically 10-15% of the labelled set at a 10% validation fraction).
    """
    kept = np.arange(n)
    if keep is not None and keep < n:
        kept = np.sort(np.random.default_rng([seed, 104729]).permutation(n)[:keep])
    m = len(kept)
    order = kept[np.random.default_rng([seed, 7919]).permutation(m)]
    n_val = validation_size(m, fraction, val_min)
    val, rest = np.sort(order[:n_val]), np.sort(order[n_val:])
    if glyphs is not None and n_val:
        shared = np.zeros(len(rest), dtype=bool)
        for g in range(glyphs.shape[1]):
            shared |= np.isin(glyphs[rest, g], glyphs[val, g])
        rest = rest[~shared]
    return rest, val


def validation_size(m: int, fraction: float, val_min: int = 0) -> int:
    """Validation images out of m labelled: `fraction` of them (at least 1), or `val_min`
    where that is more, capped at VAL_MAX_SHARE of m; 0 when fraction is 0."""
    if fraction <= 0 or m == 0:
        return 0
    return max(1, int(round(fraction * m)), min(val_min, int(VAL_MAX_SHARE * m)))

