"""Accuracy and speed of the training recipes on a writer-disjoint Combo set.

Builds the set from ../shared/data with `make-data --seed 551` (the generator drawn
like the original images), trains each row with `semilabel train --time-budget` for
every seed, one at a time, and writes benchmarks/RESULTS.md: one line per run, then
the mean and spread per row.

    python benchmarks/train_benchmark.py --rows default --seeds 0 1     # the main row, two seeds
    python benchmarks/train_benchmark.py --rows default report ablations
    python benchmarks/train_benchmark.py --rows ablations --ablation-minutes 5
"""

from __future__ import annotations

import argparse
import datetime
import json
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

MAIN_ROWS = {
    "default": ["--config", "default"],
    "fixmatch": ["--config", "fixmatch"],
    "pseudo": ["--config", "pseudo"],
    "report": ["--config", "report"],
}
# Each differs from `pseudo` (the default recipe until 2026-12-04) by one setting; the same budget as the main rows.
ABLATIONS = {
    "no unlabelled images": ["--config", "pseudo", "--no-unlabeled"],
    "with SESEMI": ["--config", "pseudo", "--sesemi"],
    "strong augmentation of labelled rows": ["--config", "pseudo", "--set", "phases.augmented.augment=strong",
                                             "--set", "phases.pseudo.augment=strong"],
    "no augmentation": ["--config", "pseudo", "--no-augment"],
    "EMA teacher 0.999": ["--config", "pseudo", "--set", "ema_decay=0.999"],
    "FixMatch beside the pseudo-labels": ["--config", "pseudo", "--set", "phases.pseudo.methods=[fixmatch]"],
    "label smoothing 0.1": ["--config", "pseudo", "--set", "label_smoothing=0.1"],
    "average+max pooling": ["--config", "pseudo", "--set", "pooling=avgmax"],
}


def semilabel() -> list[str]:
    return [sys.executable, "-m", "semilabel"]


def make_data(data: Path) -> str:
    cmd = semilabel() + ["make-data", "--digits", str(SHARED / "digits_mnist.npz"), str(SHARED / "digits_unipen.npz"),
                         "--letters", str(SHARED / "letters_unipen.npz"), "--out", str(data), "--seed", "551"]
    if not (data / "images_l.pkl").exists():
        subprocess.run(cmd, check=True)
    return " ".join(shlex.quote(_shown(c) if "/" in c else c) for c in cmd[3:])


