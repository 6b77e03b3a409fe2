"""A resume needs no generator state: every step seeds its draws and its dropout from
(seed, step), and nothing between steps draws from the global generators. So a
checkpoint stores none, and a run resumed after the global generators were moved on
(torch, numpy, Python) continues exactly as the uninterrupted one."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from recorders import KeepLast

from semilabel.config import PhaseConfig
from semilabel.errors import Interrupted
from semilabel.train.fit import fit

TIMING = {"elapsed_s", "images_per_s"}


def test_a_resume_is_exact_without_any_saved_generator_state(tiny_dataset, tiny_config):
    phases = (PhaseConfig("supervised", epochs=0.25),
              PhaseConfig("mixed", epochs=0.5, augment="strong", pretext_source="unlabeled", pseudo_labels=True,
                          methods=("fixmatch", "mean_teacher")))
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp32", dropout=0.3, ema_decay=0.9,
                                 phases=phases, method_options={"fixmatch": {"threshold": 0.0}})
    whole = fit(config, tiny_dataset)
    recorder, polls = KeepLast(), []
    with pytest.raises(Interrupted):
        fit(config, tiny_dataset, recorder=recorder, stop=lambda: polls.append(1) or len(polls) == 4)
    # polled after each step and each epoch's end: stopped inside the second phase, after its first step
    assert (recorder.last["state"]["phase"], recorder.last["state"]["step_in_epoch"]) == (1, 1)
    assert "rng" not in recorder.last
    torch.manual_seed(12345)  # the global generators, anywhere but where they were
    np.random.seed(6789)
    random.seed(42)
    resumed = fit(config, tiny_dataset, resume=recorder.last)
    assert [{k: v for k, v in row.items() if k not in TIMING} for row in resumed.state.history] == [
        {k: v for k, v in row.items() if k not in TIMING} for row in whole.state.history]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
