"""benchmarks/results.csv, the table RESULTS.md opens with, the rows files, and the runner end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import results_csv  # noqa: E402  (benchmarks/ is not a package)
import results_table  # noqa: E402
import row_files  # noqa: E402
from results_csv import COLUMNS, Record, ResultsError  # noqa: E402


def test_results_md_opens_with_the_table_results_csv_makes_now():
    text = (BENCH / "RESULTS.md").read_text()
    part = results_table.current_part(text)
    assert part is not None, "RESULTS.md lacks the generated part's markers"
    assert text.startswith("# Benchmark results\n\n" + results_table.BEGIN)
    expected = results_table.generated_part(results_csv.read(BENCH / "results.csv"), BENCH / "notes")
    assert part == expected, "RESULTS.md is out of date: run `python benchmarks/runner.py table`"


def test_every_results_line_parses_within_range():
    with (BENCH / "results.csv").open() as fh:
        assert fh.readline().rstrip("\n") == ",".join(COLUMNS)
    records = results_csv.read(BENCH / "results.csv")  # raises on any bad cell, naming its line
    assert records, "results.csv holds no line"
    for r in records:
        where = f"{r.row} seed {r.seed} ({r.source})"
        assert r.source == "runner" or r.source.startswith("backfill: "), f"{where}: dry runs stay out of results.csv"
        assert r.steps and r.steps > 0 and r.images_per_s and r.images_per_s > 0, where
        if r.groups:  # every group right is rarer than any one group right
            assert r.exact <= min(r.groups.values()) + 1e-9, where
        assert (r.peak_gpu_mib is not None) <= (r.device == "cuda"), where
    keys = [(r.row, r.recipe, r.flags, r.minutes, r.machine, r.device, r.seed, r.commit) for r in records]
    assert len(keys) == len(set(keys)), "the same run appears twice"


def _record(**changes) -> Record:
    base = dict(commit="abc1234", date="2026-12-07T10:00:00Z", machine="AMD EPYC 9R14, AVX-512 bf16", cores=2,
                device="cpu", seed=0, row="default", recipe="default", flags="", minutes=20.0, steps=100, exact=0.75,
                groups={"digit": 0.9, "letter": 0.8}, tta_exact=0.76, best_val=0.74, images_per_s=700.0,
                left_chance_step=225, peak_gpu_mib=None, data="seed=551", source="runner")
    return Record(**{**base, **changes})


def test_append_and_read_back(tmp_path):
    path = tmp_path / "results.csv"
    first, second = _record(), _record(seed=1, exact=0.7, groups={"colour": 0.5}, flags="--set a=1,2", minutes=None)
    results_csv.append(path, first)
    results_csv.append(path, second)
    assert results_csv.read(path) == [first, second]
    assert path.read_text().count("\n") == 3


@pytest.mark.parametrize("column, value, message", [
    ("exact", "1.2", "exact = '1.2': outside 0..1"),
    ("exact", "", "exact = '': must not be empty"),
    ("groups", "digit=0.9;letter=x", "groups"),
    ("commit", "HEAD", "commit"),
    ("steps", "12.5", "steps = '12.5': not an integer"),
    ("source", "someone", "source"),
    ("date", "yesterday", "date"),
])
def test_a_bad_cell_is_refused_naming_line_and_column(tmp_path, column, value, message):
    path = tmp_path / "results.csv"
    results_csv.append(path, _record())
    cells = results_csv.to_cells(_record(seed=1))
    cells[COLUMNS.index(column)] = value
    with path.open("a") as fh:
        fh.write(results_csv.csv_line(cells))
    with pytest.raises(ResultsError, match=f"line 3: column {message}"):
        results_csv.read(path)


def test_table_means_spread_and_machine_class():
    runs = [_record(seed=0, exact=0.77, groups={"digit": 0.92, "letter": 0.80}),
            _record(seed=1, exact=0.78, groups={}, commit="def5678", date="2026-12-08T09:00:00Z",
                    machine="AMD EPYC 7B13, AVX-512 bf16"),
            _record(seed=0, exact=0.5, flags="--backbone crops"),
            _record(seed=0, exact=0.9, source="dry-run")]
    lines = results_table.table(runs)
    assert len(lines) == 4  # header, rule, and one line per (row, recipe and flags, ...): dry runs left out
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[:6] == ["default", "`default`", "20", "cpu: AMD EPYC, AVX-512 bf16, 2 cores", "2 (0, 1)",
                         "77.50% ± 0.50"]
    assert cells[6] == "digit 92.00% (1 of 2), letter 80.00% (1 of 2)"
    assert cells[-3:] == ["abc1234, def5678", "2026-12-07 to 2026-12-08", "runner"]


def test_notes_are_listed_newest_first_with_their_heading(tmp_path):
    (tmp_path / "2026-12-04-gpu.md").write_text("# GPU rows on one H200\n\ntext\n")
    (tmp_path / "2026-12-06-crops.md").write_text("Intro\n## A backbone that reads crops: 2026-12-06\n")
    assert results_table.notes(tmp_path) == [
        "- [2026-12-06-crops.md](notes/2026-12-06-crops.md): A backbone that reads crops: 2026-12-06",
        "- [2026-12-04-gpu.md](notes/2026-12-04-gpu.md): GPU rows on one H200"]


def test_the_committed_rows_files_load():
    for path in sorted((BENCH / "rows").glob("*.yaml")):
        data, rows = row_files.load(path)
        assert rows and (data.seed == 551 or data.task != "combo"), path  # the benchmark data, or another task
    _, main_rows = row_files.load(BENCH / "rows" / "main.yaml")
    assert {r.name for r in main_rows} >= {"default", "fixmatch", "pseudo", "report", "crops"}
    assert all(r.minutes == 20 and r.seeds == (0, 1) and r.device == "cpu" for r in main_rows)
    _, gpu_rows = row_files.load(BENCH / "rows" / "gpu.yaml")
    assert {r.device for r in gpu_rows} == {"cuda"}


@pytest.mark.parametrize("text, message", [
    ("rows: []", "non-empty list under 'rows'"),
    ("rows:\n  - {name: a, minuts: 3}", "row 1: unknown key 'minuts'"),
    ("rows:\n  - {name: a}\n  - {name: a}", "row 2: name 'a' is used twice"),
    ("rows:\n  - {name: a, minutes: 0}", r"row 1 \(a\): minutes must be a number above 0"),
    ("rows:\n  - {name: a, flags: --seed 3}", r"row 1 \(a\): flag --seed is set by the runner"),
    ("rows:\n  - {name: a, device: tpu}", "device must be cpu or cuda"),
    ("data: {seed: -1}\nrows:\n  - {name: a}", "data: seed must be"),
    ("rows: [", "not valid YAML"),
])
def test_a_bad_rows_file_is_one_line_naming_file_and_row(tmp_path, text, message):
    path = tmp_path / "rows.yaml"
    path.write_text(text)
    with pytest.raises(ResultsError, match=message) as info:
        row_files.load(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def _runner(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(BENCH / "runner.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, Path]:
    """One real dry run of the main rows file's default row: (its results CSV, its work folder)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the runner records the commit: needs a git checkout")
    work = tmp_path_factory.mktemp("bench")
    done = _runner("--rows", str(BENCH / "rows" / "main.yaml"), "--only", "default", "--seeds", "3", "--dry-run",
                   "--work", str(work))
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "dry-run" / "results.csv", work / "dry-run"


