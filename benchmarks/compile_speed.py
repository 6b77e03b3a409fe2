"""Seconds per training step of the compact net, eager against `torch.compile`.

    python benchmarks/compile_speed.py [--widths 32 16] [--steps 25] [--batch 128] [--threads 2]

One step: forward of a random batch through the default recipe's model (average pooling,
joint head), the group and joint losses, backward and AdamW. The median skips the first
five steps (compilation happens in the first); the total includes it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from semilabel.data.schema import COMBO  # noqa: E402
from semilabel.models.backbones import BackboneSpec  # noqa: E402
from semilabel.models.classifier import MultiHeadClassifier  # noqa: E402
from semilabel.train.losses import supervised_loss  # noqa: E402


def time_steps(width: int, compiled: bool, steps: int, batch: int) -> tuple[float, float]:
    """(total seconds, median seconds per step after the first five)."""
    torch.manual_seed(0)
    model = MultiHeadClassifier(COMBO, BackboneSpec("compact", width, 56, pooling="avg"), pretext_head=False,
                                joint_head=True)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    forward = torch.compile(model) if compiled else model
    x = torch.rand(batch, 1, 56, 56)
    y = torch.stack([torch.randint(0, 10, (batch,)), torch.randint(0, 26, (batch,))], 1)
    began, times = time.perf_counter(), []
    for _ in range(steps):
        start = time.perf_counter()
        loss = supervised_loss(forward(x), y, COMBO.names, {"digit": 1.0, "letter": 1.0}).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    rest = sorted(times[5:])
    return time.perf_counter() - began, rest[len(rest) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 16])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for width in args.widths:
        for compiled in (False, True):
            total, median = time_steps(width, compiled, args.steps, args.batch)
            print(f"width {width} {'compiled' if compiled else 'eager   '}: {total:4.0f} s in all, median "
                  f"{median:.3f} s/step = {args.batch / median:.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
