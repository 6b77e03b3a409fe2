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
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from semilabel.cli import main
from semilabel.data.combo import make_combo, write_combo
from semilabel.train.checkpoint import load_checkpoint

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
def test_two_cpu_processes_match_one(synthetic_banks, tmp_path):
    digits, letters = synthetic_banks
    data = tmp_path / "data"
    write_combo(make_combo([digits], [letters], n_labeled=40, n_unlabeled=20, n_test=10, seed=0), data)
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
