"""A training step makes no host sync: on a GPU each one waits for all queued work.

Two guards, over a few steps of every registered method (a new method is covered by
registering it):

- on a GPU, `torch.cuda.set_sync_debug_mode("error")` turns any sync into an error;
- on the CPU, `DeviceModel` (tests/sync_guard.py) runs the step as if the training
  device were another device than the host: the tensors a GPU run would hold there
  (the staged data set, the weights) are marked, every torch call propagates the
  mark, and every call that would sync on a GPU is recorded with the semilabel line
  that made it.

A third test counts every Tensor-to-Python conversion of a whole run, inside the step
and in the loop around it (which reads the loss sums once per epoch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import linecache
import sys
from collections import Counter

import numpy as np
import pytest
import torch

import semilabel.train.recording as recording_module
from semilabel.config import PhaseConfig
from semilabel.distributed import DistInfo
from semilabel.train.fit import _Trainer, fit
from semilabel.train.methods import list_methods
from sync_guard import MARK, DeviceModel


def _device_tensors(trainer: _Trainer) -> list[torch.Tensor]:
    """What a GPU run holds on the device: the staged data set and hidden labels and the
    weights (and their EMA). The optimiser's state is made from the weights in the first
    step, so it is marked as it is made (its step counter stays on the host, as in torch)."""
    found = [trainer.train_x, trainer.train_y, trainer.unl_x, trainer.unl_hidden]
    found += list(trainer.model.parameters()) + list(trainer.model.buffers())
    if trainer.ema is not None:
        found += list(trainer.ema.model.parameters()) + list(trainer.ema.model.buffers())
    return [t for t in found if isinstance(t, torch.Tensor)]


def _method_config(tiny_config, method: str, device: str, precision: str = "fp32"):
    """One phase running `method` (with labelled rows, a strong policy and an EMA teacher)."""
    phase = PhaseConfig("only", epochs=1, augment="strong", pretext_source="unlabeled", methods=(method,))
    return dataclasses.replace(tiny_config, device=device, precision=precision, batch_size=8,
                               sesemi=False, ema_decay=0.9, phases=(phase,),
                               method_options={**tiny_config.method_options, "sesemi": {"batch_size": 4},
                                               "fixmatch": {"threshold": 0.0}})


def _steps(trainer: _Trainer, n: int, around) -> list[dict[str, torch.Tensor]]:
    """`n` steps of the trainer's only phase, each inside the context `around()`."""
    phase = trainer.phases[0]
    trainer.start_epoch(phase, True)  # once per epoch, outside the step: e.g. pseudo-labels
    perm = np.random.default_rng(0).permutation(len(trainer.train_x))
    out = []
    for _ in range(n):
        with around():
            parts = trainer.step(phase, perm, 1e-3)
        trainer.count_step(parts, 1e-3)
        out.append(parts)
    return out


def _method_ran(parts: dict) -> bool:
    """Whether a step's loss parts hold more than the labelled rows' (the method's rows ran)."""
    supervised = {"loss_digit", "loss_letter", "loss_joint", "loss"}
    return bool(set(parts) - supervised)


@pytest.mark.parametrize("method", list_methods())
def test_no_step_of_any_method_would_sync_a_gpu(tiny_dataset, tiny_config, method):
    trainer = _Trainer(_method_config(tiny_config, method, "cpu"), tiny_dataset, DistInfo(), None, None)
    guard = DeviceModel()

    class Guarded:
        def __enter__(self):
            for t in _device_tensors(trainer):
                setattr(t, MARK, True)
            guard.__enter__()

        def __exit__(self, *exc):
            guard.__exit__(*exc)

    parts = _steps(trainer, 2, Guarded)
    assert _method_ran(parts[-1]), parts[-1].keys()
    assert not guard.syncs, "\n".join(f"{n}x {what} at {where}" for (what, where), n in guard.syncs.items())


def test_the_device_model_catches_each_kind_of_sync():
    """The guard itself: each sync it claims to see, seen; reads and indexing on the host, not."""
    guard = DeviceModel()
    dev, host = torch.arange(6), torch.arange(6)
    setattr(dev, MARK, True)
    with guard:
        torch.ones(2).to(dev.device)  # a blocking copy
        copied = torch.ones(2).to(dev.device, non_blocking=True)
        (dev[:2] + copied).sum().item()
        bool(dev.sum() > 0)
        dev.nonzero()
        dev[host[:2]]  # a host index
        dev[dev[:2]]  # a device index: fine
        dev[dev > 2]  # a boolean mask
        dev.cpu()
        dev.tolist()
        int(host.sum())  # host reads and indexing: fine
        host[host[:2]]
    kinds = Counter(what.split("(")[0].split(" ")[0] for what, _ in guard.syncs)
    assert kinds == {"to": 1, "item": 1, "__bool__": 1, "nonzero": 1, "__getitem__": 2, "cpu": 1, "tolist": 1}, \
        guard.syncs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", list_methods())
