"""Why a backbone sits at chance at the start: short, single-threaded probes.

    python benchmarks/probes/plateau_probe.py speed --backbone mobilenet_v2 --steps 3
    python benchmarks/probes/plateau_probe.py learn --backbone mobilenet_v2 --steps 150 [--set lr=3e-3 ...]

`speed` times optimiser steps (batch 64, 56 px) per precision (fp32, bf16 autocast)
and memory layout (channels-last, contiguous), after one untimed step, in CPU seconds
of this process (robust to other work sharing the cores) and wall seconds.

`learn` trains the `report` recipe's supervised step (Adam, its batch and group
weights; no SESEMI, no augmentation) on a small generated Combo set (3,000 labelled
images from ../shared/data) and, every `--every` steps, scores 256 held-out images of
the same writers in evaluation mode (running BatchNorm statistics) and in training
mode (batch statistics), plus the training batch itself; it prints the step at which
each exact-match first passes 10%. `--set key=value` overrides the recipe (any Config
field), `--opt key=value` the backbone (see `probe_model`); `--whiten` initialises the
first convolution as whitening of 3x3 patches of the training images; `--median` passes
every input through a 3x3 median filter (removes salt-and-pepper dots).

The optimiser and the learning-rate curve are the package's (`semilabel.train.fit`'s
optimiser factory, `semilabel.train.schedule.lr_at` over `--curve-steps`); the loop is
this script's own, as it scores every few steps in both BatchNorm modes and swaps
backbones and first layers that `semilabel train` does not build.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from semilabel.config import load_config
from semilabel.data.combo import make_combo
from semilabel.data.glyphs import load_glyph_bank
from semilabel.data.schema import COMBO
from semilabel.device import batch_size_for, use_channels_last
from semilabel.models.backbones import BackboneSpec, CompactNet, _Residual, build_mobilenet_v2, build_resnet50
from semilabel.models.classifier import MultiHeadClassifier, combine_predictions
from semilabel.models.inference import to_input
from semilabel.train.fit import _make_optimizer
from semilabel.train.losses import supervised_loss
from semilabel.train.schedule import lr_at

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _json_or_text(value: str):
    """A `--set` value for a key whose current value is None: JSON where it parses (numbers,
    lists, null), else the text itself (`pooling=avg`)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _override(config, pairs: list[str]):
    changes = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key == "letter_weight":
            changes["group_weights"] = {"digit": 1.0, "letter": float(value)}
            continue
        current = getattr(config, key)
        changes[key] = type(current)(value) if current is not None and not isinstance(current, bool) else (
            value.lower() in ("1", "true", "yes") if isinstance(current, bool) else _json_or_text(value))
    return dataclasses.replace(config, **changes)


def _compact(width: int, size: int, zero_init_residual: bool = False, **kwargs) -> CompactNet:
    """The compact net; `zero_init_residual` starts the last BatchNorm scale of each residual block at 0."""
    net = CompactNet(width, size, **kwargs)
    if zero_init_residual:
        for m in net.stages:
            if isinstance(m, _Residual):
                nn.init.zeros_(m.body[-1].weight)
    return net


