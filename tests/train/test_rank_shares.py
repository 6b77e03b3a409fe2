"""Under torchrun each rank loads, augments and teacher-labels only its share of a
step's rows (rank, rank + W, ...), so the consistency methods' cost shrinks as
processes are added, and the run still follows one process with the whole batch.

Two gloo processes on the CPU, started here (spawned, with a file store), run every
method: pseudo-labels, SESEMI, FixMatch and Mean Teacher with an EMA teacher. Every
call to the augmentation and to the teacher is recorded with the number of images it
got. Settings as tests/train/test_distributed.py (dropout 0, SGD, a small learning
rate, fp32) keep the comparison within float rounding.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from semilabel.config import PhaseConfig
from semilabel.data.readers import Dataset, ImageSet
from semilabel.distributed import DistInfo

TIMING = {"elapsed_s", "images_per_s"}


def _config(tiny_config):
    phases = (PhaseConfig("supervised", epochs=1, augment="weak", pretext_source="unlabeled"),
              PhaseConfig("consistency", epochs=1, augment="strong", pretext_source="unlabeled", pseudo_labels=True,
                          methods=("fixmatch", "mean_teacher")))
    return dataclasses.replace(tiny_config, batch_size=16, val_fraction=0.1, device="cpu",
                               precision="fp32", channels_last=False, dropout=0.0, optimizer="sgd", lr=2e-4,
                               ema_decay=0.9, threads=1, phases=phases,
                               method_options={**tiny_config.method_options, "sesemi": {"batch_size": 8},
                                               "fixmatch": {"threshold": 0.0, "ratio": 0.75}})


def _small(dataset: Dataset) -> Dataset:
    """40 labelled (4 for validation: 3 steps of 16, the last of 4) and 24 unlabelled images."""
    lab, unl = dataset.labeled, dataset.unlabeled
    return Dataset(ImageSet(lab.images[:40], lab.labels[:40], "labelled"),
                   ImageSet(unl.images[:24], unl.labels[:24], "unlabelled"), None, dataset.schema)


def _recorded_fit(config, dataset, info: DistInfo) -> dict:
    """fit() with every augmentation call's (global batch, images augmented) and every
    teacher call's images recorded; the history and the final weights."""
    import semilabel.train.fit as fit_module

    augmented, taught = [], []
    apply_policy, teacher = fit_module.apply_policy, fit_module._Trainer._teacher

    def recording_policy(images, policy, generator=None, **share):
        augmented.append((share.get("batch", len(images)), len(images)))
        return apply_policy(images, policy, generator, **share)

    def recording_teacher(self, x):
        taught.append(len(x))
        return teacher(self, x)

    fit_module.apply_policy, fit_module._Trainer._teacher = recording_policy, recording_teacher
    try:
        result = fit_module.fit(config, dataset, dist=info)
    finally:
        fit_module.apply_policy, fit_module._Trainer._teacher = apply_policy, teacher
    return {"augmented": augmented, "taught": taught, "history": result.state.history,
            "model": {k: v.clone() for k, v in result.model.state_dict().items()}}


def _rank(rank: int, store: str, out: str, config, dataset) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.save(_recorded_fit(config, dataset, DistInfo(rank, 2, 0)), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_each_of_two_processes_augments_and_labels_its_share_and_they_follow_one(tiny_dataset, tiny_config, tmp_path):
    config, dataset = _config(tiny_config), _small(tiny_dataset)
    mp.start_processes(_rank, args=(str(tmp_path / "store"), str(tmp_path / "rank"), config, dataset), nprocs=2,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank.{r}", weights_only=False) for r in range(2)]
    one = _recorded_fit(config, dataset, DistInfo())

    # the work: every call, on each rank, got rows rank, rank + 2, ... of the global batch
    assert len(one["augmented"]) >= 12 and len(one["taught"]) >= 6
    for r, run in enumerate(ranks):
        assert [batch for batch, _ in run["augmented"]] == [n for n, _ in one["augmented"]]
        assert [got for _, got in run["augmented"]] == [len(range(n)[r::2]) for n, _ in one["augmented"]]
        assert run["taught"] == [len(range(n)[r::2]) for n in one["taught"]]
    assert [a + b for a, b in zip(ranks[0]["taught"], ranks[1]["taught"])] == one["taught"]

    # the results: one process's, to float rounding
    rows = [[{k: v for k, v in row.items() if k not in TIMING} for row in run["history"]] for run in (one, *ranks)]
    assert len(rows[0]) == 2 and rows[1] == rows[2]  # both ranks log the same global figures
    assert {"train_loss_fixmatch", "train_fixmatch_correct", "train_loss_mean_teacher", "train_loss_pseudo",
            "train_loss_pretext"} <= rows[0][1].keys()
    for a, b in zip(rows[0], rows[1]):
        assert a.keys() == b.keys()
        bad = {k: (a[k], b[k]) for k in a if isinstance(a[k], float) and not math.isclose(a[k], b[k], rel_tol=1e-3,
                                                                                          abs_tol=1e-6)}
        assert not bad and {k: a[k] for k in a if not isinstance(a[k], float)} == {
            k: b[k] for k in b if not isinstance(b[k], float)}, bad
    for k, v in one["model"].items():
        assert torch.allclose(v.double(), ranks[0]["model"][k].double(), rtol=1e-3, atol=1e-3), k
