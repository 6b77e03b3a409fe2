"""benchmarks/results.csv: one line per benchmark run, read back checked.

A line holds where and when a run was made (commit, date, machine, cores, device),
what ran (row, recipe, flags, minutes, seed, data) and what it scored (test
exact-match, each label group's accuracy, exact-match with test-time copies,
best validation, images/s, the step that left chance, peak GPU memory).
Accuracies are fractions (0.7718, not 77.18%). An empty cell is a figure not known:
lines copied from the lab notes (`source` = "backfill: <notes section>") lack some.

The label groups share one column, `groups` ("digit=0.9286;letter=0.8013"), rather
than a column each: another schema's groups then need no new header, so the file
stays append-only and every old line keeps its meaning.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from semilabel.errors import SemilabelError
from semilabel.io_utils import atomic_write_text

COLUMNS = ("commit", "date", "machine", "cores", "device", "seed", "row", "recipe", "flags", "minutes", "steps",
           "exact", "groups", "tta_exact", "best_val", "images_per_s", "left_chance_step", "peak_gpu_mib", "data",
           "source")
SOURCES = ("runner", "dry-run")  # besides "backfill: <notes section title>"
_COMMIT = re.compile(r"^[0-9a-f]{7,40}(\+dirty)?$")
_GROUP = re.compile(r"^[A-Za-z0-9_.-]+$")


class ResultsError(SemilabelError):
    """A results line, a run folder or a rows file is not what the runner expects."""


@dataclass(frozen=True)
class Record:
    """One line of results.csv, typed; None marks an empty (unknown) cell."""

    commit: str
    date: str  # UTC, ISO 8601: a date (backfilled lines) or a time ending in Z
    machine: str
    cores: int | None
    device: str  # cpu or cuda
    seed: int
    row: str
    recipe: str
    flags: str  # the extra `semilabel train` flags, shell-quoted
    minutes: float | None  # the time budget; None: the recipe's own length
    steps: int | None
    exact: float
    groups: dict[str, float] = field(default_factory=dict)
    tta_exact: float | None = None
    best_val: float | None = None
    images_per_s: float | None = None
    left_chance_step: int | None = None
    peak_gpu_mib: int | None = None
    data: str = ""
    source: str = "runner"

    @property
    def machine_class(self) -> str:
        """What lines that compare share: a GPU's name, or a CPU's maker and family with
        its bf16 path and cores ("AMD EPYC, AVX-512 bf16, 2 cores"); the model number is
        left out, as the notes compare machines at that grain."""
        name, _, features = self.machine.partition(", ")
        if self.device == "cpu":
            name = " ".join(name.split()[:2])
        parts = [name] + ([features] if features else []) + ([f"{self.cores} cores"] if self.cores else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class RunFigures:
    """What a finished run folder says about itself (summary.json, metrics.csv)."""

    steps: int
    exact: float
    groups: dict[str, float]
    tta_exact: float | None
    best_val: float | None
    images_per_s: float
    left_chance_step: int | None
    peak_gpu_mib: int | None


def read_run(run: Path) -> RunFigures:
    """The figures of a run folder that `semilabel train` wrote. A key that is missing
    (renamed in src/semilabel/train/run.py, say) is one ResultsError naming it."""
    path = run / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc.__class__.__name__})") from None

    def need(*keys: str) -> object:
        value: object = summary
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise ResultsError(f"{path}: no {'.'.join(keys)} (has the summary's layout changed?)")
            value = value[key]
        return value

    test = need("test")
    groups = {k: float(v) for k, v in test.items() if k not in ("exact", "count", "copies")}
    if not groups:
        raise ResultsError(f"{path}: test holds no label group's accuracy")
    best_val = summary.get("best_val_exact")
    if best_val is not None:  # a run with validation records when it left chance (None: never)
        left = need("left_chance_step")
    else:
        left = _left_chance_from_metrics(run / "metrics.csv")
    tta = summary.get("test_tta")
    return RunFigures(steps=int(need("steps")), exact=float(need("test", "exact")), groups=groups,
                      tta_exact=None if tta is None else float(tta["exact"]),
                      best_val=None if best_val is None else float(best_val),
                      images_per_s=float(need("images_per_second")),
                      left_chance_step=None if left is None else int(left),
                      peak_gpu_mib=summary.get("peak_gpu_memory_mib"))


def _left_chance_from_metrics(path: Path) -> int | None:
    """The first epoch row of metrics.csv with validation exact-match over 10% (runs
    without the summary's own record); None when there is none."""
    from semilabel.train.fit import CHANCE_EXIT

    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("val_exact") and float(row["val_exact"]) > CHANCE_EXIT:
                return int(float(row["step"]))
    return None


def _fraction(value: float) -> str:
    return f"{value:.6g}"  # 15,000 test images: steps of 0.0000667, so six digits keep every one


def to_cells(record: Record) -> list[str]:
    """The record as results.csv cells, in COLUMNS order."""
    cells = []
    for name in COLUMNS:
        value = getattr(record, name)
        if value is None:
            cells.append("")
        elif name == "groups":
            cells.append(";".join(f"{k}={_fraction(v)}" for k, v in value.items()))
        elif name in ("minutes", "images_per_s"):
            cells.append(f"{value:g}")
        elif isinstance(value, float):
            cells.append(_fraction(value))
        else:
            cells.append(str(value))
    return cells


def csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def append(path: Path, record: Record) -> None:
    """Add one line to results.csv: a new file is written whole and atomically, an
    existing one gets the complete line in a single append (never half a line)."""
    parse_cells(to_cells(record), f"{path} (new line)")  # refuse before writing, not after
    if not path.exists():
        atomic_write_text(path, csv_line(list(COLUMNS)) + csv_line(to_cells(record)))
        return
    header = path.open(newline="").readline().strip()
    if header != ",".join(COLUMNS):
        raise ResultsError(f"{path}: its header is not {','.join(COLUMNS)}; move it aside or fix it")
    data = csv_line(to_cells(record)).encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        if os.pread(fd, 1, os.fstat(fd).st_size - 1) != b"\n":
            data = b"\n" + data  # a file edited by hand without its last newline
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[Record]:
    """Every line of results.csv, checked; the first bad one is a ResultsError naming its line."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != COLUMNS:
            raise ResultsError(f"{path}: header {','.join(header)} is not {','.join(COLUMNS)}")
        return [parse_cells(cells, f"{path} line {reader.line_num}") for cells in reader if cells]


def parse_cells(cells: list[str], where: str) -> Record:
    """A results line as a Record; a cell out of range or of the wrong kind raises
    ResultsError naming `where` and the column."""
    if len(cells) != len(COLUMNS):
        raise ResultsError(f"{where}: {len(cells)} cells, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
    raw = dict(zip(COLUMNS, cells))

    def bad(name: str, why: str) -> ResultsError:
        return ResultsError(f"{where}: column {name} = {raw[name]!r}: {why}")

    def number(name: str, kind: type, low: float, high: float = math.inf, required: bool = False):
        text = raw[name].strip()
        if not text:
            if required:
                raise bad(name, "must not be empty")
            return None
        try:
            value = kind(text)
        except ValueError:
            raise bad(name, f"not {'an integer' if kind is int else 'a number'}") from None
        if not (low <= value <= high) or (kind is float and not math.isfinite(value)):
            raise bad(name, f"outside {low:g}..{high:g}")
        return value

    if not _COMMIT.match(raw["commit"]):
        raise bad("commit", "a git short hash, optionally with +dirty")
    try:
        datetime.datetime.fromisoformat(raw["date"])
    except ValueError:
        raise bad("date", "not an ISO date") from None
    for name in ("machine", "row", "recipe"):
        if not raw[name].strip():
            raise bad(name, "must not be empty")
    if raw["device"] not in ("cpu", "cuda"):
        raise bad("device", "cpu or cuda")
    source = raw["source"]
    if source not in SOURCES and not (source.startswith("backfill: ") and source[10:].strip()):
        raise bad("source", "runner, dry-run or 'backfill: <notes section title>'")
    groups = {}
    for part in filter(None, raw["groups"].split(";")):
        name, _, value = part.partition("=")
        try:
            groups[name] = float(value)
        except ValueError:
            raise bad("groups", "name=fraction;name=fraction") from None
        if not _GROUP.match(name) or not 0.0 <= groups[name] <= 1.0:
            raise bad("groups", "name=fraction;..., each fraction within 0..1")
    minutes = number("minutes", float, 0.0)
    if minutes == 0:
        raise bad("minutes", "a budget must be above 0 (leave it empty for the recipe's own length)")
    return Record(
        commit=raw["commit"], date=raw["date"], machine=raw["machine"], cores=number("cores", int, 1),
        device=raw["device"], seed=number("seed", int, 0, required=True), row=raw["row"], recipe=raw["recipe"],
        flags=raw["flags"], minutes=minutes, steps=number("steps", int, 0),
        exact=number("exact", float, 0.0, 1.0, required=True), groups=groups,
        tta_exact=number("tta_exact", float, 0.0, 1.0), best_val=number("best_val", float, 0.0, 1.0),
        images_per_s=number("images_per_s", float, 0.0), left_chance_step=number("left_chance_step", int, 0),
        peak_gpu_mib=number("peak_gpu_mib", int, 0), data=raw["data"], source=source,
    )


assert tuple(f.name for f in fields(Record)) == COLUMNS, "Record and COLUMNS must list the same columns"
