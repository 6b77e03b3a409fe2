"""A dataset's fingerprint: each part's array shapes and a hash of its images and labels.

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


def fingerprint(dataset) -> dict[str, dict]:
    """{part: {"images": shape, "labels": shape or None, "hash": hex}} for the parts present."""
    out: dict[str, dict] = {}
    for part in PARTS:
        image_set = getattr(dataset, part)
        if image_set is None or len(image_set) == 0:
            continue
        labels = image_set.labels
        out[part] = {"images": list(image_set.images.shape), "labels": None if labels is None else list(labels.shape),
                     "hash": _digest(image_set.images, labels)}
    return out


def describe_difference(stored: dict, current: dict) -> str:
    """A short phrase naming the first difference between two fingerprints ("" if none)."""
    for part in PARTS:
        a, b = stored.get(part), current.get(part)
        if a == b:
            continue
        if a is None or b is None:
            return f"the {part} part {'is new' if a is None else 'is missing'}"
        if a["images"] != b["images"] or a["labels"] != b["labels"]:
            return f"{part} images {'x'.join(map(str, a['images']))} then, {'x'.join(map(str, b['images']))} now"
        return f"the {part} images or labels have changed (same sizes)"
    return ""
