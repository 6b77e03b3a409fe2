"""A dataset's fingerprint: each part's array shapes and a hash of its images and labels,
and of the labelled part's glyph ids (generated sets: they decide the validation split).

Stored in a run's checkpoints (a resume on other data is refused) and in the
`dataset.json` that `make-data` writes (a set whose files came from different
generations is refused).
"""

from __future__ import annotations

import hashlib

import numpy as np

PARTS = ("labeled", "unlabeled", "test")


def _digest(images: np.ndarray, labels: np.ndarray | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(images, dtype=np.uint8).data)
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()


def _glyph_digest(glyphs: np.ndarray | None) -> str | None:
    if glyphs is None:
        return None
    return hashlib.blake2b(np.ascontiguousarray(glyphs, dtype=np.int64).data, digest_size=16).hexdigest()


def fingerprint(dataset) -> dict[str, dict]:
    """{part: {"images": shape, "labels": shape or None, "hash": hex}} for the parts present;
    the labelled part also has "glyphs": a hash of its glyph ids (None without them), which
    decide the validation split (`fit.split_validation`)."""
    out: dict[str, dict] = {}
    for part in PARTS:
        image_set = getattr(dataset, part)
        if image_set is None or len(image_set) == 0:
            continue
        labels = image_set.labels
        out[part] = {"images": list(image_set.images.shape), "labels": None if labels is None else list(labels.shape),
                     "hash": _digest(image_set.images, labels)}
        if part == "labeled":
            out[part]["glyphs"] = _glyph_digest(getattr(image_set, "glyphs", None))
    return out


def describe_difference(stored: dict, current: dict) -> str:
    """A short phrase naming the first difference between two fingerprints ("" if none).
    A fingerprint recorded before glyph ids were covered (no "glyphs") is compared without them."""
    for part in PARTS:
        a, b = stored.get(part), current.get(part)
        if a == b:
            continue
        if a is None or b is None:
            return f"the {part} part {'is new' if a is None else 'is missing'}"
        if a["images"] != b["images"] or a["labels"] != b["labels"]:
            return f"{part} images {'x'.join(map(str, a['images']))} then, {'x'.join(map(str, b['images']))} now"
        if a["hash"] != b["hash"]:
            return f"the {part} images or labels have changed (same sizes)"
        if "glyphs" in a and "glyphs" in b and a["glyphs"] != b["glyphs"]:
            how = "are new" if a["glyphs"] is None else "are missing" if b["glyphs"] is None else "have changed"
            return f"the {part} glyph ids, which decide the validation split, {how}"
    return ""
