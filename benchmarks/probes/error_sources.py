"""Where a run's errors on a generated set come from: accuracy by how each symbol was drawn.

    python benchmarks/probes/error_sources.py DATA RUN [RUN ...] --digits D.npz [D.npz ...]
        --letters L.npz [...] [--part test] [--tta 0] [--checkpoint best] [--size-edges 12 17]

The generator records how it drew each symbol (rotation, size, stroke, ink, noise
regime, layout) in memory, not on disk. This script draws DATA's set again from the
same glyph banks and seed (`dataset.json`), checks that the images are the ones on
disk (`common.redraw_parts`), scores each run's model on one part, and prints one table per run: for each kind
of symbol (a far-turned letter, a thin digit, ...) its share of the images, the digit,
letter and exact-match accuracy there, and the points of exact-match the run loses on
it (share x errors). The buckets of one property add up to the whole error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from common import redraw_parts, run_cli

from semilabel.data.combo import NOISE_REGIMES, STROKES, ComboImages, ComboStyle
from semilabel.data.glyphs import load_glyph_bank
from semilabel.data.readers import read_dataset
from semilabel.models.checkpoint import model_from_checkpoint
from semilabel.models.inference import predict

FAR_DEG = ComboStyle().far_rotation_deg[0]  # the generator's far turns start here; its small ones are a few degrees
SIZE_EDGES = (12.0, 17.0)  # 10th and 90th percentile of the original images' symbol size (px)


def size_buckets(size: np.ndarray, edges: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Masks of symbol sizes split at `edges` (px, ascending): under the first, between
    each pair (upper edge included), over the last."""
    out = {f"under {edges[0]:g} px": size < edges[0]}
    rest = size >= edges[0]  # not yet in a bucket
    for lo, hi in zip(edges[:-1], edges[1:]):
        out[f"{lo:g}-{hi:g} px"] = rest & (size <= hi)
        rest = size > hi
    out[f"over {edges[-1]:g} px"] = rest
    return out


def buckets(drawn: ComboImages, size_edges: tuple[float, ...] = SIZE_EDGES) -> dict[str, dict[str, np.ndarray]]:
    """For each property, its buckets as boolean masks over the images."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for g, group in enumerate(("digit", "letter")):
        turn = np.abs(drawn.angles[:, g])
        out[f"{group} rotation"] = {f"under {FAR_DEG:.0f} deg": turn < FAR_DEG,
                                    f"{FAR_DEG:.0f}-45 deg": (turn >= FAR_DEG) & (turn < 45),
                                    "45-90 deg": turn >= 45}
        box = drawn.boxes[:, g]
        size = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        out[f"{group} size (longer ink side)"] = size_buckets(size, size_edges)
        out[f"{group} stroke"] = {name: drawn.strokes[:, g] == k for k, name in enumerate(STROKES)}
        out[f"{group} ink"] = {"the brighter symbol": drawn.ink[:, g] >= drawn.ink[:, 1 - g],
                               "the dimmer symbol": drawn.ink[:, g] < drawn.ink[:, 1 - g]}
    out["noise"] = {name: drawn.noise == k for k, name in enumerate(NOISE_REGIMES)}
    a, b = drawn.boxes[:, 0], drawn.boxes[:, 1]
    overlap = (np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0])) & \
              (np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1]))
    out["ink boxes"] = {"apart": ~overlap, "overlapping": overlap}
    return out


def table(name: str, right: np.ndarray, drawn: ComboImages, size_edges: tuple[float, ...] = SIZE_EDGES) -> list[str]:
    """Markdown rows: per bucket its share, digit / letter / exact accuracy and points lost."""
    exact = right.all(axis=1)
    lines = [f"### {name}: exact {exact.mean():.2%} (digit {right[:, 0].mean():.2%}, letter {right[:, 1].mean():.2%}) "
             f"on {len(exact):,} images", "",
             "| property | bucket | share | digit | letter | exact | points lost |", "|---|---|---|---|---|---|---|"]
    for prop, masks in buckets(drawn, size_edges).items():
        for bucket, mask in masks.items():
            if not mask.any():
                continue
            lost = 100 * (mask & ~exact).mean()
            lines.append(f"| {prop} | {bucket} | {mask.mean():.1%} | {right[mask, 0].mean():.1%} | "
                         f"{right[mask, 1].mean():.1%} | {exact[mask].mean():.1%} | {lost:.2f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--digits", type=Path, nargs="+", required=True, help="the glyph banks DATA was made from")
    parser.add_argument("--letters", type=Path, nargs="+", required=True)
    parser.add_argument("--part", default="test", choices=["labeled", "unlabeled", "test"])
    parser.add_argument("--tta", type=int, default=0, help="test-time copies (0: plain prediction)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size-edges", type=float, nargs="+", default=list(SIZE_EDGES),
                        help="px where the symbol-size buckets split (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = read_dataset(args.data)
    digits, letters = [load_glyph_bank(p, 10) for p in args.digits], [load_glyph_bank(p, 26) for p in args.letters]
    drawn = redraw_parts(args.data, data, digits, letters, (args.part,))[args.part]
    print(f"{args.data}, part {args.part}, {'plain prediction' if not args.tta else f'TTA {args.tta}'}\n")
    for run in args.runs:
        model, _, _ = model_from_checkpoint(run / f"{args.checkpoint}.pt", None)
        found = predict(model, drawn.images, 512, "cpu", tta=args.tta).indices
        print("\n".join(table(run.name, found == drawn.labels, drawn, tuple(sorted(args.size_edges)))))


if __name__ == "__main__":
    sys.exit(run_cli(main))
