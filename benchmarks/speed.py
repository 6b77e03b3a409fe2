"""Step and prediction timings: what a piece of training or prediction costs, no accuracy.

    python benchmarks/speed.py augment                      # the policies next to a training step
    python benchmarks/speed.py compile [--widths 32 16] [--steps 25] [--batch 128]
    python benchmarks/speed.py cudnn-shapes --backbone mobilenet_v2 --input-size 224   # on a GPU
    python benchmarks/speed.py cudnn-shapes --device cpu --input-size 64 --steps 2      # a dry run
    python benchmarks/speed.py predict [--n 5000] [--repeats 3]

Every subcommand takes `--threads N` (torch CPU threads; 0 = every core this process may
use) and prints a Markdown table. The models are freshly initialised (speed does not
depend on what they learnt) and fed random inputs; a timed call waits for the GPU.

- `augment`: a 256-image batch (128 labelled + 128 unlabelled rows, as a step of the
  `fixmatch` recipe has) augmented by the default recipe's weak and strong policies,
  beside one optimiser step of the default model on 256 rows in the precision `auto`
  picks; medians of 15 after one untimed call.
- `compile`: seconds per training step of the compact net (the default recipe's model:
  average pooling, joint head; group and joint losses, backward, AdamW), eager against
  `torch.compile`; the median skips the first five steps (compilation happens in the
  first), the total includes them.
- `cudnn-shapes`: what a new batch shape costs with cuDNN's autotuner on and off (with
  it on, cuDNN times its algorithms for every new input shape, which at 224 px can take
  seconds; a run meets several: the first batch, each epoch's smaller last batch, batches
  with extra method rows, the evaluation batches). For the backbone at `--input-size`,
  bf16 autocast and channels-last on a GPU, as training runs it: the first step of a
  shape, the steady step, a step of a second new shape, a forward pass of a new
  evaluation shape; once with the autotuner, once without, each in a fresh model.
- `predict`: prediction throughput through `semilabel.models.inference.predict`, the
  compact default against MobileNetV2, on random 56x56 images after one warm-up batch;
  the best of `--repeats` passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from semilabel.config import apply_overrides, load_config
from semilabel.data.schema import COMBO
from semilabel.predict import cpu_count, torch_threads


# ---- shared timing ------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device = torch.device("cpu")) -> float:
    """Wall seconds of one call of `fn`, the GPU's queued work included."""
    _sync(device)
    began = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - began


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device = torch.device("cpu"),
                   untimed: int = 1) -> float:
    """Median seconds of `repeats` calls of `fn` after `untimed` calls (allocations, kernels)."""
    for _ in range(untimed):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def _training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   dtype: torch.dtype | None = None) -> Callable[[], None]:
    """One optimiser step of the default model on (x, y): forward (under autocast to
    `dtype` when given), the group and joint losses, backward, the optimiser's update."""
    from semilabel.train.losses import supervised_loss

    weights = {name: 1.0 for name in COMBO.names}

    def step() -> None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss = supervised_loss(out, y, COMBO.names, weights).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _random_labels(n: int) -> torch.Tensor:
    return torch.stack([torch.randint(0, size, (n,)) for size in COMBO.sizes], 1)


def _default_model(**overrides: object):
    """The default recipe (with `overrides`), its model and the optimiser `semilabel train` builds for it."""
    from semilabel.models.checkpoint import build_model
    from semilabel.train.fit import _make_optimizer

    config = apply_overrides(load_config("default"), overrides)
    torch.manual_seed(0)
    model = build_model(config, COMBO)
    return config, model, _make_optimizer(config, model)


# ---- subcommands ----------------------------------------------------------------------------
def augment(args: argparse.Namespace) -> None:
    from semilabel.data.augment_policy import apply_policy
    from semilabel.device import autocast_dtype

    config, model, optimizer = _default_model()
    x, y = torch.rand(256, 1, 56, 56), _random_labels(256)
    gen = torch.Generator().manual_seed(0)
    dtype = autocast_dtype(config.precision, torch.device("cpu"))
    step = 1000 * median_seconds(_training_step(model, optimizer, x, y, dtype), args.repeats)
    print(f"| what (256 images, {torch.get_num_threads()} threads) | ms | share of a step |")
    print("|---|---|---|")
    print(f"| training step, {config.backbone}, {dtype or 'fp32'} | {step:.1f} | 100% |")
    for name, policy in (("weak", config.weak_augment), ("strong", config.strong_augment)):
        ms = 1000 * median_seconds(lambda: apply_policy(x, policy, gen), args.repeats)
        print(f"| {name} policy | {ms:.1f} | {ms / step:.0%} |")


def compile_speed(args: argparse.Namespace) -> None:
    print(f"training steps of {args.batch} images, {torch.get_num_threads()} threads\n")
    print("| width | mode | seconds in all | median s/step (after 5) | images/s |")
    print("|---|---|---|---|---|")
    for width in args.widths:
        for compiled in (False, True):
            _, model, optimizer = _default_model(width=width, channels_last=False)
            forward = torch.compile(model) if compiled else model
            step = _training_step(forward, optimizer, torch.rand(args.batch, 1, 56, 56), _random_labels(args.batch))
            times = [timed(step) for _ in range(args.steps)]
            median = statistics.median(times[5:])
            print(f"| {width} | {'compiled' if compiled else 'eager'} | {sum(times):.0f} | {median:.3f} | "
                  f"{args.batch / median:.0f} |", flush=True)


