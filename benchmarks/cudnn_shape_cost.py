"""What a new batch shape costs on a GPU with cuDNN's autotuner on and off.

With `torch.backends.cudnn.benchmark = True` cuDNN times its algorithms for every new
input shape, which at 224 px can take seconds per shape; a training run meets several
(the first batch, each epoch's smaller last batch, batches with extra method rows, the
evaluation batches). This times, for the backbone at `--input-size`, bf16 autocast and
channels-last as training runs it: the first step of a shape, the steady step, a step of
a second new shape, and a forward pass of a new evaluation shape; once with the
autotuner and once without. Prints one line per measurement and a Markdown table.

    python benchmarks/cudnn_shape_cost.py --backbone mobilenet_v2 --input-size 224
    python benchmarks/cudnn_shape_cost.py --device cpu --input-size 64 --steps 2   # a dry run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from semilabel.models.backbones import BackboneSpec, create_backbone  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(backbone: str, input_size: int, batch: int, steps: int, autotune: bool, device: torch.device,
            bf16: bool) -> dict[str, float]:
    """Seconds of: first step (shape A), mean steady step (A), first step of shape B
    (a few rows fewer: an epoch's last batch), first forward of shape C (no grad)."""
    torch.backends.cudnn.benchmark = autotune
    torch.manual_seed(0)
    net = create_backbone(BackboneSpec(backbone, 32, input_size)).to(device)
    head = torch.nn.Linear(net.num_features, 36).to(device)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    net = net.to(memory_format=fmt)

    def logits(n: int) -> torch.Tensor:  # n random 56 px images through the network, as training feeds it
        x = torch.rand(n, 1, 56, 56, device=device).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return head(net.forward_features(x)).float()

    def step(n: int) -> None:
        loss = logits(n).logsumexp(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward(n: int) -> None:
        with torch.no_grad():
            logits(n)

    first = _timed(lambda: step(batch), device)
    steady = _timed(lambda: [step(batch) for _ in range(steps)], device) / steps
    second = _timed(lambda: step(batch - max(1, batch // 16)), device)
    evaluation = _timed(lambda: forward(2 * batch + 7), device)
    return {"first step": first, "steady step": steady, "new shape step": second, "new eval shape": evaluation}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=192, help="rows a step (report at 224 px: 128 + 64 SESEMI)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    bf16 = not args.fp32
    measure(args.backbone, args.input_size, 8, 1, False, device, bf16)  # CUDA, cuBLAS and cuDNN start-up, paid once
    rows = {}
    for autotune in (True, False):  # each in a fresh model; the autotuner's cache is per shape
        rows[autotune] = measure(args.backbone, args.input_size, args.batch, args.steps, autotune, device, bf16)
        for name, seconds in rows[autotune].items():
            print(f"autotune={autotune} {name}: {seconds:.3f} s", flush=True)
    print(f"\n{args.backbone} at {args.input_size} px, {args.batch} rows, "
          f"{'fp32' if args.fp32 else 'bf16'}, {device}:\n")
    print("| cuDNN autotuner | " + " | ".join(rows[True]) + " | images/s steady |")
    print("|---" * (len(rows[True]) + 2) + "|")
    for autotune, r in rows.items():
        cells = " | ".join(f"{s:.2f} s" for s in r.values())
        print(f"| {'on' if autotune else 'off'} | {cells} | {args.batch / r['steady step']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
