"""A training run says first where it runs and in what precision, and refuses an
absent GPU before its folder exists."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from semilabel.errors import ConfigError
from semilabel.train.run import train_run


def test_first_line_names_device_precision_and_batch(tiny_dataset, tiny_config, tmp_path, capsys):
    phases = tuple(dataclasses.replace(p, epochs=0.1, enabled=p.name == "supervised") for p in tiny_config.phases)
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp32", phases=phases, batch_size=None)
    result = train_run(tiny_dataset, tmp_path / "run", config)
    first = capsys.readouterr().err.splitlines()[0]
    assert first == "device cpu; precision fp32 (as configured); batch 128"
    assert result.fit.state.step == 1  # 216 training images at the CPU default of 128: 0.1 epoch is one step
    assert "batch_size: 128" in (tmp_path / "run" / "config.yaml").read_text()  # a resume keeps it


def test_train_run_refuses_an_absent_gpu_before_writing(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="this machine has 1 CUDA device"):
        train_run(tiny_dataset, tmp_path / "run", dataclasses.replace(tiny_config, device="cuda:1"))
    assert not (tmp_path / "run").exists()
