"""What the unlabelled images of a generated set hold that the labelled ones do not.

    python benchmarks/probes/glyph_novelty.py DATA [RUN ...] [--checkpoint best]

A generated set records which glyph of each group every image was drawn from. For each
group this prints the share of unlabelled images whose glyph also appears in some
labelled image (a glyph taught in training, placed and noised anew; the few labelled
images set aside for validation count as labelled) and how many distinct
new glyphs the unlabelled part brings. With runs, it scores each run's model (plainly)
on the unlabelled images split by that: seen glyphs, new glyphs of the training
writers, and the test part (new writers). The gap between "seen" and "new" is what the
network has memorised; only the new glyphs can teach it something that augmenting the
labelled images cannot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from semilabel.data.readers import GLYPH_FILES, read_dataset, read_glyph_ids
from semilabel.models.checkpoint import model_from_checkpoint
from semilabel.models.inference import predict


def seen_in_labelled(labeled_glyphs: np.ndarray, other_glyphs: np.ndarray) -> np.ndarray:
    """(N, G) bool: whether each image's glyph of each group appears in a labelled image."""
    return np.stack([np.isin(other_glyphs[:, g], labeled_glyphs[:, g]) for g in range(labeled_glyphs.shape[1])],
                    axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="*")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = read_dataset(args.data)
    labeled, unlabeled = data.labeled, data.unlabeled
    unlabeled_glyphs = read_glyph_ids(args.data / GLYPH_FILES["unlabeled"])
    if labeled.glyphs is None or unlabeled_glyphs is None or unlabeled is None or unlabeled.labels is None:
        raise SystemExit(f"{args.data}: needs a generated set (glyph ids and the hidden labels of the unlabelled part)")
    names = list(data.schema.names)
    seen = seen_in_labelled(labeled.glyphs, unlabeled_glyphs)
    print(f"{args.data}: {len(labeled)} labelled, {len(unlabeled)} unlabelled images")
    print("| group | unlabelled images with a glyph of a labelled image | new distinct glyphs |")
    print("|---|---|---|")
    for g, name in enumerate(names):
        new = np.unique(unlabeled_glyphs[~seen[:, g], g]).size
        print(f"| {name} | {seen[:, g].mean():.1%} | {new:,} |")
    if not args.runs:
        return
    print()
    print("| run | " + " | ".join(f"{n}: seen glyph / new glyph / new writers" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for run in args.runs:
        model, _, _ = model_from_checkpoint(run / f"{args.checkpoint}.pt", None)
        on_unlabeled = predict(model, unlabeled.images, 512, torch.device("cpu")).indices
        on_test = predict(model, data.test.images, 512, torch.device("cpu")).indices if data.test is not None else None
        cells = []
        for g in range(len(names)):
            right = on_unlabeled[:, g] == unlabeled.labels[:, g]
            test = "n/a" if on_test is None else f"{(on_test[:, g] == data.test.labels[:, g]).mean():.1%}"
            cells.append(f"{right[seen[:, g]].mean():.1%} / {right[~seen[:, g]].mean():.1%} / {test}")
        print(f"| {run.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
