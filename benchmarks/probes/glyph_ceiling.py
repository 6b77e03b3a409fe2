"""How well a generated set's symbols read one at a time: what the drawing and the finding cost.

    python benchmarks/probes/glyph_ceiling.py DATA --digits D.npz [D.npz ...] --letters L.npz [...]
        [--symbols glyphs|true-boxes|found] [--minutes 10] [--seed 0] [--policy weak] [--every 60]

A generated set records which bank glyph each image was drawn from. For each labelled
and test image this script takes a 28 px picture of each of its two symbols, trains the
default recipe's backbone (compact, width 32, average pooling) on the labelled images'
pictures for `--minutes` of training time, with the default recipe's optimiser and
learning-rate curve (`semilabel.train`: AdamW at `--lr`, weight decay 0.05 on weights,
warm-up, one cosine over the time budget) and a 36-way head (10 digits, then 26
letters), under an augmentation policy, and every `--every` seconds reads the test
images' pictures (new writers):
digit and letter accuracy, and exact-match (both symbols of a test image right). The
pictures (`--symbols`):

- `glyphs`: the bank glyphs the images were drawn from, as the bank holds them: alone,
  upright, centred, clean, the ink in a 20 px box. The picture a perfect reader would
  recover: its score is what the glyphs themselves allow.
- `true-boxes`: crops of the composed images at each symbol's true ink box (the set is
  drawn again from its banks and seed and checked against the images on disk:
  `common.redraw_parts`), scaled so
  that the box's longer side fills 20 of 28 px. Turns, thin strokes, noise and the
  neighbour's ink are kept; only finding the symbol is given.
- `found`: the same crops at the boxes `semilabel.models.symbol_crops.find_symbols` finds
  without labels, in no known order: the loss is the likelihood of either order and the
  reading takes the more likely one. What the `crops` backbone sees.

With `glyphs` and `true-boxes` the first picture is the digit's (cross-entropy with label
smoothing 0.1).

The training loop is this script's own: it reads one symbol per picture (a batch holds
both pictures of each image) and, for `found`, learns without knowing which picture is
the digit, which the package's loop over whole images does not do.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import redraw_parts, run_cli

from semilabel.config import load_config
from semilabel.data.augment_policy import apply_policy, preset
from semilabel.data.glyphs import GlyphBank, concat_banks, load_glyph_bank
from semilabel.data.readers import GLYPH_FILES, read_dataset, read_glyph_ids
from semilabel.device import cpu_has_fast_bf16
from semilabel.errors import DataError
from semilabel.models.backbones import BackboneSpec, create_backbone
from semilabel.models.inference import to_input
from semilabel.models.symbol_crops import crop_boxes, find_symbols, matched_overlap
from semilabel.train.fit import _make_optimizer
from semilabel.train.schedule import lr_at

N_DIGITS, N_LETTERS = 10, 26


class GlyphReader(nn.Module):
    """The compact backbone with one linear head over the 36 symbol classes."""

    def __init__(self, size: int):
        super().__init__()
        self.backbone = create_backbone(BackboneSpec(width=32, input_size=size, pooling="avg"))
        self.head = nn.Linear(self.backbone.num_features, N_DIGITS + N_LETTERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass(frozen=True)
class Pairs:
    """For each image of a part, a 28 px picture of each of its two symbols and its labels
    (digit, letter). `ordered`: the first picture is the digit's; else which is which is
    not known."""

    first: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    second: torch.Tensor
    labels: np.ndarray  # (N, 2) int64
    ordered: bool


@torch.no_grad()
def read_pairs(model: nn.Module, pairs: Pairs, bf16: bool) -> np.ndarray:
    """(N, 2) digit and letter read for each image of `pairs`."""
    model.eval()
    found = []
    for start in range(0, len(pairs.labels), 512):
        x = torch.cat([pairs.first[start:start + 512], pairs.second[start:start + 512]])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logp = F.log_softmax(model(x).float(), dim=1)
        found.append(decode(*logp.chunk(2), pairs.ordered))
    model.train()
    return np.concatenate(found)


def bank_pairs(digits: GlyphBank, letters: GlyphBank, ids: np.ndarray) -> Pairs:
    """The bank glyphs a part's images were drawn from, as the bank holds them."""
    return Pairs(to_input(digits.images[ids[:, 0]]), to_input(letters.images[ids[:, 1]]),
                 np.stack([digits.labels[ids[:, 0]], letters.labels[ids[:, 1]]], axis=1), ordered=True)


def crop_pairs(drawn, boxes: np.ndarray, ordered: bool) -> Pairs:
    """Crops of each image's two symbols at `boxes` (N, 2, 4), 28 px, as the `crops` backbone cuts them."""
    x, b = to_input(drawn.images), torch.from_numpy(boxes)
    return Pairs(crop_boxes(x, b[:, 0], 28), crop_boxes(x, b[:, 1], 28), drawn.labels, ordered)


def pair_log_likelihoods(logp_first: torch.Tensor, logp_second: torch.Tensor,
                         labels: torch.Tensor) -> torch.Tensor:
    """(B, 2): log-likelihood of the labels with the first picture the digit, and swapped."""
    d, l = labels[:, 0:1], N_DIGITS + labels[:, 1:2]
    as_given = logp_first.gather(1, d)[:, 0] + logp_second.gather(1, l)[:, 0]
    swapped = logp_second.gather(1, d)[:, 0] + logp_first.gather(1, l)[:, 0]
    return torch.stack([as_given, swapped], dim=1)


