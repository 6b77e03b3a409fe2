"""Device and precision: fp32 has no autocast, auto picks bf16 only where it is fast
(the GPU choices: tests/test_device.py); fp16 brings a GradScaler whose state is
checkpointed; synchronised BatchNorm is plain BatchNorm in one process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semilabel.distributed import DistInfo
from semilabel.models.backbones import CompactNet
from semilabel import device as device_module
from semilabel.device import autocast_dtype
from semilabel.train.fit import _Trainer, fit
from semilabel.train.sync_bn import CpuSyncBatchNorm, convert_sync_batchnorm


def test_fp32_on_cpu_has_no_autocast_and_no_loss_scaling(tiny_dataset, tiny_config):
    trainer = _Trainer(dataclasses.replace(tiny_config, device="cpu", precision="fp32"), tiny_dataset, DistInfo(), None, None)
    assert trainer.device == torch.device("cpu")
    assert trainer.autocast is None and not trainer.scaler.is_enabled()
    assert trainer.payload()["scaler"] is None


@pytest.mark.parametrize("fast_bf16, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_uses_bf16_only_where_the_cpu_runs_it_natively(tiny_dataset, tiny_config, monkeypatch,
                                                                      fast_bf16, expected):
    """Both answers of the CPU probe, and a training step that really runs in the
    chosen precision (the dtype a convolution's output has inside the step)."""
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: fast_bf16)
    trainer = _Trainer(dataclasses.replace(tiny_config, device="cpu", precision="auto"), tiny_dataset, DistInfo(), None, None)
    assert trainer.autocast == expected and not trainer.scaler.is_enabled()
    seen = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer.step(trainer.phases[0], np.arange(len(trainer.train_x)), 1e-3)
    assert seen and set(seen) == {expected or torch.float32}
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_fp16_uses_a_grad_scaler_and_checkpoints_it(tiny_dataset, tiny_config):
    phases = tuple(dataclasses.replace(p, epochs=0.1, enabled=p.name == "supervised") for p in tiny_config.phases)
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp16", phases=phases)
    trainer = _Trainer(config, tiny_dataset, DistInfo(), None, None)
    assert trainer.autocast == torch.float16 and trainer.scaler.is_enabled()
    saved = {}

    class Keep:
        def epoch_end(self, row, payload, is_best):
            saved.update(payload())

        def periodic(self, payload):
            pass

        def progress(self, *args):
            pass

    result = fit(config, tiny_dataset, Keep())
    assert result.state.step == 1 and saved["scaler"]["scale"] > 0
    resumed = _Trainer(config, tiny_dataset, DistInfo(), None, saved)
    assert resumed.scaler.state_dict() == saved["scaler"]


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    plain = CompactNet(8)
    synced = convert_sync_batchnorm(CompactNet(8), "cpu")
    synced.load_state_dict(plain.state_dict())
    assert plain.state_dict().keys() == synced.state_dict().keys()
    assert any(isinstance(m, CpuSyncBatchNorm) for m in synced.modules())
    x = torch.rand(4, 1, 56, 56)
    for train in (True, False):
        plain.train(train)
        synced.train(train)
        assert torch.equal(plain(x), synced(x))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), synced.state_dict().values()))


def test_bf16_set_for_a_gpu_below_compute_capability_8_is_refused_before_anything_is_written(
        tiny_train_dir, tiny_dataset, tiny_config, tmp_path, monkeypatch, capsys):
    from semilabel.cli import main
    from semilabel.errors import ConfigError
    from semilabel.train.run import train_run

    cap = [(7, 5)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap[0])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    run = tmp_path / "run"
    assert main(["train", str(tiny_train_dir), "--out", str(run), "--device", "cuda", "--set", "precision=bf16",
                 "--quiet", "--no-report"]) == 2
    line = ("config key 'precision': bf16 on cuda:0 (Tesla T4, compute capability 7.5) has no fast kernels below "
            "8.0; set precision to fp16 or auto (--set precision=auto)")
    assert capsys.readouterr().err.splitlines() == [f"error: {line}"]
    assert not run.exists()
    config = dataclasses.replace(tiny_config, device="cuda", precision="bf16")
    with pytest.raises(ConfigError, match=r"config key 'precision': bf16 on cuda:0"):
        train_run(tiny_dataset, run, config)  # the library path: refused before the folder too
    assert not run.exists()
    with pytest.raises(ConfigError, match=r"config key 'precision': bf16 on cuda:0"):
        fit(config, tiny_dataset)
    from semilabel.device import check_precision

    for setting in ("auto", "fp16", "fp32"):
        check_precision(setting, torch.device("cuda", 0))  # what such a GPU is given instead: accepted
    check_precision("bf16", torch.device("cpu"))
    cap[0] = (8, 0)
    check_precision("bf16", torch.device("cuda", 0))  # Ampere: bf16 runs natively


def test_the_ema_skips_the_steps_the_fp16_loss_scaler_skipped(tiny_dataset, tiny_config):
    """A step whose gradients hold inf is skipped by the GradScaler (weights kept, scale
    halved); the EMA must keep its weights, BatchNorm statistics and count on it too."""
    config = dataclasses.replace(tiny_config, device="cpu", precision="fp16", ema_decay=0.9)
    trainer = _Trainer(config, tiny_dataset, DistInfo(), None, None)
    assert trainer.scaler.is_enabled() and trainer.ema is not None
    phase, order = trainer.phases[0], np.arange(len(trainer.train_x))

    def step() -> None:
        trainer.count_step(trainer.step(phase, order, 1e-3), 1e-3)

    def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in module.state_dict().items()}

    step()  # a taken step: the average moves off its start
    ema, weights, scale = snapshot(trainer.ema.model), snapshot(trainer.model), trainer.scaler.get_scale()
    assert trainer.ema.updates == 1
    first = next(p for p in trainer.model.parameters() if p.ndim == 4)
    hook = first.register_hook(lambda grad: grad * float("inf"))
    step()  # its gradients hold inf: skipped
    hook.remove()
    assert trainer.scaler.get_scale() == scale / 2
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in weights.items() if "running" not in k
               and "num_batches" not in k), "the optimiser step was not skipped"
    for key, value in ema.items():
        assert torch.equal(trainer.ema.model.state_dict()[key], value), key
    assert int(trainer.ema.updates) == 1 and trainer.ema.state_dict()["updates"] == 1
    step()  # taken again: averaged in, counted
    assert int(trainer.ema.updates) == 2
    conv = next(k for k, v in weights.items() if v.ndim == 4)
    assert not torch.equal(trainer.ema.model.state_dict()[conv], ema[conv])