class _GeneralisedMean(nn.Module):
    """(B, C, H, W) -> (B, C): the mean of x^3 over the map, to the power 1/3 (between average and max)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)


def median_filtered(x: torch.Tensor) -> torch.Tensor:
    """3x3 median of every pixel of (B, 1, H, W)."""
    return torch.nn.functional.unfold(x, 3, padding=1).median(dim=1).values.reshape(x.shape)


def probe_model(config, backbone: str, options: list[str]) -> MultiHeadClassifier:
    """The recipe's model, its backbone built with `options` (builder keyword=value,
    e.g. pooling=avgmax, zero_init_residual=1, width_mult=0.25; the earlier layouts:
    mobilenet_v2 stem_stride=1, resnet50 small_stem=1 stem_maxpool=0; compact zero_init_residual=1)
    and `bn_momentum=M` for every BatchNorm; probe-only: `feature_bn=1` (BatchNorm over the
    pooled features, before the heads), `pooling=gem` (generalised mean, p = 3)."""
    kwargs, momentum, feature_bn, gem = {}, None, False, False
    for pair in options:
        key, value = pair.split("=", 1)
        if key == "bn_momentum":
            momentum = float(value)
        elif key == "feature_bn":
            feature_bn = bool(int(value))
        elif pair == "pooling=gem":
            gem, kwargs["pooling"] = True, "avg"  # built with average pooling (C features), then replaced
        else:
            kwargs[key] = value if key == "pooling" else (bool(int(value)) if key in ("zero_init_residual", "stem_maxpool", "small_stem")
                                                          else float(value) if key == "width_mult" else int(value))
    if config.pooling is not None:
        kwargs.setdefault("pooling", config.pooling)  # the recipe's pooling unless --opt names one
    builder = {"mobilenet_v2": build_mobilenet_v2, "resnet50": build_resnet50,
               "compact": lambda size, **kw: _compact(config.width, size, **kw)}.get(backbone)
    model = MultiHeadClassifier(COMBO, BackboneSpec(backbone, config.width, config.input_size, pooling=config.pooling),
                                pretext_head=False, joint_head=config.joint_head, dropout=config.dropout)
    if builder is not None and (options or backbone != "compact"):
        torch.manual_seed(config.seed)
        model.backbone = builder(config.input_size, **kwargs)
        f = model.backbone.num_features
        model.heads = nn.ModuleList(nn.Linear(f, size) for size in COMBO.sizes)
        if model.joint_head is not None:
            model.joint_head = nn.Linear(f, model.joint_head.out_features)
    if gem:
        model.backbone.pool = _GeneralisedMean()
    if feature_bn:
        model.backbone.pool = nn.Sequential(model.backbone.pool, nn.BatchNorm1d(model.backbone.num_features))
    if momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = momentum
    layout = torch.channels_last if use_channels_last(config.channels_last) else torch.contiguous_format
    return model.to(memory_format=layout)


def speed(args) -> None:
    torch.manual_seed(0)
    config = _override(load_config("report"), args.set)
    x = torch.rand(args.batch, 1, 56, 56)
    y = torch.stack([torch.randint(0, 10, (args.batch,)), torch.randint(0, 26, (args.batch,))], 1)
    for precision in args.precisions:
        for layout in args.layouts:
            cfg = dataclasses.replace(config, backbone=args.backbone, channels_last=layout == "channels_last")
            model = probe_model(cfg, args.backbone, args.opt).train()
            opt = _make_optimizer(cfg, model)
            dtype = torch.bfloat16 if precision == "bf16" else None
            times, cpu = [], []
            for i in range(args.steps + 1):
                began, began_cpu = time.perf_counter(), time.process_time()
                with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    out = model(x)
                loss = supervised_loss(out, y, COMBO.names, cfg.group_weights).total
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i:
                    times.append(time.perf_counter() - began)
                    cpu.append(time.process_time() - began_cpu)
            per, per_cpu = float(np.median(times)), float(np.median(cpu))
            print(f"{args.backbone:13s} {precision:5s} {layout:14s} batch {args.batch}: {per_cpu:7.2f} CPU s/step "
                  f"({args.batch / per_cpu:6.1f} images per CPU second; wall {per:.2f} s/step), median of {args.steps}",
                  flush=True)


def _accuracy(model, x, y, train_mode: bool) -> tuple[float, float, float]:
    """Exact-match, digit and letter accuracy of `model` on (x, y), in training or evaluation mode
    (training mode normalises with the batch's statistics and updates the running ones:
    they are put back)."""
    was = model.training
    saved = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model.train(train_mode)
    with torch.no_grad():
        pred, _ = combine_predictions(model(x))
    model.train(was)
    model.load_state_dict(saved, strict=False)
    right = pred == y
    return float(right.all(dim=1).float().mean()), float(right[:, 0].float().mean()), float(right[:, 1].float().mean())


def _probe_data(args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, held-out inputs, held-out labels): `--n-labeled` images of a
    set in `--data` (its labelled part; held out: the first 512 of its test part, new writers),
    or of a small set generated from ../shared/data (held out: 256 images of the same writers)."""
    if args.data:
        from semilabel.data.readers import read_dataset

        data = read_dataset(args.data)
        if data.test is None or data.test.labels is None:
            raise SystemExit(f"{args.data}: a labelled test part is needed for the held-out score")
        n = min(args.n_labeled, len(data.labeled))
        return (torch.from_numpy(data.labeled.images[:n]), torch.from_numpy(data.labeled.labels[:n]),
                to_input(data.test.images[:512]), torch.from_numpy(data.test.labels[:512]))
    digits = [load_glyph_bank(SHARED / "digits_mnist.npz", 10), load_glyph_bank(SHARED / "digits_unipen.npz", 10)]
    letters = [load_glyph_bank(SHARED / "letters_unipen.npz", 26)]
    splits = make_combo(digits, letters, n_labeled=args.n_labeled, n_unlabeled=256, n_test=0, seed=args.seed)
    return (torch.from_numpy(splits.labeled.images), torch.from_numpy(splits.labeled.labels),
            to_input(splits.unlabeled.images), torch.from_numpy(splits.unlabeled.labels))


