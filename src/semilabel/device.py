"""Which device, precision and batch size a run uses: shared by training, predict
and evaluate, and checked before anything is written."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from semilabel.config import Config
from semilabel.distributed import DistInfo
from semilabel.errors import ConfigError

_CUDA = re.compile(r"cuda(?::(\d+))?")
CPU_BATCH_SIZE = 128  # batch_size left unset (null) on a CPU
# ... on a CPU whose budget passes over the labelled images often (train/method_choice.py
# says when): there the count of steps limits the run, not the rows in each
CPU_MANY_PASSES_BATCH_SIZE = 32
GPU_BATCH_SIZE = 512  # ... and on a CUDA GPU, where 128 leaves the GPU waiting on Python
BF16_CAPABILITY = (8, 0)  # Ampere and later: fast bf16 convolutions and matmuls


def cuda_problem() -> str:
    """Why torch sees no usable CUDA device, in words."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch"
    return (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable GPU "
            f"(none here, or its driver is too old for this build)")


def _gpu_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded on this machine (even if torch cannot use it)."""
    return Path("/proc/driver/nvidia/version").exists()


def cuda_note() -> str | None:
    """One line when `auto` falls back to the CPU although a GPU seems to be here."""
    if torch.cuda.is_available() or not _gpu_driver_present():
        return None
    return f"note: a GPU driver is present but CUDA is unusable ({cuda_problem()}); training on the CPU"


def resolve_device(name: str, dist: DistInfo) -> torch.device:
    """auto | cpu | cuda | cuda:N -> a torch device, or a ConfigError saying why not.

    Under torchrun every process takes cuda:LOCAL_RANK, so a fixed `cuda:N` (which
    would put every process on one GPU) is refused: choose GPUs with
    CUDA_VISIBLE_DEVICES instead.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(name)
    if match is None:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available ({cuda_problem()})")
    count = torch.cuda.device_count()
    if match.group(1) is not None and dist.enabled:
        raise ConfigError(f"--device {name}: under torchrun each process uses cuda:LOCAL_RANK; give --device cuda "
                          f"and choose the GPUs with CUDA_VISIBLE_DEVICES")
    index = int(match.group(1)) if match.group(1) is not None else (dist.local_rank if dist.enabled else 0)
    if index >= count:
        have = f"{count} CUDA device{'s' if count != 1 else ''} (cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})"
        if dist.enabled:
            raise ConfigError(f"--device cuda: the process with LOCAL_RANK {index} has no GPU of its own; this machine "
                              f"has {have}: start at most {count} processes per machine")
        raise ConfigError(f"--device {name}: this machine has {have}")
    return torch.device("cuda", index)


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX-512 or AMX): then bf16 autocast
    roughly doubles CPU training speed; elsewhere it would be emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """The autocast dtype a run uses (None: plain fp32) and why it was chosen."""

    dtype: torch.dtype | None
    reason: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def describe(self) -> str:
        scaled = " with loss scaling" if self.dtype == torch.float16 else ""
        return f"{self.name}{scaled} ({self.reason})"


def choose_precision(precision: str, device: torch.device) -> Precision:
    """The precision for a `precision` setting on `device`.

    auto: on a GPU, bf16 at compute capability 8.0 or more and fp16 (with a
    GradScaler) below, where bf16 convolutions have no fast kernels although
    `torch.cuda.is_bf16_supported()` says yes; on a CPU, bf16 where oneDNN runs it
    natively (measured: 132 -> 269 images/s per core for the compact net), else fp32.
    """
    fixed = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in fixed:
        return Precision(fixed[precision], "as configured")
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= BF16_CAPABILITY:
            return Precision(torch.bfloat16, f"auto: compute capability {major}.{minor} runs bf16 natively")
        return Precision(torch.float16, f"auto: compute capability {major}.{minor} is below 8.0, "
                                        f"where bf16 has no fast kernels")
    if cpu_has_fast_bf16():
        return Precision(torch.bfloat16, "auto: this CPU runs bf16 natively")
    return Precision(None, "auto: this CPU has no native bf16")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a `precision` of bf16 set for a GPU below compute capability 8.0: torch runs
    it there without fast kernels (though `torch.cuda.is_bf16_supported()` may say yes),
    which `auto` avoids by taking fp16. Called before a run writes anything."""
    if precision != "bf16" or device.type != "cuda":
        return
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < BF16_CAPABILITY:
        raise ConfigError(f"config key 'precision': bf16 on {device} ({torch.cuda.get_device_name(device)}, compute "
                          f"capability {major}.{minor}) has no fast kernels below 8.0; set precision to fp16 or auto "
                          f"(--set precision=auto)")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a `precision` setting, or None for plain fp32."""
    return choose_precision(precision, device).dtype


def batch_size_for(batch_size: int | None, device: torch.device, many_passes: bool = False) -> int:
    """An explicit batch size, or the default for the device when it is None: on a CPU
    a smaller one where the run passes over its labelled images `many_passes` times."""
    if batch_size is not None:
        return batch_size
    if device.type == "cuda":
        return GPU_BATCH_SIZE
    return CPU_MANY_PASSES_BATCH_SIZE if many_passes else CPU_BATCH_SIZE


def device_line(device: torch.device, precision: Precision, batch_size: int) -> str:
    """The first line a training run prints: where it runs, in what precision and why."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{device} ({torch.cuda.get_device_name(device)}, compute capability {major}.{minor})"
    else:
        where = "cpu"
    return f"device {where}; precision {precision.describe()}; batch {batch_size}"


def with_batch_size(config: Config, device: torch.device, many_passes: bool = False) -> Config:
    """`config` with its batch size settled for `device` (saved so, a resume keeps it)."""
    if config.batch_size is not None:
        return config
    return dataclasses.replace(config, batch_size=batch_size_for(None, device, many_passes))


def configure_for(device: torch.device, cudnn_benchmark: bool = False) -> None:
    """Process-wide settings for training on `device`: on CUDA, whether cuDNN times its
    algorithms for each new batch shape (`cudnn_benchmark`) or picks them by heuristics."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark


def optimizer_options(device: torch.device) -> dict:
    """Extra arguments for Adam/AdamW: the fused CUDA kernel on a GPU (one launch for
    every parameter, and loss scaling without a host sync)."""
    return {"fused": True} if device.type == "cuda" else {}


def run_device(trained_on: str) -> torch.device:
    """Where to predict with a trained run unless told: the device it trained on
    (`auto` included) when that is usable here, else `auto` (a run copied from a GPU
    machine to a laptop predicts on its CPU)."""
    try:
        return resolve_device(trained_on, DistInfo())
    except ConfigError:
        return resolve_device("auto", DistInfo())


def use_channels_last(setting: bool | None, device: torch.device | None = None) -> bool:
    """The convolution memory layout for a model that runs on `device` (None: the device
    `auto` picks here): `setting` when given, else channels-last on a CUDA device or on a
    CPU with native bf16 (measured 20% faster training there) and the contiguous layout
    on other CPUs (measured 2x faster in fp32 on an AMD EPYC without AVX-512: 72 against
    36 images/s per core for the compact net). The run's device decides, not the
    machine: `--device cpu` on a GPU machine gets the CPU's layout."""
    if setting is not None:
        return setting
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return cpu_has_fast_bf16() if device.type == "cpu" else device.type == "cuda"


def memory_format(setting: bool | None, device: torch.device | None = None) -> torch.memory_format:
    """`use_channels_last` as the torch memory format."""
    return torch.channels_last if use_channels_last(setting, device) else torch.contiguous_format