def test_no_step_of_any_method_syncs_a_gpu(tiny_dataset, tiny_config, method):
    config = _method_config(tiny_config, method, "cuda", precision="auto")  # as a GPU run: bf16 or fp16 and its scaler
    trainer = _Trainer(config, tiny_dataset, DistInfo(), None, None)
    assert trainer.train_x.is_cuda  # the tiny set is staged on the GPU

    class SyncIsError:
        def __enter__(self):
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

        def __exit__(self, *exc):
            torch.cuda.set_sync_debug_mode("default")

    _steps(trainer, 1, contextlib.nullcontext)  # one-time set-up (optimiser state, cuBLAS workspaces) unguarded
    parts = _steps(trainer, 2, SyncIsError)
    assert _method_ran(parts[-1]), parts[-1].keys()


# ---- the whole run: reads inside the step and once per epoch around it ---------------------
CONVERSIONS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__format__")


@pytest.fixture()
def conversions(monkeypatch):
    """Counter of (function, source line) for every conversion made in semilabel code,
    and a flag telling whether it happened inside `_Trainer.step`."""
    seen: Counter = Counter()
    where = {"in_step": False}

    def wrap(name):
        original = getattr(torch.Tensor, name)

        def converted(self, *args, **kwargs):
            frame = sys._getframe(1)
            if "semilabel" in frame.f_code.co_filename:
                line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
                name = "step" if where["in_step"] else f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"
                seen[(name, line)] += 1
            return original(self, *args, **kwargs)
        return converted

    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name))
    step = _Trainer.step

    def counted_step(self, *args, **kwargs):
        where["in_step"] = True
        try:
            return step(self, *args, **kwargs)
        finally:
            where["in_step"] = False
    monkeypatch.setattr(_Trainer, "step", counted_step)
    return seen


class Shown:
    def __init__(self):
        self.progress_calls = 0

    def epoch_end(self, row, payload, is_best):
        payload()

    def periodic(self, payload):
        payload()

    def progress(self, *args):
        self.progress_calls += 1


def test_steps_make_no_host_reads_and_the_loop_reads_per_epoch(tiny_dataset, tiny_config, conversions, monkeypatch):
    monkeypatch.setattr(recording_module, "PROGRESS_SECONDS", 1e9)  # the bar: at each epoch's last step only
    phases = tuple(dataclasses.replace(p, epochs=1.0, enabled=p.name in ("supervised", "pseudo")) for p in tiny_config.phases)
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp32", batch_size=8, phases=phases,
                                 checkpoint_minutes=1e6)
    recorder = Shown()
    result = fit(config, tiny_dataset, recorder)
    steps = result.state.step
    n_train = len(tiny_dataset.labeled) - len(result.val_index)
    assert steps == 2 * -(-n_train // 8)  # the training images in batches of 8, two phases
    in_step = {k[1]: n for k, n in conversions.items() if k[0] == "step"}
    # the reads a step makes, all of host tensors: the dropout seed, drawn from the host
    # generator, and how many images of an augmented batch drew each op (host masks)
    seed = "torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)) + dist.rank)  # dropout, own masks per rank"
    assert set(in_step) == {seed, "k = int(masks[name].sum())  # a host tensor: no sync"}, in_step
    assert in_step[seed] == steps
    evaluation = ("fit.py:validate", "fit.py:relabel", "fit.py:_predict_shard")  # once per epoch, not per step
    loop = {k: n for k, n in conversions.items() if k[0] != "step" and not k[0].startswith(evaluation)
            and not k[0].startswith(("inference.py:", "pseudo.py:", "metrics.py:"))}
    epochs = len(result.state.history)
    # parts: digit, letter, joint, pretext, total, and the pseudo-label method's loss in its phase
    parts = sum(len([k for k in row if k.startswith("train_")]) for row in result.state.history)
    assert epochs == 2 and parts == 5 + 6
    # the loss sums are read at each epoch's row and checkpoint, and the bar at its first step and epoch ends
    assert sum(loop.values()) <= 2 * parts + epochs + 1, loop
    assert recorder.progress_calls == epochs + 1
