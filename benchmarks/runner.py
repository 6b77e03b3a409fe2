"""The benchmark runner: trains the rows of a rows file and appends each run to results.csv.

Builds the benchmark data when it is missing (`semilabel make-data --seed 551` from
../shared/data into benchmarks/work/data-cal551), trains every row x seed one at a
time with `semilabel train DATA --time-budget M` (rows and their format:
benchmarks/row_files.py), reads each finished run's summary.json and metrics.csv,
appends one line to benchmarks/results.csv (columns: benchmarks/results_csv.py) and
regenerates the table at the top of benchmarks/RESULTS.md.

    python benchmarks/runner.py --rows benchmarks/rows/main.yaml                  # every row, its seeds
    python benchmarks/runner.py --rows benchmarks/rows/main.yaml --only default crops --seeds 2
    python benchmarks/runner.py --rows benchmarks/rows/gpu.yaml                   # on a machine with a GPU
    python benchmarks/runner.py --rows benchmarks/rows/main.yaml --dry-run        # seconds: tiny data and budgets
    python benchmarks/runner.py table                                             # RESULTS.md from results.csv
    python benchmarks/runner.py curve                                             # and the label curve's figure

--dry-run trains on a tiny set of built-in glyphs for 3 seconds a run and writes to
benchmarks/work/dry-run/results.csv (RESULTS.md untouched): it checks the plumbing,
not the recipes. --scale multiplies every budget (0.5: half the minutes).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))  # this checkout's package, as the runs themselves use

import results_csv  # noqa: E402  (after the path is set)
import results_table  # noqa: E402
import row_files  # noqa: E402
from results_csv import Record, ResultsError  # noqa: E402
from row_files import DataSpec, Row  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
BANKS = {"--digits": ("digits_mnist.npz", "digits_unipen.npz"), "--letters": ("letters_unipen.npz",)}
WORK = HERE / "work"  # git-ignored
RESULTS_CSV = HERE / "results.csv"
RESULTS_MD = HERE / "RESULTS.md"
NOTES = HERE / "notes"
DRY_DATA = DataSpec(seed=0, n_labeled=200, n_unlabeled=100, n_test=100, banks="builtin")
DRY_MINUTES = 0.05  # 3 seconds a run


def commit() -> str:
    """HEAD's short hash, with +dirty when the checkout differs from it: a changed or
    new file that git does not ignore (results.csv and RESULTS.md aside: the runner
    itself writes them between runs)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "--", ".",
                      f":(exclude){RESULTS_CSV.relative_to(ROOT)}", f":(exclude){RESULTS_MD.relative_to(ROOT)}")
    except (OSError, subprocess.CalledProcessError):
        raise ResultsError(f"{ROOT}: not a git checkout (the runner records the commit of every run)") from None
    return head + ("+dirty" if changed.strip() else "")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_machine() -> str:
    """The CPU's model name, trimmed, and its fastest bf16 path ("AMD EPYC 9R14, AVX-512 bf16"):
    the CPU rows' speed turns on it."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    model = re.sub(r"\((R|TM|tm)\)|\bCPU\b|@.*$|\b\d+-Core\b|\bProcessor\b", " ", model)
    model = " ".join(model.split())
    if "amx_bf16" in flags:
        return f"{model}, AMX bf16"
    if "avx512_bf16" in flags:
        return f"{model}, AVX-512 bf16"
    if "bf16" in flags:
        return f"{model}, bf16"
    return f"{model}, no native bf16" if flags else model


def gpu_machine(nproc: int) -> str:
    import torch

    if not torch.cuda.is_available():
        raise ResultsError("a row asks for device cuda, but torch sees no GPU here")
    if torch.cuda.device_count() < nproc:
        raise ResultsError(f"a row asks for {nproc} GPUs, torch sees {torch.cuda.device_count()}")
    name = torch.cuda.get_device_name(0)
    return name if nproc == 1 else f"{name} x{nproc}"


def shown(path: Path | str) -> str:
    """A path as a reader would type it from the repository root."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def _env() -> dict[str, str]:
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT / "src") + (os.pathsep + old if old else ""), "PYTHONUNBUFFERED": "1"}


def data_folder(spec: DataSpec, work: Path) -> Path:
    if spec == DataSpec():
        return work / "data-cal551"  # the name the notes use
    if spec.task != "combo":
        return work / f"data-{spec.task}-s{spec.seed}-{spec.n_labeled}-{spec.n_unlabeled}-{spec.n_test}"
    return work / f"data-s{spec.seed}-{spec.n_labeled}-{spec.n_unlabeled}-{spec.n_test}-{spec.banks}"


