"""Prediction throughput on the CPU: the compact default vs the MobileNetV2 recipe.

Freshly initialised models (accuracy is irrelevant to speed) predict the same random
56x56 images through `semilabel.models.inference.predict`, on every core, after one
warm-up batch. Prints a markdown table.

    .venv/bin/python benchmarks/predict_throughput.py                 # 5,000 images
    .venv/bin/python benchmarks/predict_throughput.py --n 500 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from semilabel.config import apply_overrides, load_config
from semilabel.data.schema import COMBO
from semilabel.models.inference import predict
from semilabel.predict import cpu_count, torch_threads
from semilabel.train.checkpoint import build_model

RECIPES = {  # label -> config overrides
    "compact (default)": {},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},
}


def measure(overrides: dict, images: np.ndarray, batch_size: int, repeats: int, tta: int) -> dict:
    config = apply_overrides(load_config("default"), overrides)
    torch.manual_seed(0)
    model = build_model(config, COMBO).eval()
    params = sum(p.numel() for p in model.parameters())
    predict(model, images[:batch_size], batch_size, tta=tta)  # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, images, batch_size, tta=tta)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"backbone": config.backbone, "input": config.input_size, "params": params,
            "seconds": best, "rate": len(images) / best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="images per measurement")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per model; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = every core)")
    parser.add_argument("--tta", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()

    images = np.random.default_rng(0).integers(0, 256, size=(args.n, 56, 56), dtype=np.uint8)
    with torch_threads(args.threads):
        threads = torch.get_num_threads()
        rows = [(name, measure(RECIPES[name], images, args.batch_size, args.repeats, args.tta))
                for name in args.recipes]
    print(f"predict throughput: {args.n} random 56x56 images, batch {args.batch_size}, tta {args.tta}, "
          f"{threads} torch threads ({cpu_count()} cores available), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}; best of {args.repeats}\n")
    print("| model | backbone input | parameters | seconds | images/s | ms/image |")
    print("|---|---|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['input']} px | {r['params'] / 1e6:.2f} M | {r['seconds']:.2f} | "
              f"{r['rate']:,.0f} | {1000 / r['rate']:.2f} |")


if __name__ == "__main__":
    main()