def test_a_dry_run_appends_the_run_it_trained(dry_run):
    results, work = dry_run
    [record] = results_csv.read(results)
    assert (record.row, record.recipe, record.seed, record.device, record.source) == ("default", "default", 3, "cpu",
                                                                                       "dry-run")
    assert record.minutes == 0.05 and record.steps >= 1 and record.images_per_s > 0
    assert list(record.groups) == ["digit", "letter"] and record.tta_exact is not None and record.best_val is not None
    assert record.cores >= 1 and record.machine and record.data.startswith("seed=0 n=200/100/100 fp=")
    summary = json.loads((work / "runs" / "default-0.05min-s3" / "summary.json").read_text())
    assert record.exact == pytest.approx(summary["test"]["exact"], abs=1e-6)
    assert record.steps == summary["steps"]


@pytest.mark.parametrize("keys", [("images_per_second",), ("steps",), ("test",), ("test", "exact"),
                                  ("left_chance_step",)])
def test_a_run_without_a_summary_key_is_refused_by_name(dry_run, tmp_path, keys):
    run = tmp_path / "run"
    shutil.copytree(dry_run[1] / "runs" / "default-0.05min-s3", run)
    summary = json.loads((run / "summary.json").read_text())
    figures = results_csv.read_run(run)  # the real run reads
    assert figures.steps == summary["steps"]
    holder = summary
    for key in keys[:-1]:
        holder = holder[key]
    del holder[keys[-1]]
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ResultsError, match=f"summary.json: no {'.'.join(keys)}"):
        results_csv.read_run(run)


def test_the_runner_refuses_an_unknown_row_before_training(tmp_path):
    done = _runner("--rows", str(BENCH / "rows" / "main.yaml"), "--only", "defualt", "--dry-run",
                   "--work", str(tmp_path))
    assert done.returncode == 2
    assert "no row named 'defualt'" in done.stderr and not (tmp_path / "dry-run").exists()


def test_the_label_curve_counts_each_gain_against_the_same_batch():
    import label_curve

    runs = [_record(row="labels-1k-without", exact=0.34), _record(row="labels-1k-with-softmatch", exact=0.45),
            _record(row="labels-1k-without-batch-32", exact=0.37), _record(row="labels-1k-with-batch-32", exact=0.53),
            _record(row="labels-1k-with-batch-32", seed=1, exact=0.51),
            _record(row="labels-1k-with-batch-32", minutes=60.0, exact=0.60)]  # another budget: not a curve point
    lines = label_curve.table(runs)
    (point,) = [line for line in lines if line.startswith("| 1,000 |")]
    assert point == ("| 1,000 | 34.0% (1) | not run |  | 45.0% (1) | +11.0 | 37.0% (1) | 52.0% ± 1.0 (2) | +15.0 |")