def build_data(spec: DataSpec, work: Path) -> tuple[Path, str]:
    """The data folder (made by `semilabel make-data` when missing) and its label for
    results.csv: seed, counts and a short hash of the fingerprint make-data recorded."""
    folder = data_folder(spec, work)
    last_written = "images_l.pkl" if spec.task == "combo" else "test"  # dataset.json comes first
    if not (folder / last_written).exists():
        cmd = [sys.executable, "-m", "semilabel", "make-data", "--out", str(folder), "--seed", str(spec.seed),
               "--n-labeled", str(spec.n_labeled), "--n-unlabeled", str(spec.n_unlabeled), "--n-test", str(spec.n_test),
               "--force", "--task", spec.task]
        if spec.banks == "shared" and spec.task == "combo":
            missing = [n for names in BANKS.values() for n in names if not (SHARED / n).is_file()]
            if missing:
                raise ResultsError(f"{SHARED}: lacks {', '.join(missing)} (the glyph banks of the benchmark data)")
            for flag, names in BANKS.items():
                cmd += [flag, *(str(SHARED / n) for n in names)]
        print(f"making the data: semilabel {shlex.join(shown(c) if '/' in c else c for c in cmd[3:])}", flush=True)
        made = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        if made.returncode != 0:
            last = (made.stderr.strip() or "?").splitlines()[-1]
            raise ResultsError(f"make-data exited with {made.returncode}: {last}")
    facts = json.loads((folder / "dataset.json").read_text())
    digest = hashlib.blake2b(json.dumps(facts["fingerprint"], sort_keys=True).encode(), digest_size=4).hexdigest()
    counts = facts["counts"]
    label = f"seed={facts['seed']} n={counts['labeled']}/{counts['unlabeled']}/{counts['test']} fp={digest}"
    if spec.task != "combo":
        return folder, f"{spec.task} {label}"
    return folder, label + (" built-in glyphs" if spec.banks == "builtin" else "")


def train_command(row: Row, seed: int, minutes: float | None, data: Path, run: Path) -> list[str]:
    launcher = [sys.executable]
    if row.nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={row.nproc}"]
    recipe = str(ROOT / row.recipe) if row.recipe.endswith((".yaml", ".yml")) else row.recipe
    budget = [] if minutes is None else ["--time-budget", f"{minutes:g}"]
    return [*launcher, "-m", "semilabel", "train", str(data), "--out", str(run), "--force", "--no-report", "--quiet",
            "--seed", str(seed), "--config", recipe, "--device", row.device, *budget, *row.flags]


def slug(row: Row, minutes: float | None, seed: int) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", row.name.lower()).strip("-")
    return f"{name}-{'own' if minutes is None else f'{minutes:g}min'}-s{seed}"


def run_row(row: Row, seed: int, minutes: float | None, data: Path, data_label: str, work: Path, machine: str,
            head: str, source: str) -> Record:
    """Train one row and seed; the run's figures as a results line (raises on a failed run)."""
    name = slug(row, minutes, seed)
    run, log = work / "runs" / name, work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = train_command(row, seed, minutes, data, run)
    words = [shown(c) if c in (str(data), str(run)) or c.endswith(".yaml") else c for c in cmd[cmd.index("train"):]]
    print(f"[{datetime.datetime.now():%H:%M}] {row.name}, seed {seed}: semilabel {shlex.join(words)}", flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env()).returncode
    if code != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise ResultsError(f"{row.name} seed {seed}: training exited with {code} ({shown(log)}): " + " / ".join(tail))
    figures = results_csv.read_run(run)
    groups = ", ".join(f"{k} {v:.2%}" for k, v in figures.groups.items())
    print(f"    exact {figures.exact:.2%}, {groups}, {figures.images_per_s:,.0f} images/s, {figures.steps:,} steps, "
          f"{time.monotonic() - wall:.0f} s", flush=True)
    return Record(commit=head, date=started.strftime("%Y-%m-%dT%H:%M:%SZ"), machine=machine, cores=cores(),
                  device=row.device, seed=seed, row=row.name, recipe=row.recipe, flags=shlex.join(row.flags),
                  minutes=minutes, steps=figures.steps, exact=figures.exact, groups=figures.groups,
                  tta_exact=figures.tta_exact, best_val=figures.best_val, images_per_s=figures.images_per_s,
                  left_chance_step=figures.left_chance_step, peak_gpu_mib=figures.peak_gpu_mib, data=data_label,
                  source=source)