def _shape_costs(backbone: str, input_size: int, batch: int, steps: int, autotune: bool, device: torch.device,
                 bf16: bool) -> dict[str, float]:
    """Seconds of: first step (shape A), mean steady step (A), first step of shape B
    (a few rows fewer: an epoch's last batch), first forward of shape C (no grad)."""
    from semilabel.models.backbones import BackboneSpec, create_backbone

    torch.backends.cudnn.benchmark = autotune
    torch.manual_seed(0)
    net = create_backbone(BackboneSpec(backbone, 32, input_size)).to(device)
    head = torch.nn.Linear(net.num_features, sum(COMBO.sizes)).to(device)
    optimizer = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=1e-3)
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    net = net.to(memory_format=layout)

    def logits(n: int) -> torch.Tensor:  # n random 56 px images through the network, as training feeds it
        x = torch.rand(n, 1, 56, 56, device=device).contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return head(net.forward_features(x)).float()

    def step(n: int) -> None:
        loss = logits(n).logsumexp(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def forward(n: int) -> None:
        with torch.no_grad():
            logits(n)

    return {"first step": timed(lambda: step(batch), device),
            "steady step": timed(lambda: [step(batch) for _ in range(steps)], device) / steps,
            "new shape step": timed(lambda: step(batch - max(1, batch // 16)), device),
            "new eval shape": timed(lambda: forward(2 * batch + 7), device)}


def cudnn_shapes(args: argparse.Namespace) -> None:
    device, bf16 = torch.device(args.device), not args.fp32
    _shape_costs(args.backbone, args.input_size, 8, 1, False, device, bf16)  # CUDA, cuBLAS and cuDNN start-up, paid once
    rows = {}
    for autotune in (True, False):  # each in a fresh model; the autotuner's cache is per shape
        rows[autotune] = _shape_costs(args.backbone, args.input_size, args.batch, args.steps, autotune, device, bf16)
        for name, seconds in rows[autotune].items():
            print(f"autotune={autotune} {name}: {seconds:.3f} s", flush=True)
    print(f"\n{args.backbone} at {args.input_size} px, {args.batch} rows, {'fp32' if args.fp32 else 'bf16'}, "
          f"{device}:\n")
    print("| cuDNN autotuner | " + " | ".join(rows[True]) + " | images/s steady |")
    print("|---" * (len(rows[True]) + 2) + "|")
    for autotune, r in rows.items():
        cells = " | ".join(f"{s:.2f} s" for s in r.values())
        print(f"| {'on' if autotune else 'off'} | {cells} | {args.batch / r['steady step']:,.0f} |")


PREDICT_RECIPES = {  # label -> overrides of the default recipe
    "compact (default)": {},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},
}


def predict_speed(args: argparse.Namespace) -> None:
    from semilabel.models.inference import predict

    images = np.random.default_rng(0).integers(0, 256, size=(args.n, 56, 56), dtype=np.uint8)
    rows = []
    for name in args.recipes:
        config, model, _ = _default_model(**PREDICT_RECIPES[name])
        model.eval()
        predict(model, images[:args.batch_size], args.batch_size, tta=args.tta)  # warm-up (allocations, kernels)
        best = min(timed(lambda: predict(model, images, args.batch_size, tta=args.tta)) for _ in range(args.repeats))
        rows.append((name, config.input_size, sum(p.numel() for p in model.parameters()), best, args.n / best))
    print(f"predict throughput: {args.n} random 56x56 images, batch {args.batch_size}, tta {args.tta}, "
          f"{torch.get_num_threads()} torch threads ({cpu_count()} cores available), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}; best of {args.repeats}\n")
    print("| model | backbone input | parameters | seconds | images/s | ms/image |")
    print("|---|---|---:|---:|---:|---:|")
    for name, size, params, seconds, rate in rows:
        print(f"| {name} | {size} px | {params / 1e6:.2f} M | {seconds:.2f} | {rate:,.0f} | {1000 / rate:.2f} |")


# ---- command line -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Subcommand:
    run: Callable[[argparse.Namespace], None]
    help: str
    threads: int  # default of --threads


SUBCOMMANDS = {
    "augment": Subcommand(augment, "the augmentation policies next to a training step", 0),
    "compile": Subcommand(compile_speed, "training steps eager against torch.compile", 2),
    "cudnn-shapes": Subcommand(cudnn_shapes, "a new batch shape with cuDNN's autotuner on and off", 0),
    "predict": Subcommand(predict_speed, "prediction throughput of the compact default and MobileNetV2", 0),
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parsers = {}
    for name, command in SUBCOMMANDS.items():
        parsers[name] = p = sub.add_parser(name, help=command.help, description=command.help)
        p.add_argument("--threads", type=int, default=command.threads,
                       help="torch CPU threads, 0 = every core (default: %(default)s)")
    parsers["augment"].add_argument("--repeats", type=int, default=15, help="timed calls; the median is reported")
    p = parsers["compile"]
    p.add_argument("--widths", type=int, nargs="+", default=[32, 16])
    p.add_argument("--steps", type=int, default=25, help="timed steps per width and mode (at least 6)")
    p.add_argument("--batch", type=int, default=128)
    p = parsers["cudnn-shapes"]
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=192, help="rows a step (report at 224 px: 128 + 64 SESEMI)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p = parsers["predict"]
    p.add_argument("--n", type=int, default=5000, help="images per measurement")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3, help="timed passes per model; the best is reported")
    p.add_argument("--tta", type=int, default=0)
    p.add_argument("--recipes", nargs="+", default=list(PREDICT_RECIPES), choices=list(PREDICT_RECIPES))
    args = parser.parse_args(argv)
    if args.command == "compile" and args.steps < 6:
        parser.error("compile --steps must be 6 or more (the median skips the first five)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with torch_threads(args.threads):
        SUBCOMMANDS[args.command].run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
