"""A training step reads no tensor value on the host: on a GPU each such read waits
for all queued work. Counted on CPU by wrapping every Tensor-to-Python conversion
and noting which semilabel function made it."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter

import pytest
import torch

import semilabel.train.recording as recording_module
from semilabel.train.fit import _Trainer, fit

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
                import linecache

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
    in_step = {k: n for k, n in conversions.items() if k[0] == "step"}
    # the one read a step makes: the dropout seed, drawn from the host generator (a CPU tensor)
    assert list(in_step) == [("step", "torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)) + dist.rank)"
                                      "  # dropout, own masks per rank")]
    assert in_step[next(iter(in_step))] == steps
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
