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


def test_a_cpu_run_that_passes_over_its_labels_often_takes_small_batches_and_says_why(
        tiny_dataset, tiny_config, tmp_path, capsys, monkeypatch):
    """Where the budget passes over the labelled images 150 times or more (here a machine
    estimated to read 10 million labelled images a minute), the count of steps limits a
    CPU run: batch 32 unless the config sets one, and a line that says so."""
    from semilabel.train import method_choice

    monkeypatch.setitem(method_choice.LABELLED_IMAGES_PER_MINUTE, "cpu", 10_000_000)
    phases = tuple(dataclasses.replace(p, enabled=p.name == "supervised") for p in tiny_config.phases)
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp32", phases=phases, batch_size=None,
                                 time_budget=0.01)
    train_run(tiny_dataset, tmp_path / "run", config)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "device cpu; precision fp32 (as configured); batch 32"
    assert any(line.startswith("batch 32: about 417 passes over the labelled images in the budget; from 150")
               for line in lines)  # 0.01 minutes x 10 million / 240 labels
    assert "batch_size: 32" in (tmp_path / "run" / "config.yaml").read_text()  # a resume keeps it
    train_run(tiny_dataset, tmp_path / "set", dataclasses.replace(config, batch_size=128))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("batch 128") and not any(line.startswith("batch ") for line in lines)


def test_train_run_refuses_an_absent_gpu_before_writing(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="this machine has 1 CUDA device"):
        train_run(tiny_dataset, tmp_path / "run", dataclasses.replace(tiny_config, device="cuda:1"))
    assert not (tmp_path / "run").exists()


def _layouts(model: torch.nn.Module) -> set[str]:
    """The layouts of a model's convolution weights that tell the two apart (C > 1, k > 1)."""
    return {"channels_last" if w.is_contiguous(memory_format=torch.channels_last) else "contiguous"
            for w in model.parameters() if w.ndim == 4 and w.shape[1] > 1 and w.shape[2] > 1}


def test_a_cpu_run_on_a_gpu_machine_gets_the_cpu_layout(tiny_dataset, tiny_config, monkeypatch):
    """The layout follows the run's device: `--device cpu` on a machine with a GPU trains
    in the contiguous layout of a CPU without native bf16 (2x faster there)."""
    from semilabel import device as device_module
    from semilabel.distributed import DistInfo
    from semilabel.train.fit import _Trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    trainer = _Trainer(dataclasses.replace(tiny_config, device="cpu", channels_last=None), tiny_dataset, DistInfo(),
                       None, None)
    assert trainer.device == torch.device("cpu")
    assert _layouts(trainer.model) == _layouts(trainer.eval_model) == {"contiguous"}
    chosen = _Trainer(dataclasses.replace(tiny_config, device="cpu", channels_last=True), tiny_dataset, DistInfo(),
                      None, None)
    assert _layouts(chosen.model) == {"channels_last"}  # a layout set in the config is kept


def test_prediction_on_the_cpu_of_a_gpu_machine_gets_the_cpu_layout(tiny_dataset, tiny_config, monkeypatch):
    from semilabel import device as device_module
    from semilabel.predict import predict_as_run
    from semilabel.models.checkpoint import build_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    config = dataclasses.replace(tiny_config, device="cuda", channels_last=None)  # trained on the GPU
    model = build_model(config, tiny_dataset.schema)
    assert _layouts(model) == {"channels_last"}  # built for the device `auto` picks: the GPU
    predict_as_run(model, config, tiny_dataset.test.images[:4], "tiny", tta=0, device="cpu")
    assert _layouts(model) == {"contiguous"}
