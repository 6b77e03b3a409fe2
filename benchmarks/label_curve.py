"""The label curve: test exact-match against the number of labelled images, with and
without the unlabelled ones, from results.csv.

Its points are the rows of benchmarks/rows/labels.yaml, named `labels-<N>k-<kind>`:
`without` (`--no-unlabeled`) and `with-softmatch` (SoftMatch weights and distribution
alignment, the default recipe's options since bcd6799) at batch 128, `with` (FlexMatch
thresholds, its options before), and `without-batch-32` and `with-batch-32` (SoftMatch +
alignment), the batch a CPU run of the default recipe takes where its budget passes over
the labelled images 150 times or more (1,000 and 3,000 labels in 20 minutes). At 30,000
labels the main row `default` stands for `without` (`methods: auto` chooses none there).
Only 20-minute CPU lines of the machine class most of the curve's lines come from are
taken, so that the points compare. `python benchmarks/runner.py curve` writes the figure
(label_curve.png); the table is part of RESULTS.md's generated part.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from results_csv import Record

KINDS = {"without": ("labelled images only (--no-unlabeled), batch 128", "tab:gray"),
         "with": ("with the unlabelled images: FlexMatch thresholds, batch 128", "tab:blue"),
         "with-softmatch": ("with them: SoftMatch weights + alignment, batch 128", "tab:orange"),
         "without-batch-32": ("labelled images only, batch 32", "tab:olive"),
         "with-batch-32": ("with them: SoftMatch + alignment, batch 32", "tab:red")}
ROW = re.compile(r"^labels-(\d+)k-(" + "|".join(map(re.escape, KINDS)) + r")$")
# each kind with the unlabelled images, and the kind its gain is counted against (the same batch)
GAINS = {"with": "without", "with-softmatch": "without", "with-batch-32": "without-batch-32"}
FULL = 30000  # the benchmark data's labelled images
MINUTES = 20.0


def _point(record: Record) -> tuple[int, str] | None:
    """(labels, kind: a key of KINDS) of a curve line, None for any other line."""
    if record.source == "dry-run" or record.device != "cpu" or record.minutes != MINUTES:
        return None
    match = ROW.match(record.row)
    if match:
        return int(match.group(1)) * 1000, match.group(2)
    if record.row == "default" and record.recipe == "default" and not record.flags:
        return FULL, "without"
    return None


def points(records: list[Record]) -> tuple[str | None, dict[tuple[int, str], list[Record]]]:
    """(machine class, {(labels, kind): its lines}) of the class most curve rows come from."""
    curve = [(r, p) for r in records if (p := _point(r)) is not None]
    named = Counter(r.machine_class for r, p in curve if ROW.match(r.row))
    if not named:
        return None, {}
    machine = named.most_common(1)[0][0]
    out: dict[tuple[int, str], list[Record]] = {}
    for record, point in curve:
        if record.machine_class == machine:
            out.setdefault(point, []).append(record)
    return machine, out


def _mean(runs: list[Record]) -> float:
    return sum(r.exact for r in runs) / len(runs)


def _cell(runs: list[Record] | None) -> str:
    if not runs:
        return "not run"
    values = [r.exact for r in runs]
    mean = sum(values) / len(values)
    spread = f" ± {(max(values) - min(values)) * 50:.1f}" if len(values) > 1 else ""
    return f"{mean:.1%}{spread} ({len(values)})"


def table(records: list[Record]) -> list[str]:
    """The markdown table (empty without any curve line)."""
    machine, found = points(records)
    if machine is None:
        return []
    out = ["## The label curve", "",
           f"Test exact-match (mean ± half range, runs), 20 minutes, {machine}; rows: "
           "[rows/labels.yaml](rows/labels.yaml), figure: [label_curve.png](label_curve.png).", "",
           "| labels | batch 128: without the unlabelled images | with them: FlexMatch thresholds | gain (points) "
           "| with them: SoftMatch weights + alignment | gain (points) | batch 32: without them "
           "| with them: SoftMatch + alignment | gain (points) |", "|---|---|---|---|---|---|---|---|---|"]
    for n in sorted({n for n, _ in found}):
        cells = []
        for kind in KINDS:
            runs = found.get((n, kind))
            cells.append(_cell(runs))
            if kind in GAINS:
                base = found.get((n, GAINS[kind]))
                cells.append(f"{(_mean(runs) - _mean(base)) * 100:+.1f}" if runs and base else "")
        out.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return out


def draw(records: list[Record], path: Path) -> bool:
    """The figure: exact-match against labels (log scale), one line per kind, each run a dot."""
    from semilabel.report_figures import label_curve_figure

    machine, found = points(records)
    if machine is None:
        return False
    series = [(label, colour, [(n, r.exact) for (n, k), runs in found.items() if k == kind for r in runs])
              for kind, (label, colour) in KINDS.items()]
    label_curve_figure(series, path, title=f"label curve, 20 minutes, {machine}",
                       xlabel="labelled images (the rest of 60,000 unlabelled)")
    return True
