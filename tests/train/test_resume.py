"""Exact resume: kill a real `semilabel train` process at chosen points, resume it,
and compare with an uninterrupted run of the same seed.

Kills are real signals (SIGKILL, SIGINT) that the process sends itself at exact
points through `SEMILABEL_FAULT` (see semilabel.faults), so the tests do not depend
on timing. metrics.csv rows (less the timing columns) and the weights in best.pt and
last.pt must be equal bit for bit: on CPU with a fixed thread count there is no
tolerance. Validation is off (val_fraction 0), so best.pt follows the training loss
and changes every epoch, which exercises its handling across kills.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semilabel.cli import main
from semilabel.models.checkpoint import load_checkpoint

TIMING = {"elapsed_s", "images_per_s"}
# 36 labelled images / batch 16 = 3 steps per epoch; the augmented phase ends mid-epoch.
# The last phase runs all three methods (pseudo_label, sesemi, fixmatch) and the EMA teacher.
CONFIG = """\
width: 8
batch_size: 16
sesemi: true
pretext_batch_size: 8
eval_batch_size: 64
pseudo_threshold: 0.0
val_fraction: 0.0
threads: 1
device: cpu
checkpoint_every_steps: 2
ema_decay: 0.9
method_options:
  fixmatch: {threshold: 0.0, ratio: 0.5}
phases:
  - {name: supervised, epochs: 1}
  - {name: augmented, epochs: 1.5, augment: weak, pretext_source: unlabeled}
  - {name: pseudo, epochs: 2, augment: strong, pretext_source: unlabeled, pseudo_labels: true, methods: [fixmatch]}
"""


@pytest.fixture(scope="module")
def reference(tiny_train_dir, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(data, config file, run folder of the uninterrupted run)."""
    root = tmp_path_factory.mktemp("resume")
    data = tiny_train_dir
    config = root / "tiny.yaml"
    config.write_text(CONFIG)
    run = root / "reference"
    assert main(["train", str(data), "--out", str(run), "--config", str(config), "--quiet", "--no-report"]) == 0
    return data, config, run


def _train_subprocess(data: Path, config: Path, run: Path, fault: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEMILABEL_FAULT": fault}
    cmd = [sys.executable, "-m", "semilabel", "train", str(data), "--out", str(run), "--config", str(config),
           "--quiet", "--no-report"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _resume(run: Path) -> None:
    assert main(["train", "--resume", str(run), "--quiet", "--no-report"]) == 0


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _assert_same_run(run: Path, reference: Path) -> None:
    assert _rows(run) == _rows(reference)
    for name in ("best.pt", "last.pt"):
        got, want = load_checkpoint(run / name), load_checkpoint(reference / name)
        for key in ("model", "best_model"):
            assert got[key].keys() == want[key].keys()
            assert all(torch.equal(got[key][k], want[key][k]) for k in want[key]), (name, key)
        assert all(torch.equal(got["ema"]["model"][k], v) for k, v in want["ema"]["model"].items()), name
    assert not list(run.glob(".*.tmp")), "a resumed run clears what a killed write left"


@pytest.mark.parametrize("fault", [
    "step@5",  # mid-epoch, one step after the last periodic checkpoint
    "write:last.pt@4",  # inside a checkpoint write: the temporary file is complete, not yet renamed
    "write:best.pt@3",  # after the epoch's best.pt, before its last.pt and metrics.csv
    "phase_end@2",  # between phases (this one ends mid-epoch), after its last checkpoint
    "relabel@2",  # while pseudo-labelling
])
def test_a_killed_run_resumes_exactly(reference, tmp_path, fault):
    data, config, ref_run = reference
    run = tmp_path / "run"
    proc = _train_subprocess(data, config, run, fault)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (run / "last.pt").exists() and not (run / "summary.json").exists()
    if fault.startswith("write:"):
        assert list(run.glob(f".{fault[6:].split('@')[0]}.*.tmp")), "killed during the write"
    _resume(run)
    _assert_same_run(run, ref_run)


def test_ctrl_c_saves_last_and_says_how_to_resume(reference, tmp_path):
    data, config, ref_run = reference
    run = tmp_path / "run"
    proc = _train_subprocess(data, config, run, "step@4/INT")  # a real SIGINT, delivered after step 4
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines() == [
        f"interrupted at epoch 2, step 4; {run / 'last.pt'} is saved. Continue with: semilabel train --resume {run}"]
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 4
    _resume(run)
    _assert_same_run(run, ref_run)


def test_the_same_seed_gives_the_same_run_through_the_cli(reference, tmp_path):
    """Determinism on the CLI path (the subprocess runs above also show it across processes)."""
    data, config, ref_run = reference
    again = tmp_path / "again"
    assert main(["train", str(data), "--out", str(again), "--config", str(config), "--quiet", "--no-report"]) == 0
    _assert_same_run(again, ref_run)