def whiten_first_conv(model: MultiHeadClassifier, inputs: torch.Tensor, eps: float = 5e-4) -> None:
    """Initialise the backbone's first 3x3 convolution (k filters) as patch whitening of
    `inputs` (B, 1, H, W, as the network sees them): the top k/2 eigenvectors of the 3x3
    patch covariance, each divided by the square root of its eigenvalue, with their negatives."""
    conv = next(m for m in model.backbone.modules() if isinstance(m, nn.Conv2d))
    k = conv.out_channels
    patches = torch.nn.functional.unfold(inputs, 3, padding=1).transpose(1, 2).reshape(-1, 9)
    patches = patches - patches.mean(dim=0)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    top = vectors[:, -(k // 2):].T / (values[-(k // 2):, None] + eps).sqrt()
    with torch.no_grad():
        conv.weight.copy_(torch.cat([top, -top]).reshape(k, 1, 3, 3))


def learn(args) -> None:
    torch.manual_seed(args.seed)
    config = _override(dataclasses.replace(load_config(args.config), backbone=args.backbone), args.set)
    train_x, train_y, val_x, val_y = _probe_data(args)
    filtered = median_filtered if args.median else (lambda x: x)
    val_x = filtered(val_x)
    model = probe_model(config, args.backbone, args.opt).train()
    if args.whiten:
        whiten_first_conv(model, filtered(to_input(train_x[:2000])))
    opt = _make_optimizer(config, model)
    b = batch_size_for(config.batch_size, torch.device("cpu"))
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(train_x))
    first: dict[str, int | None] = {"batch_train": None, "val_eval": None, "val_train": None}
    began = time.perf_counter()
    print(f"# {args.backbone} options={args.opt} set={args.set} median={args.median} batch={b} lr={config.lr} "
          f"warmup={config.warmup_fraction} weights={config.group_weights} steps={args.steps}", flush=True)
    for step in range(args.steps):
        if (step + 1) * b > len(perm):
            perm = rng.permutation(len(train_x))
        i = (step * b) % (len(perm) - b + 1)
        idx = torch.from_numpy(perm[i : i + b])
        x, y = filtered(to_input(train_x[idx])), train_y[idx]
        lr = lr_at(step / args.curve_steps, config.lr, config.schedule, config.warmup_fraction)
        for group in opt.param_groups:
            group["lr"] = lr
        out = model(x)
        loss = supervised_loss(out, y, COMBO.names, config.group_weights)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            with torch.no_grad():
                batch_train = float((combine_predictions(out)[0] == y).all(dim=1).float().mean())
            ev, tr = _accuracy(model, val_x, val_y, False), _accuracy(model, val_x, val_y, True)
            row = {"batch_train": batch_train, "val_eval": ev[0], "val_train": tr[0]}
            for k, v in row.items():
                if first[k] is None and v > 0.10:
                    first[k] = step + 1
            print(f"step {step + 1:4d} lr {lr:.1e} loss {float(loss.total.detach()):.3f} digit {float(loss.parts['loss_digit']):.3f} "
                  f"letter {float(loss.parts['loss_letter']):.3f} | exact: batch(train mode) {batch_train:.3f} "
                  f"val(eval mode) {ev[0]:.3f} (digit {ev[1]:.2f} letter {ev[2]:.2f}) val(train mode) {tr[0]:.3f} "
                  f"(digit {tr[1]:.2f} letter {tr[2]:.2f}) "
                  f"| {time.perf_counter() - began:.0f} s", flush=True)
    print("first step past 10% exact-match: " + ", ".join(f"{k} {v if v is not None else '>' + str(args.steps)}"
                                                          for k, v in first.items()), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "learn"):
        p = sub.add_parser(name)
        p.add_argument("--backbone", default="mobilenet_v2")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="backbone builder option")
        p.add_argument("--steps", type=int, default=3 if name == "speed" else 150)
    speed_p, learn_p = sub.choices["speed"], sub.choices["learn"]
    speed_p.add_argument("--batch", type=int, default=64)
    speed_p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    speed_p.add_argument("--layouts", nargs="+", default=["channels_last", "contiguous"])
    learn_p.add_argument("--every", type=int, default=10)
    learn_p.add_argument("--curve-steps", type=int, default=900, help="steps the lr curve spans (warm-up is a fraction)")
    learn_p.add_argument("--n-labeled", type=int, default=3000)
    learn_p.add_argument("--seed", type=int, default=0)
    learn_p.add_argument("--whiten", action="store_true", help="initialise the first convolution as patch whitening")
    learn_p.add_argument("--median", action="store_true", help="3x3 median filter on every input")
    learn_p.add_argument("--config", default="report", help="recipe whose supervised step is probed")
    learn_p.add_argument("--data", help="a dataset folder to train on (its labelled part) instead of a generated set")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"speed": speed, "learn": learn}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
