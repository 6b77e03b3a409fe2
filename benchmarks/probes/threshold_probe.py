"""How many teacher labels each admission rule lets in, and how many of them are right.

    python benchmarks/probes/threshold_probe.py RUN DATA [--n 4096] [--checkpoint last]

Loads a run's checkpoint (the weights it validates with: the EMA where there is one),
labels a weak view of `--n` unlabelled images of DATA (a generated set, whose hidden
labels score the admitted ones) as the consistency methods' teacher does, and prints,
per label group, the share admitted and the accuracy of the admitted labels under fixed
thresholds and under FreeMatch's self-adaptive one (the global threshold is the mean
top probability, scaled per class by the class's mean probability over the largest
one: the value its moving averages settle at for a teacher that no longer changes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from semilabel.data.augment_policy import apply_policy
from semilabel.data.readers import read_dataset
from semilabel.models.checkpoint import model_from_checkpoint
from semilabel.models.classifier import combine_predictions
from semilabel.models.inference import to_input

FIXED = (0.95, 0.9, 0.8, 0.7, 0.5)


def teacher_probs(model, images: np.ndarray, policy, seed: int, batch: int = 512) -> list[np.ndarray]:
    """Per-group probabilities of a weak view of each image (the teacher's inputs)."""
    gen = torch.Generator().manual_seed(seed)
    out: list[list[np.ndarray]] = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = apply_policy(to_input(images[start:start + batch]), policy, generator=gen)
            out.append([p.numpy() for p in combine_predictions(model.forward_head(model.forward_features(x)))[1]])
    return [np.concatenate([o[g] for o in out]) for g in range(len(out[0]))]


def self_adaptive_thresholds(probs: np.ndarray) -> np.ndarray:
    """FreeMatch's per-class thresholds at their fixed point: mean top probability x
    (mean class probability / the largest mean class probability)."""
    mean_class = probs.mean(axis=0)
    return probs.max(axis=1).mean() * mean_class / mean_class.max()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, config, schema = model_from_checkpoint(args.run / f"{args.checkpoint}.pt", None)
    unlabeled = read_dataset(args.data).unlabeled
    pick = np.random.default_rng(args.seed).choice(len(unlabeled), size=min(args.n, len(unlabeled)), replace=False)
    images, hidden = unlabeled.images[pick], unlabeled.labels[pick]
    probs = teacher_probs(model, images, config.weak_augment, args.seed)
    print(f"{args.run / args.checkpoint}.pt on {len(images)} unlabelled images of {args.data} (weak views)")
    print("| rule | " + " | ".join(f"{n} admitted | {n} right" for n in schema.names) + " | both admitted and right |")
    print("|---" * (2 * len(schema.names) + 2) + "|")
    rules = [(f"fixed {t:g}", [np.full(p.shape[1], t) for p in probs]) for t in FIXED]
    rules.append(("self-adaptive (FreeMatch)", [self_adaptive_thresholds(p) for p in probs]))
    for name, thresholds in rules:
        cells, both = [], np.ones(len(images), dtype=bool)
        for g, (p, t) in enumerate(zip(probs, thresholds)):
            top = p.argmax(axis=1)
            admitted = p.max(axis=1) > t[top]
            right = top == hidden[:, g]
            both &= admitted & right
            cells.append(f"{admitted.mean():.1%} | {right[admitted].mean() if admitted.any() else float('nan'):.1%}")
        print(f"| {name} | " + " | ".join(cells) + f" | {both.mean():.1%} |")
    for g, n in enumerate(schema.names):
        t = self_adaptive_thresholds(probs[g])
        print(f"self-adaptive {n} thresholds: min {t.min():.2f}, median {np.median(t):.2f}, max {t.max():.2f}")


if __name__ == "__main__":
    main()
