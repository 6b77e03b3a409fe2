"""Accuracy and speed of the training recipes on a writer-disjoint Combo set.

Builds the set from ../shared/data with `make-data --seed 551`, trains each row with
`semilabel train --time-budget`, one at a time, and writes benchmarks/RESULTS.md.

    python benchmarks/train_benchmark.py                       # everything
    python benchmarks/train_benchmark.py --rows default report # main rows only
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
    "report": ["--config", "report"],
    # a wider compact net: more capacity per step, half the steps (measured before the joint head)
    "no joint head, with SESEMI, width 48": ["--config", "default", "--no-joint-head", "--sesemi", "--set", "width=48"],
}
# Each differs from `default`, or from `default --no-joint-head` (the default while
# they were measured), by one setting; the same budget as the main rows.
ABLATIONS = {
    "no joint head": ["--config", "default", "--no-joint-head"],
    "no joint head, with SESEMI": ["--config", "default", "--no-joint-head", "--sesemi"],
    "no joint head, no pseudo-labels": ["--config", "default", "--no-joint-head", "--no-pseudo"],
    "no joint head, letter weight 5": ["--config", "default", "--no-joint-head", "--letter-weight", "5"],
    "no augmentation": ["--config", "default", "--no-augment"],
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


def train(name: str, flags: list[str], data: Path, runs: Path, minutes: float, log_dir: Path) -> dict:
    slug = "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c == "-")
    out = runs / f"{slug}-{minutes:g}min"
    cmd = semilabel() + ["train", str(data), "--out", str(out), "--time-budget", f"{minutes:g}", "--force",
                         "--no-report", "--quiet"] + flags
    started = time.monotonic()
    with (log_dir / f"{slug}-{minutes:g}min.log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    return {
        "name": name, "minutes": minutes, "exact": test["exact"], "digit": test["digit"], "letter": test["letter"],
        "val_exact": summary["best_val_exact"], "images_per_second": summary["images_per_second"],
        "epochs": summary["epochs"], "wall_seconds": round(wall), "command": "semilabel " + " ".join(
            shlex.quote(_shown(c) if c in (str(data), str(out)) else c) for c in cmd[3:] if c not in ("--quiet",)),
    }


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
        "exact-match (10% of the labelled images). Images/s counts every image through forward and backward "
        "(labelled, pseudo-labelled and SESEMI), averaged over the training steps.",
        "",
        "| row | budget (min) | test exact | digit | letter | val exact | images/s | epochs | wall (s) | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['minutes']:g} | {r['exact']:.2%} | {r['digit']:.2%} | {r['letter']:.2%} | "
                     f"{r['val_exact']:.2%} | {r['images_per_second']:.0f} | {r['epochs']} | {r['wall_seconds']} | "
                     f"`{r['command']}` |")
    # hand-written notes below the marker survive a rerun
    old = path.read_text() if path.exists() else ""
    kept = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else "\n"
    path.write_text("\n".join(lines) + "\n\n" + NOTES_MARKER + kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=["default", "report", "ablations"])
    parser.add_argument("--minutes", type=float, default=20.0, help="budget of the main rows")
    parser.add_argument("--ablation-minutes", type=float, default=20.0)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if not (SHARED / "digits_mnist.npz").exists():
        sys.exit(f"needs the glyph banks in {SHARED}")
    data, runs, logs = args.work / "combo-551", args.work / "runs", args.work / "logs"
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
    for name, flags, minutes in plan:
        print(f"[{datetime.datetime.now():%H:%M}] {name}: {minutes:g} min", flush=True)
        result = train(name, flags, data, runs, minutes, logs)
        rows = [r for r in rows if (r["name"], r["minutes"]) != (name, minutes)] + [result]
        done_file.write_text(json.dumps(rows, indent=2))
        write_results(args.results, rows, data_cmd)
        print(f"    exact {result['exact']:.2%} digit {result['digit']:.2%} letter {result['letter']:.2%} "
              f"{result['images_per_second']:.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