def write_table(results: Path = RESULTS_CSV, out: Path = RESULTS_MD, notes: Path = NOTES) -> bool:
    """Regenerate RESULTS.md's generated part; True when it changed."""
    from semilabel.io_utils import atomic_write_text

    part = results_table.generated_part(results_csv.read(results), notes)
    text = out.read_text() if out.exists() else "# Benchmark results\n"
    new = results_table.replace_part(text, part)
    if new != text:
        atomic_write_text(out, new)
    return new != text


def run(args: argparse.Namespace) -> int:
    data_spec, rows = row_files.load(args.rows)
    if args.only:
        names = [r.name for r in rows]
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise ResultsError(f"{args.rows}: no row named {unknown[0]!r} ({', '.join(names)})")
        rows = [r for r in rows if r.name in args.only]
    work = args.work / "dry-run" if args.dry_run else args.work
    results = (args.results or (work / "results.csv" if args.dry_run else RESULTS_CSV)).resolve()
    results_csv.read(results)  # a damaged results file stops the runner before hours of training, not after
    machines = {r.nproc: gpu_machine(r.nproc) for r in rows if r.device == "cuda"}
    head = commit()
    data, data_label = build_data(DRY_DATA if args.dry_run else data_spec, work)
    failed = []
    for row in rows:
        minutes = DRY_MINUTES if args.dry_run else (None if row.minutes is None else round(row.minutes * args.scale, 4))
        for seed in args.seeds or row.seeds:
            machine = machines[row.nproc] if row.device == "cuda" else cpu_machine()
            try:
                record = run_row(row, seed, minutes, data, data_label, work, machine, head,
                                 "dry-run" if args.dry_run else "runner")
            except ResultsError as exc:
                print(f"runner: {exc}", file=sys.stderr, flush=True)
                failed.append(f"{row.name} seed {seed}")
                continue
            results_csv.append(results, record)
            if results == RESULTS_CSV:
                write_table()
    if failed:
        print(f"runner: failed: {', '.join(failed)} (nothing written for them)", file=sys.stderr)
    print(f"results: {shown(results)}" + ("" if results != RESULTS_CSV else f"; table: {shown(RESULTS_MD)}"))
    return 1 if failed else 0


def table(args: argparse.Namespace) -> int:
    changed = write_table(args.results, args.out)
    print(f"{shown(args.out)}: {'regenerated' if changed else 'already up to date'} from {shown(args.results)}")
    return 0


def curve(args: argparse.Namespace) -> int:
    import label_curve

    drawn = label_curve.draw(results_csv.read(args.results), args.figure)
    changed = write_table(args.results)
    print(f"{'drew' if drawn else 'no curve lines for'} {shown(args.figure)}; "
          f"{shown(RESULTS_MD)} {'regenerated' if changed else 'unchanged'}")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["curve"]:
        p = argparse.ArgumentParser(prog="runner.py curve",
                                    description="Draw the label curve (label_curve.png) and regenerate RESULTS.md.")
        p.add_argument("--results", type=Path, default=RESULTS_CSV)
        p.add_argument("--figure", type=Path, default=HERE / "label_curve.png")
        args = p.parse_args(argv[1:])
        args.command = curve
        return args
    if argv[:1] == ["table"]:
        p = argparse.ArgumentParser(prog="runner.py table", description="Regenerate RESULTS.md's table and notes list.")
        p.add_argument("--results", type=Path, default=RESULTS_CSV)
        p.add_argument("--out", type=Path, default=RESULTS_MD)
        args = p.parse_args(argv[1:])
        args.command = table
        return args
    p = argparse.ArgumentParser(prog="runner.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=Path, required=True, help="rows file, e.g. benchmarks/rows/main.yaml")
    p.add_argument("--only", nargs="+", metavar="NAME", help="train only these rows")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="these seeds instead of each row's own")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every row's minutes (default 1)")
    p.add_argument("--dry-run", action="store_true", help="tiny built-in data, 3-second runs, results under --work")
    p.add_argument("--results", type=Path, help="CSV to append to (default benchmarks/results.csv)")
    p.add_argument("--work", type=Path, default=WORK, help="data, runs and logs (default benchmarks/work)")
    args = p.parse_args(argv)
    if not args.scale > 0:
        p.error("--scale must be above 0")
    args.command = run
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return args.command(args)
    except ResultsError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
