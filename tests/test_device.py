"""Device, precision and process-group choices, pinned on CPU by standing in for the
torch.cuda calls a GPU machine would answer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from semilabel import device as devmod
from semilabel import distributed
from semilabel.config import load_config
from semilabel.data.schema import COMBO
from semilabel.device import (batch_size_for, choose_precision, cuda_note, cuda_problem, device_line, resolve_device,
                              with_batch_size)
from semilabel.distributed import DistInfo, init_distributed, process_group_backend
from semilabel.errors import ConfigError
from semilabel.models.backbones import BackboneSpec, create_backbone
from semilabel.models.classifier import MultiHeadClassifier
from semilabel.models.inference import predict

CUDA = torch.device("cuda", 0)


@pytest.fixture()
def gpus(monkeypatch):
    """Pretend this machine has `n` CUDA devices of compute capability `cap`."""
    def have(n: int, cap: tuple[int, int] = (7, 5), name: str = "Tesla T4") -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    return have


@pytest.mark.parametrize("cap, dtype", [((6, 0), torch.float16), ((7, 0), torch.float16), ((7, 5), torch.float16),
                                        ((8, 0), torch.bfloat16), ((8, 6), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_on_a_gpu_follows_its_compute_capability(gpus, cap, dtype):
    gpus(1, cap)
    chosen = choose_precision("auto", CUDA)
    assert chosen.dtype == dtype
    assert f"{cap[0]}.{cap[1]}" in chosen.reason
    assert chosen.describe().startswith("fp16 with loss scaling (" if dtype == torch.float16 else "bf16 (")


def test_explicit_precision_is_kept_on_any_device(gpus):
    gpus(1, (7, 5))
    for setting, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        for dev in (CUDA, torch.device("cpu")):
            assert choose_precision(setting, dev) == devmod.Precision(dtype, "as configured")


def test_auto_precision_on_the_cpu_depends_on_native_bf16(monkeypatch):
    for native, dtype in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(devmod, "cpu_has_fast_bf16", lambda native=native: native)
        assert choose_precision("auto", torch.device("cpu")).dtype == dtype


def test_device_names_resolve_and_absent_or_mistyped_gpus_are_refused(gpus):
    gpus(1)
    assert resolve_device("auto", DistInfo()) == CUDA
    assert resolve_device("cuda", DistInfo()) == CUDA
    assert resolve_device("cuda:0", DistInfo()) == CUDA
    assert resolve_device("cpu", DistInfo()) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^--device cuda:1: this machine has 1 CUDA device \(cuda:0\)$"):
        resolve_device("cuda:1", DistInfo())
    gpus(2)
    with pytest.raises(ConfigError, match=r"^--device cuda:2: this machine has 2 CUDA devices \(cuda:0\.\.cuda:1\)$"):
        resolve_device("cuda:2", DistInfo())
    for typo in ("cuda1", "cuda:x", "cuda:", "gpu", "CUDA"):
        with pytest.raises(ConfigError, match=f"^--device '{typo}': expected auto, cpu, cuda or cuda:N$"):
            resolve_device(typo, DistInfo())


def test_under_torchrun_each_process_takes_its_local_gpu(gpus):
    gpus(2)
    assert resolve_device("cuda", DistInfo(rank=3, world_size=4, local_rank=1)) == torch.device("cuda", 1)
    assert resolve_device("auto", DistInfo(rank=0, world_size=2, local_rank=0)) == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="under torchrun each process uses cuda:LOCAL_RANK; give --device cuda"):
        resolve_device("cuda:1", DistInfo(rank=0, world_size=2, local_rank=0))
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 has no GPU of its own; this machine has 2 CUDA devices"):
        resolve_device("cuda", DistInfo(rank=2, world_size=3, local_rank=2))


def test_no_usable_cuda_is_said_in_one_line(gpus, monkeypatch):
    gpus(0)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda", DistInfo())
    assert str(err.value) == f"--device cuda: no CUDA device is available ({cuda_problem()})"
    assert "CPU-only build" in cuda_problem() and "\n" not in str(err.value)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert "built for CUDA 12.4 but finds no usable GPU" in cuda_problem()
    monkeypatch.setattr(devmod, "_gpu_driver_present", lambda: False)
    assert cuda_note() is None  # no GPU here: auto means the CPU, nothing to say
    monkeypatch.setattr(devmod, "_gpu_driver_present", lambda: True)
    assert cuda_note().startswith("note: a GPU driver is present but CUDA is unusable (torch ")
    gpus(1)
    assert cuda_note() is None


def test_the_first_training_line_names_device_precision_and_batch(gpus):
    gpus(1, (7, 5), "Tesla T4")
    line = device_line(CUDA, choose_precision("auto", CUDA), 512)
    assert line == ("device cuda:0 (Tesla T4, compute capability 7.5); precision fp16 with loss scaling "
                    "(auto: compute capability 7.5 is below 8.0, where bf16 has no fast kernels); batch 512")


def test_batch_size_left_unset_follows_the_device():
    config = load_config("default")
    assert config.batch_size is None and load_config("report").batch_size == 128
    assert with_batch_size(config, torch.device("cpu")).batch_size == 128
    assert with_batch_size(config, CUDA).batch_size == 512
    fixed = dataclasses.replace(config, batch_size=48)
    assert with_batch_size(fixed, CUDA) is fixed and batch_size_for(48, CUDA) == 48
    # many passes over the labelled images: steps limit a CPU run, not rows; a GPU keeps its batch
    assert with_batch_size(config, torch.device("cpu"), many_passes=True).batch_size == 32
    assert with_batch_size(config, CUDA, many_passes=True).batch_size == 512
    assert batch_size_for(48, torch.device("cpu"), many_passes=True) == 48


def test_process_group_has_a_backend_for_cpu_and_cuda_tensors(tmp_path):
    """A GPU run's collectives on CPU tensors (run-folder agreement, stop flags, gathered
    predictions) need a backend as well as its CUDA ones: torch's reading of the backend
    names one for each device type, NCCL for CUDA tensors on a GPU. On the CPU a real
    group of one process runs the CPU collectives the run makes."""
    import torch.distributed as tdist
    from torch.distributed.distributed_c10d import BackendConfig

    for kind, cuda_backend in (("cuda", "nccl"), ("cpu", "gloo")):
        backends = BackendConfig(tdist.Backend(process_group_backend(kind))).get_device_backend_map()
        assert backends.get("cpu") == "gloo" and backends.get("cuda") == cuda_backend, (kind, backends)
    tdist.init_process_group(process_group_backend("cpu"), init_method=f"file://{tmp_path / 'store'}", rank=0,
                             world_size=1)
    try:
        flag, gathered = torch.tensor([1.0]), [None]
        tdist.all_reduce(flag)
        tdist.all_gather_object(gathered, ("rank", 0))
        assert float(flag) == 1.0 and gathered == [("rank", 0)]
    finally:
        tdist.destroy_process_group()


def test_torchrun_on_gpus_sets_the_local_device_before_joining(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    info = init_distributed(torch.device("cuda", 1))
    assert info == DistInfo(rank=1, world_size=2, local_rank=1)
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "cpu:gloo,cuda:nccl")]
    calls.clear()
    init_distributed("cpu")
    assert calls == [("init", "gloo")]


def test_compact_backbone_honours_input_size():
    seen = []
    for size, side in ((56, 56), (224, 224)):
        net = create_backbone(BackboneSpec("compact", width=8, input_size=size))
        hook = net.stem.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
        assert net(torch.rand(2, 1, 56, 56)).shape == (2, net.num_features)
        hook.remove()
        assert seen[-1] == (side, side)


def test_predict_runs_heads_and_softmax_in_fp32_under_autocast():
    torch.manual_seed(0)
    model = MultiHeadClassifier(COMBO, BackboneSpec("compact", width=8), joint_head=True).eval()
    dtypes = []
    for head in [*model.heads, model.joint_head]:
        head.register_forward_hook(lambda m, inp, out: dtypes.append((inp[0].dtype, out.dtype)))
    images = torch.randint(0, 256, (5, 56, 56), dtype=torch.uint8).numpy()
    pred = predict(model, images, autocast=torch.bfloat16)
    assert dtypes and all(d == (torch.float32, torch.float32) for d in dtypes)
    assert all(p.dtype.name == "float32" for p in pred.probs)
    exact = predict(model, images)  # the backbone in fp32 too: probabilities agree to bf16 rounding of the features
    assert all(abs(p - q).max() < 0.05 for p, q in zip(pred.probs, exact.probs))


def test_copies_and_gathers_to_the_device_do_not_wait(monkeypatch):
    """Staging on the CPU moves nothing; a gather from a staged set and a copy of host
    values make no call that would wait on a GPU (tests/sync_guard.py models the device)."""
    from semilabel.device import configure_for, optimizer_options
    from semilabel.train.staging import gather, stage
    from semilabel.transfer import to_device
    from sync_guard import MARK, DeviceModel

    x = torch.arange(12).view(6, 2)
    assert stage(torch.device("cpu"), x, None) == (x, None)  # on a CPU nothing moves
    setattr(x, MARK, True)  # as if staged on the GPU
    guard = DeviceModel()
    with guard:
        got = gather(x, torch.tensor([4, 1]), torch.device("cpu"))  # the index is drawn on the host
        copied = to_device(torch.tensor([0.5, 2.0]), torch.device("cpu"))
    assert not guard.syncs, guard.syncs
    assert torch.equal(got, torch.tensor([[8, 9], [2, 3]])) and getattr(copied, MARK, False)
    assert optimizer_options(CUDA) == {"fused": True} and optimizer_options(torch.device("cpu")) == {}
    before = torch.backends.cudnn.benchmark
    try:
        configure_for(torch.device("cpu"), cudnn_benchmark=not before)
        assert torch.backends.cudnn.benchmark == before  # a CPU run leaves cuDNN alone
        configure_for(CUDA, cudnn_benchmark=True)
        assert torch.backends.cudnn.benchmark
        configure_for(CUDA)  # off unless asked: each new shape cost 25-31 s at 224 px
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_copies_and_gathers_to_a_gpu_do_not_sync():
    from semilabel.train.staging import gather, stage
    from semilabel.transfer import to_device

    (x,) = stage(CUDA, torch.arange(12).view(6, 2))
    assert x.is_cuda
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = gather(x, torch.tensor([4, 1]), CUDA)
        copied = to_device(torch.tensor([0.5, 2.0]), CUDA)
        host = gather(torch.arange(12).view(6, 2), torch.tensor([4, 1]), CUDA)  # a set left on the host
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert got.is_cuda and copied.is_cuda and torch.equal(got.cpu(), host.cpu())


def test_predicting_with_a_run_uses_its_device_when_usable_here(gpus):
    from semilabel.device import run_device

    gpus(0)
    assert run_device("auto") == torch.device("cpu")
    assert run_device("cuda") == torch.device("cpu")  # trained on a GPU, predicted on a laptop
    gpus(1)
    assert run_device("auto") == CUDA and run_device("cuda:0") == CUDA
    assert run_device("cpu") == torch.device("cpu")
    assert run_device("cuda:3") == CUDA


def test_memory_layout_follows_the_setting_or_the_machine(monkeypatch):
    from semilabel import device as device_module
    from semilabel.device import use_channels_last

    assert use_channels_last(True) and not use_channels_last(False)
    monkeypatch.setattr(device_module.torch.cuda, "is_available", lambda: False)
    for fast in (True, False):
        monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert use_channels_last(None) is fast