def decode(logp_first: torch.Tensor, logp_second: torch.Tensor, ordered: bool) -> np.ndarray:
    """(B, 2) digit and letter: in the given order, or else in the order whose best digit and
    best letter are the more likely together."""
    def read(digit_from: torch.Tensor, letter_from: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, l = digit_from[:, :N_DIGITS].max(1), letter_from[:, N_DIGITS:].max(1)
        return torch.stack([d.indices, l.indices], 1), d.values + l.values
    given, score = read(logp_first, logp_second)
    if ordered:
        return given.numpy()
    swapped, swapped_score = read(logp_second, logp_first)
    return torch.where((swapped_score > score)[:, None], swapped, given).numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--digits", type=Path, nargs="+", required=True, help="the glyph banks DATA was made from")
    parser.add_argument("--letters", type=Path, nargs="+", required=True)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time, checks excluded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="weak", choices=["none", "weak", "strong"])
    parser.add_argument("--symbols", default="glyphs", choices=["glyphs", "true-boxes", "found"],
                        help="the bank glyphs; crops of the composed images at the true ink boxes; or at boxes "
                             "found without labels")
    parser.add_argument("--size", type=int, default=28, help="side the glyphs are resized to (28: as in the bank)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--every", type=float, default=60.0, help="seconds of training between checks")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    digits = concat_banks([load_glyph_bank(p, N_DIGITS) for p in args.digits])
    letters = concat_banks([load_glyph_bank(p, N_LETTERS) for p in args.letters])
    data = read_dataset(args.data)
    train_ids = data.labeled.glyphs
    test_ids = read_glyph_ids(args.data / GLYPH_FILES["test"])
    if train_ids is None or test_ids is None or data.test is None or data.test.labels is None:
        raise DataError(f"{args.data}: needs a generated set with glyph ids and test labels")
    for ids, labels, part in ((train_ids, data.labeled.labels, "labelled"), (test_ids, data.test.labels, "test")):
        if not (np.array_equal(digits.labels[ids[:, 0]], labels[:, 0])
                and np.array_equal(letters.labels[ids[:, 1]], labels[:, 1])):
            raise DataError(f"{args.data}: the {part} part's glyph ids do not match these banks' labels")
    if args.symbols == "glyphs":
        train, test = bank_pairs(digits, letters, train_ids), bank_pairs(digits, letters, test_ids)
    else:
        redrawn = redraw_parts(args.data, data, [digits], [letters], ("labeled", "test"))
        drawn = redrawn["labeled"], redrawn["test"]
        if args.symbols == "true-boxes":
            train, test = (crop_pairs(part, part.boxes, ordered=True) for part in drawn)
        else:
            found = [torch.cat([find_symbols(to_input(part.images[i:i + 512]))
                                for i in range(0, len(part), 512)]).numpy() for part in drawn]
            overlap = matched_overlap(torch.from_numpy(found[1]), torch.from_numpy(drawn[1].boxes)).numpy()
            print(f"found boxes on the test part: mean IoU with the true ones {overlap.mean():.3f}, "
                  f"{(overlap >= 0.5).mean():.1%} of the images at 0.5 or more")
            train, test = (crop_pairs(part, boxes, ordered=False) for part, boxes in zip(drawn, found))
    print(f"{args.data}: {args.symbols}, {len(train.labels):,} labelled and {len(test.labels):,} test images "
          f"(new writers)")

    model = GlyphReader(args.size).to(memory_format=torch.channels_last)
    recipe = dataclasses.replace(load_config("default"), lr=args.lr)
    optimiser = _make_optimizer(recipe, model)  # AdamW, decay on weights only, as `semilabel train` builds it
    policy, bf16 = preset(args.policy), cpu_has_fast_bf16()
    labels = torch.from_numpy(train.labels)

    def check(step: int, seconds: float) -> None:
        right = read_pairs(model, test, bf16) == test.labels
        print(f"| {seconds / 60:.1f} | {step:,} | {right[:, 0].mean():.2%} | {right[:, 1].mean():.2%} | "
              f"{right.all(axis=1).mean():.2%} |", flush=True)

    print(f"policy {args.policy}, {args.size} px, batch {args.batch} images ({2 * args.batch} symbols), "
          f"lr {args.lr}, seed {args.seed}, {'bf16' if bf16 else 'fp32'}\n\n"
          "| minutes | step | digit | letter | exact |\n|---|---|---|---|---|")
    budget, trained, step, next_check = 60 * args.minutes, 0.0, 0, args.every
    while trained < budget:
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(order) - args.batch + 1, args.batch):
            began = time.perf_counter()
            index = order[start:start + args.batch]
            x = apply_policy(torch.cat([train.first[index], train.second[index]]), policy, gen)
            for group in optimiser.param_groups:
                group["lr"] = lr_at(trained / budget, recipe.lr, recipe.schedule, recipe.warmup_fraction)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x.contiguous(memory_format=torch.channels_last)).float()
            y = labels[index]
            if train.ordered:
                loss = F.cross_entropy(logits, torch.cat([y[:, 0], N_DIGITS + y[:, 1]]), label_smoothing=0.1)
            else:  # which picture is the digit is not known: the likelihood of either order
                likelihoods = pair_log_likelihoods(*F.log_softmax(logits, dim=1).chunk(2), y)
                loss = -torch.logsumexp(likelihoods, dim=1).mean() / 2
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            trained += time.perf_counter() - began
            if trained >= next_check:
                check(step, trained)
                next_check += args.every
            if trained >= budget:
                break
    check(step, trained)


if __name__ == "__main__":
    sys.exit(run_cli(main))
