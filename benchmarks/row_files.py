"""Benchmark rows files (benchmarks/rows/*.yaml): what the runner trains.

    data: {seed: 551}                    # make-data --seed 551 from ../shared/data (30,000 / 30,000 / 15,000)
    defaults: {minutes: 20, seeds: [0, 1], device: cpu}
    rows:
      - {name: default, recipe: default}
      - {name: crops, recipe: default, flags: --backbone crops}

A row: `name` (unique), `recipe` (a built-in recipe or a YAML file, relative to the
repository root), `flags` (more `semilabel train` flags, one string or a list),
`minutes` (the time budget; null trains the recipe's own length), `seeds`, `device`
(cpu or cuda) and `nproc` (processes under torchrun, one GPU each; 1 by default).
`data` may also set n_labeled, n_unlabeled, n_test, `banks: builtin` (the
built-in glyphs instead of ../shared/data) and `task: numbers` (make-data --task numbers,
from the built-in glyphs).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from results_csv import ResultsError

ROW_KEYS = ("name", "recipe", "flags", "minutes", "seeds", "device", "nproc")
DATA_KEYS = ("task", "seed", "n_labeled", "n_unlabeled", "n_test", "banks")
TASKS = ("combo", "numbers")  # make-data --task
# flags the runner sets itself for every run
RESERVED = ("--out", "--seed", "--time-budget", "--device", "--config", "--force", "--quiet", "--resume", "--no-report")


@dataclass(frozen=True)
class DataSpec:
    seed: int = 551
    n_labeled: int = 30000
    n_unlabeled: int = 30000
    n_test: int = 15000
    banks: str = "shared"  # ../shared/data, or "builtin" (the numbers task: always built in)
    task: str = "combo"  # make-data --task


@dataclass(frozen=True)
class Row:
    name: str
    recipe: str = "default"
    flags: tuple[str, ...] = ()
    minutes: float | None = None
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    nproc: int = 1


def load(path: Path) -> tuple[DataSpec, list[Row]]:
    """The data and rows of a rows file; anything off is one ResultsError naming the file and row."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ResultsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not doc["rows"]:
        raise ResultsError(f"{path}: expected a mapping with a non-empty list under 'rows'")
    unknown = set(doc) - {"data", "defaults", "rows"}
    if unknown:
        raise ResultsError(f"{path}: unknown key {sorted(unknown)[0]!r} (data, defaults, rows)")
    data = _data(path, doc.get("data") or {})
    defaults = doc.get("defaults") or {}
    _check_keys(path, "defaults", defaults, set(ROW_KEYS) - {"name"})
    rows: list[Row] = []
    for i, entry in enumerate(doc["rows"]):
        where = f"{path} row {i + 1}"
        if not isinstance(entry, dict):
            raise ResultsError(f"{where}: expected a mapping of {', '.join(ROW_KEYS)}")
        _check_keys(path, f"row {i + 1}", entry, set(ROW_KEYS))
        row = _row(where, {**defaults, **entry})
        if any(r.name == row.name for r in rows):
            raise ResultsError(f"{where}: name {row.name!r} is used twice")
        rows.append(row)
    return data, rows


def _check_keys(path: Path, where: str, mapping: object, allowed: set[str]) -> None:
    if not isinstance(mapping, dict):
        raise ResultsError(f"{path} {where}: expected a mapping")
    unknown = set(mapping) - allowed
    if unknown:
        raise ResultsError(f"{path} {where}: unknown key {sorted(unknown)[0]!r} ({', '.join(sorted(allowed))})")


def _data(path: Path, spec: dict) -> DataSpec:
    _check_keys(path, "data", spec, set(DATA_KEYS))
    for key in ("seed", "n_labeled", "n_unlabeled", "n_test"):
        if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 0):
            raise ResultsError(f"{path} data: {key} must be a whole number >= 0")
    if spec.get("task", "combo") not in TASKS:
        raise ResultsError(f"{path} data: task must be one of {', '.join(TASKS)}")
    if spec.get("banks", "shared") not in ("shared", "builtin"):
        raise ResultsError(f"{path} data: banks must be shared or builtin")
    return DataSpec(**spec)


def _row(where: str, entry: dict) -> Row:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\n,"):
        raise ResultsError(f"{where}: name must be a non-empty string without '/', ',' or line breaks")
    recipe = entry.get("recipe", "default")
    if not isinstance(recipe, str) or not recipe.strip():
        raise ResultsError(f"{where} ({name}): recipe must be a recipe name or a YAML file")
    flags = entry.get("flags", [])
    if isinstance(flags, str):
        flags = shlex.split(flags)
    if not isinstance(flags, list) or not all(isinstance(f, (str, int, float)) for f in flags):
        raise ResultsError(f"{where} ({name}): flags must be a string or a list of strings")
    flags = [str(f) for f in flags]
    taken = [f for f in flags if f.split("=")[0] in RESERVED]
    if taken:
        raise ResultsError(f"{where} ({name}): flag {taken[0]} is set by the runner (use the row's own keys)")
    minutes = entry.get("minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise ResultsError(f"{where} ({name}): minutes must be a number above 0, or null")
    seeds = entry.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                           for s in seeds):
        raise ResultsError(f"{where} ({name}): seeds must be a list of whole numbers >= 0")
    device = entry.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise ResultsError(f"{where} ({name}): device must be cpu or cuda")
    nproc = entry.get("nproc", 1)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1 or (nproc > 1 and device != "cuda"):
        raise ResultsError(f"{where} ({name}): nproc must be 1, or more GPUs with device cuda")
    return Row(name.strip(), recipe, tuple(flags), None if minutes is None else float(minutes), tuple(seeds), device,
               nproc)
