"""What the augmentation policies cost next to a training step of the default recipe.

    python benchmarks/augment_cost.py        # prints a markdown table

A 256-image batch (128 labelled + 128 unlabelled rows, as a step of the `fixmatch`
recipe has) is augmented by each policy, and one optimiser step of the compact
network on 256 rows is timed, in the precision `auto` picks; medians of repeated runs.
"""

from __future__ import annotations

import statistics
import time

import torch

from semilabel.config import load_config
from semilabel.data.augment_policy import apply_policy
from semilabel.data.schema import COMBO
from semilabel.device import autocast_dtype
from semilabel.train.checkpoint import build_model


def _median_ms(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    config = load_config("default")
    x = torch.rand(256, 1, 56, 56)
    gen = torch.Generator().manual_seed(0)
    model = build_model(config, COMBO)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(config.precision, torch.device("cpu"))
    y = torch.zeros(256, 2, dtype=torch.long)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss = sum(torch.nn.functional.cross_entropy(g.float(), y[:, i]) for i, g in enumerate(out.groups))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_ms = _median_ms(step)
    print(f"| what (256 images, {torch.get_num_threads()} threads) | ms | share of a step |")
    print("|---|---|---|")
    print(f"| training step, compact, {dtype or 'fp32'} | {step_ms:.1f} | 100% |")
    for name, policy in (("weak", config.weak_augment), ("strong", config.strong_augment)):
        ms = _median_ms(lambda: apply_policy(x, policy, gen))
        print(f"| {name} policy | {ms:.1f} | {ms / step_ms:.0%} |")


if __name__ == "__main__":
    main()
