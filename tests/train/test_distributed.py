"""`torchrun --nproc_per_node=2 -m semilabel train` on CPU (gloo) trains like one
process with the same global batch.

Both runs see the same global batches; the two processes split each one, normalise
their losses by the global counts and synchronise BatchNorm statistics
(CpuSyncBatchNorm). The results then differ only by float rounding (the sums run in
another order), which training amplifies step by step, so they are compared with a
tolerance: rtol 1e-3 on metrics and atol 1e-3 on weights after 9 steps, where the
observed differences are about 3e-5. Without synchronised BatchNorm the losses differ
by about 1e-2 from the first step. Settings that keep the comparison meaningful:
dropout 0 (each rank draws its own dropout masks), SGD and a small learning rate
(Adam's normalised steps magnify rounding differences in near-zero gradients).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from semilabel.cli import main
from semilabel.models.checkpoint import load_checkpoint

TIMING = {"elapsed_s", "images_per_s"}
CONFIG = """\
width: 8
batch_size: 16
sesemi: true
pretext_batch_size: 8
eval_batch_size: 64
pseudo_threshold: 0.0
val_fraction: 0.1
threads: 1
device: cpu
precision: fp32  # bf16 rounding would swamp the float tolerance below
channels_last: false  # its kernels differ with the batch size: rounding drifts about 1.5e-3 in 9 steps
dropout: 0.0
optimizer: sgd
lr: 0.0002
phases:
  - {name: supervised, epochs: 1}
  - {name: augmented, epochs: 1, augment: true, pretext_source: unlabeled}
  - {name: pseudo, epochs: 1, augment: true, pretext_source: unlabeled, pseudo_labels: true}
"""


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _close(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-6)
    except ValueError:
        return a == b


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_cpu_processes_match_one(tiny_train_dir, tmp_path):
    data = tiny_train_dir
    config = tmp_path / "ddp.yaml"
    config.write_text(CONFIG)
    args = [str(data), "--config", str(config), "--quiet", "--no-report"]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SEMILABEL_FAULT", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "semilabel", "train", *args, "--out", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder:") == 1  # only rank 0 reports and writes
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    rows_one, rows_two = _rows(one), _rows(two)
    assert len(rows_one) == len(rows_two) == 3
    for a, b in zip(rows_one, rows_two):
        assert a.keys() == b.keys()
        bad = {k: (a[k], b[k]) for k in a if not _close(a[k], b[k])}
        assert not bad, bad
    w1, w2 = load_checkpoint(one / "last.pt")["model"], load_checkpoint(two / "last.pt")["model"]
    for k in w1:
        assert torch.allclose(w1[k].double(), w2[k].double(), rtol=1e-3, atol=1e-3), k


# 40 labelled images, 4 validation, batch 16: 3 steps per epoch. Six phases of many
# epochs: only the time budget or a signal ends them, and each end is a chance for the
# processes to disagree.
BUDGET_CONFIG = """\
width: 8
batch_size: 16
eval_batch_size: 64
val_fraction: 0.1
threads: 1
device: cpu
checkpoint_every_steps: 1
phases:
""" + "".join(f"  - {{name: p{i}, epochs: 200, time_fraction: 1, augment: {str(i % 2 == 1).lower()}}}\n"
              for i in range(6))
needs_gloo = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def _torchrun(tmp_path: Path, data: Path, *extra: str, fault: str | None = None):
    """Start `torchrun --nproc_per_node=2 -m semilabel train` on tiny data; (process, run folder)."""
    config = tmp_path / "budget.yaml"
    config.write_text(BUDGET_CONFIG)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SEMILABEL_FAULT", None)
    if fault:
        env["SEMILABEL_FAULT"] = fault
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "semilabel",
           "train", str(data), "--config", str(config), "--out", str(run), "--quiet", "--no-report", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, run


def _finish(proc: subprocess.Popen, seconds: float = 120) -> tuple[str, str]:
    """(stdout, stderr) of a finished torchrun; a hung one is stopped (torchrun passes
    SIGTERM on and kills what is left after 30 s) and the test fails."""
    try:
        return proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"torchrun hung for {seconds} s:\n{out[-2000:]}\n{err[-2000:]}")


@needs_gloo
def test_time_budget_under_torchrun_is_decided_once_for_both_processes(tiny_train_dir, tmp_path):
    """Rank 0 is slowed after every step (its checkpoint write sleeps 0.3 s), so its clock
    runs 0.3 s ahead of rank 1's at each check: deciding on each process's own clock,
    the two disagree at a phase's end and wait in mismatched collectives. Rank 0 decides
    for both, so the run ends on time and both processes end at the same step (train_run
    compares the step counts of all processes and fails the run when they differ)."""
    proc, run = _torchrun(tmp_path, tiny_train_dir, "--time-budget", "0.1", fault="write:last.pt@1/SLEEP0.3")
    out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    # a 6 s budget; wall_seconds also holds the start (about 4 s here: torch imports, building the
    # model) and the final evaluation. Deciding per process, the run instead hangs in a collective.
    assert summary["wall_seconds"] < 6 + 10, summary
    assert load_checkpoint(run / "last.pt")["state"]["step"] == summary["steps"]
    assert {r["phase"] for r in _rows(run)} == {f"p{i}" for i in range(6)}


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.1)


def _assert_stopped_together(proc: subprocess.Popen, run: Path, seconds: float = 25) -> int:
    """Both processes stopped at one step, well before torchrun's 30 s kill: rank 0's
    one message names the step that the one last.pt holds. Returns that step."""
    _, err = _finish(proc, 60)
    lines = [line for line in err.splitlines() if "interrupted at" in line]
    assert len(lines) == 1, err[-3000:]
    step = int(re.search(r"step (\d+);", lines[0])[1])
    assert load_checkpoint(run / "last.pt")["state"]["step"] == step
    assert not (run / "summary.json").exists() and not list(run.glob(".*.tmp"))
    assert "SIGKILL" not in err, err[-3000:]
    return step


@needs_gloo
def test_sigterm_to_one_process_stops_both_at_the_same_step(tiny_train_dir, tmp_path):
    proc, run = _torchrun(tmp_path, tiny_train_dir, fault="rank1:step@3/TERM")
    assert _assert_stopped_together(proc, run) == 3


@needs_gloo
def test_ctrl_c_under_torchrun_stops_every_process_at_one_step(tiny_train_dir, tmp_path):
    """Ctrl-C reaches torchrun's process group (each process has a session of its own),
    and torchrun passes SIGINT on to every process: one last.pt, well before its 30 s kill."""
    proc, run = _torchrun(tmp_path, tiny_train_dir, fault="step@1/SLEEP0.05")
    _wait_for(run / "last.pt", proc)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    assert _assert_stopped_together(proc, run) >= 1
    assert time.monotonic() - started < 25