def _shown(path: Path | str) -> str:
    """A path as a reader would type it from the repository root."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def plateau_step(run: Path) -> int | None:
    """The optimiser step at which validation exact-match first passed 10%: the run's own
    record (checked every `plateau_check_steps` steps), else the first such metrics row."""
    import csv

    from semilabel.train.fit import CHANCE_EXIT

    summary = json.loads((run / "summary.json").read_text())
    if summary.get("left_chance_step") is not None:
        return int(summary["left_chance_step"])
    with (run / "metrics.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("val_exact") and float(row["val_exact"]) > CHANCE_EXIT:
                return int(float(row["step"]))
    return None


def train(name: str, flags: list[str], data: Path, runs: Path, minutes: float, seed: int, log_dir: Path) -> dict:
    slug = "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c == "-") + f"-{minutes:g}min-s{seed}"
    out = runs / slug
    cmd = semilabel() + ["train", str(data), "--out", str(out), "--time-budget", f"{minutes:g}", "--force",
                         "--no-report", "--quiet", "--seed", str(seed)] + flags
    started = time.monotonic()
    with (log_dir / f"{slug}.log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    return {
        "name": name, "minutes": minutes, "seed": seed, "exact": test["exact"], "digit": test["digit"],
        "letter": test["letter"], "val_exact": summary["best_val_exact"],
        "images_per_second": summary["images_per_second"], "epochs": summary["epochs"],
        "plateau_step": plateau_step(out), "wall_seconds": round(wall), "command": "semilabel " + " ".join(
            shlex.quote(_shown(c) if c in (str(data), str(out)) else c) for c in cmd[3:] if c not in ("--quiet",)),
    }


def _mean_spread(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.2%}" + (f" ± {(max(values) - min(values)) / 2:.2%}" if len(values) > 1 else "")


NOTES_MARKER = "<!-- generated table ends; notes below are kept -->"


def write_results(path: Path, rows: list[dict], data_cmd: str) -> None:
    import torch

    lines = [
        "# Training benchmark results",
        "",
        f"Made by `python benchmarks/train_benchmark.py` on {datetime.date.today()}: {os.cpu_count()} CPU cores, "
        f"{platform.machine()}, torch {torch.__version__}, no GPU. Data: `semilabel {data_cmd}` "
        "(30,000 labelled, 30,000 unlabelled, 15,000 test images; test glyphs from writers not used for training).",
        "",
        "Exact-match, digit and letter accuracy are on the writer-disjoint test part; `val` is the best validation "
        "exact-match (5% of the labelled images, no training image sharing a glyph with them). Images/s counts every "
        "image through forward and backward (labelled, FixMatch, pseudo-labelled and SESEMI rows), averaged over the "
        "training steps; `plateau step` is the optimiser step at which exact-match on 256 validation images first "
        "passed 10% (checked every 25 steps). Mean ± half the range over the seeds:",
        "",
        "| row | budget (min) | seeds | test exact | digit | letter | images/s | plateau step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["name"], r["minutes"]), []).append(r)
    for (name, minutes), runs in groups.items():
        steps = [str(r["plateau_step"]) for r in runs]
        lines.append(f"| {name} | {minutes:g} | {len(runs)} | {_mean_spread([r['exact'] for r in runs])} | "
                     f"{_mean_spread([r['digit'] for r in runs])} | {_mean_spread([r['letter'] for r in runs])} | "
                     f"{sum(r['images_per_second'] for r in runs) / len(runs):.0f} | {', '.join(steps)} |")
    lines += ["", "Each run:", "",
              "| row | seed | test exact | digit | letter | val exact | epochs | wall (s) | command |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['seed']} | {r['exact']:.2%} | {r['digit']:.2%} | {r['letter']:.2%} | "
                     f"{r['val_exact']:.2%} | {r['epochs']} | {r['wall_seconds']} | `{r['command']}` |")
    # hand-written notes below the marker survive a rerun
    old = path.read_text() if path.exists() else ""
    kept = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n"
    path.write_text("\n".join(lines) + "\n\n" + NOTES_MARKER + kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=["default", "report", "ablations"])
    parser.add_argument("--minutes", type=float, default=20.0, help="budget of the main rows")
    parser.add_argument("--ablation-minutes", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run per seed for every row")
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if not (SHARED / "digits_mnist.npz").exists():
        sys.exit(f"needs the glyph banks in {SHARED}")
    data, runs, logs = args.work / "combo-cal551", args.work / "runs", args.work / "logs"
    runs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    data_cmd = make_data(data)
    done_file = args.work / "rows.json"
    rows = json.loads(done_file.read_text()) if done_file.exists() else []
    plan = []
    for row in args.rows:
        if row == "ablations":
            if args.ablation_minutes != args.minutes:  # the reference row at the ablations' budget
                plan.append(("default", MAIN_ROWS["default"], args.ablation_minutes))
            plan += [(name, flags, args.ablation_minutes) for name, flags in ABLATIONS.items()]
        else:
            plan.append((row, MAIN_ROWS[row], args.minutes))
    for (name, flags, minutes), seed in ((p, s) for p in plan for s in args.seeds):
        print(f"[{datetime.datetime.now():%H:%M}] {name}: {minutes:g} min, seed {seed}", flush=True)
        result = train(name, flags, data, runs, minutes, seed, logs)
        rows = [r for r in rows if (r["name"], r["minutes"], r.get("seed")) != (name, minutes, seed)] + [result]
        done_file.write_text(json.dumps(rows, indent=2))
        write_results(args.results, rows, data_cmd)
        print(f"    exact {result['exact']:.2%} digit {result['digit']:.2%} letter {result['letter']:.2%} "
              f"{result['images_per_second']:.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
