"""Speed and memory of training on a GPU: the default and report recipes at 56 and
224 px for a fixed number of steps each, and one torchrun run over every GPU when
there are several. Run through benchmarks/gpu_benchmark.sh; writes
benchmarks/RESULTS-GPU.md.

    benchmarks/gpu_benchmark.sh                       # on a GPU machine, under 8 minutes
    DEVICE=cpu benchmarks/gpu_benchmark.sh --scale 0.02 --n 400 --out /tmp/x.md  # a quick dry run on CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
VAL_FRACTION = 0.1  # both recipes hold out 10% of the labelled images

SHORT = {"supervised": 60, "augmented": 120, "pseudo": 120}  # optimiser steps per phase at 56 px
LONG = {"supervised": 20, "augmented": 40, "pseudo": 40}  # ... at 224 px (16x the pixels)
ROWS = [  # (row name, recipe flags, steps of each phase)
    ("default 56 px", ["--config", "default"], SHORT),
    ("default 224 px", ["--config", "default", "--input-size", "224"], LONG),
    ("report 56 px", ["--config", "report"], SHORT),
    ("report 224 px", ["--config", "report", "--input-size", "224"], LONG),
]
RECIPE_BATCH = {"default": None, "report": 64}  # None: by device (512 on a GPU, 128 on a CPU)


def gpu_facts() -> tuple[int, str]:
    import torch

    if not torch.cuda.is_available():
        return 0, "no GPU"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    caps = [".".join(map(str, torch.cuda.get_device_capability(i))) for i in range(len(names))]
    return len(names), ", ".join(f"{n} (compute {c})" for n, c in zip(names, caps))


def make_data(data: Path, n: int) -> str:
    cmd = [sys.executable, "-m", "semilabel", "make-data", "--out", str(data), "--seed", "551",
           "--n-labeled", str(n), "--n-unlabeled", str(n), "--n-test", str(max(n // 2, 10))]
    if SHARED.is_dir():
        cmd += ["--digits", str(SHARED / "digits_mnist.npz"), str(SHARED / "digits_unipen.npz"),
                "--letters", str(SHARED / "letters_unipen.npz")]
    if not (data / "images_l.pkl").exists():
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return shlex.join(os.path.relpath(c, ROOT) if c.startswith("/") else c for c in cmd[3:])


def epochs_for(steps: int, n_labeled: int, batch: int) -> float:
    """Fractional epochs that plan exactly `steps` optimiser steps (see fit's planned steps)."""
    per_epoch = max(1, math.ceil((n_labeled - max(1, round(VAL_FRACTION * n_labeled))) / batch))
    return steps / per_epoch


def train_command(flags: list[str], steps: dict[str, int], n: int, device: str, run: Path,
                  launcher: list[str]) -> list[str]:
    recipe = flags[1]
    batch = RECIPE_BATCH[recipe] or (512 if device.startswith("cuda") or device == "auto" else 128)
    sets = []
    for phase, count in steps.items():
        sets += ["--set", f"phases.{phase}.epochs={epochs_for(count, n, batch):.6f}"]
    return [*launcher, "-m", "semilabel", "train", str(ROOT / "benchmarks" / "work" / f"gpu-combo-{n}"),
            "--out", str(run), "--force", "--no-report", "--quiet", "--device", device, *flags, *sets]


def run_row(name: str, cmd: list[str], run: Path) -> dict:
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"row": name, "error": tail[0], "wall": wall}
    summary = json.loads((run / "summary.json").read_text())
    return {"row": name, "wall": wall, **summary}


def table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| row | device | precision | batch | steps | images/s | peak GPU memory (MiB) | test exact | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | failed: {r['error']} | | | | | | | {r['wall']:.0f} |")
            continue
        exact = r.get("test", {}).get("exact")
        lines.append(f"| {r['row']} | {r['device']} | {r['precision']} | {r['batch_size']} | {r['steps']} | "
                     f"{r['images_per_second']:.0f} | {r.get('peak_gpu_memory_mib', '-')} | "
                     f"{'-' if exact is None else f'{exact:.2%}'} | {r['wall']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--n", type=int, default=10000, help="labelled and unlabelled images (test: half)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every row's step counts")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS-GPU.md")
    args = parser.parse_args(argv)
    n_gpus, gpus = gpu_facts()
    if args.device.startswith("cuda") and n_gpus == 0:
        print("no CUDA GPU here: nothing measured (RESULTS-GPU.md left as it is)", file=sys.stderr)
        return 1
    work = ROOT / "benchmarks" / "work"
    data_cmd = make_data(work / f"gpu-combo-{args.n}", args.n)
    results = []
    plan = [(name, flags, {k: max(1, round(v * args.scale)) for k, v in steps.items()}, [sys.executable])
            for name, flags, steps in ROWS]
    if n_gpus > 1 and args.device.startswith("cuda"):
        name, flags, steps = plan[0][:3]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpus}"]
        plan.append((f"{name}, torchrun x{n_gpus}", flags, steps, launcher))
    device = "cuda" if args.device.startswith("cuda") else args.device
    import torch

    header = (f"# GPU benchmark results\n\nMade by `benchmarks/gpu_benchmark.sh` on "
              f"{datetime.date.today().isoformat()}: {gpus}; torch {torch.__version__}, {platform.machine()}. "
              f"Data: `semilabel {data_cmd}`. Each row trains a fixed number of steps "
              f"(the phases' epochs set to match) and scores the test part; images/s counts every image through "
              f"forward and backward; peak memory is rank 0's `torch.cuda.max_memory_allocated`.")
    commands = []
    for name, flags, steps, launcher in plan:
        run = work / "gpu-runs" / name.replace(" ", "-").replace(",", "")
        cmd = train_command(flags, steps, args.n, device, run, launcher)
        commands.append(shlex.join(["semilabel", *cmd[cmd.index("train"):]]).replace(str(ROOT) + "/", ""))
        results.append(run_row(name, cmd, run))
        print(f"{name}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
        # written after every row, so a run cut short still leaves its table
        text = table(results, header) + "\nCommands:\n\n" + "\n".join(f"- `{c}`" for c in commands) + "\n"
        args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
