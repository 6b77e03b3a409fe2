"""A CPU model of the host syncs a GPU would make (used by the host-sync and device tests).

`DeviceModel` runs torch code as if "the device" were not the host: the tensors a GPU
run would hold there are marked (`MARK`), every torch call propagates the mark, and
every call that would make the host wait for a GPU is recorded with the semilabel
line that made it.
"""

from __future__ import annotations

import linecache
import sys
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

MARK = "_semilabel_on_device"
# Tensor -> Python reads: each waits for the value
READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "__format__",
         "__array__", "equal", "allclose", "is_nonzero"}
# outputs whose shape depends on the values
DATA_DEPENDENT = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount",
                  "repeat_interleave"}
# indexing: an index tensor left on the host is copied to the device, blocking
INDEXING = {"__getitem__", "__setitem__", "index_select", "index_copy", "index_copy_", "index_add", "index_add_",
            "index_fill", "index_fill_", "index_put", "index_put_", "take", "take_along_dim", "gather",
            "scatter", "scatter_", "scatter_add", "scatter_add_", "masked_fill", "masked_fill_"}


def _on_device(value) -> bool:
    return isinstance(value, torch.Tensor) and getattr(value, MARK, False)


def _mark(value) -> None:
    for t in tree_flatten(value)[0]:
        if isinstance(t, torch.Tensor):
            setattr(t, MARK, True)


def _target(args, kwargs):
    """The device a `Tensor.to` call names (a tensor: its device), or None."""
    first = args[1] if len(args) > 1 else None
    if isinstance(first, torch.Tensor):
        return first
    if isinstance(first, (torch.device, str, int)):
        return first
    return kwargs.get("device")


class DeviceModel(TorchFunctionMode):
    """Records (what, semilabel line) for each call that would make the host wait on a GPU.

    The host and "the device" are both the CPU here, so the marks tell them apart: a
    tensor is on the device when it was marked, made from a marked tensor, or copied
    with `.to(device)` (a device named in a copy is taken to be the training device).
    A tensor created with `device=` is not marked (the device may be the host's): it
    joins the device when an op combines it with a marked one.
    """

    def __init__(self):
        super().__init__()
        self.syncs: Counter = Counter()

    @staticmethod
    def _is_device(target) -> bool:
        if isinstance(target, torch.Tensor):
            return _on_device(target)
        return target is not None

    def _hit(self, what: str) -> None:
        frame = sys._getframe(2)
        while frame is not None and "/semilabel/" not in frame.f_code.co_filename.replace("\\", "/"):
            frame = frame.f_back
        if frame is None:
            where = "outside semilabel"
        else:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}: {line}"
        self.syncs[(what, where)] += 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = any(_on_device(t) for t in inputs)
        self_on_device = bool(args) and _on_device(args[0])
        copy_to_device = name == "cuda" or name == "to" and self._is_device(_target(args, kwargs))
        if name in READS and self_on_device:
            self._hit(f"{name}() of a device tensor")
        elif name in DATA_DEPENDENT and on_device:
            self._hit(f"{name}(): output shape depends on device values")
        elif name == "where" and len(args) == 1 and on_device:
            self._hit("where(condition): output shape depends on device values")
        elif name in INDEXING and self_on_device:
            for t in inputs[1:]:
                if t.dtype == torch.bool and t.dim() > 0 and name in ("__getitem__", "__setitem__", "index_put",
                                                                     "index_put_"):
                    self._hit(f"{name} with a boolean mask: output shape depends on device values")
                elif not _on_device(t) and t.dim() > 0 and not t.is_floating_point():
                    self._hit(f"{name} with an index tensor on the host")
        elif copy_to_device and not self_on_device and not kwargs.get("non_blocking", False):
            self._hit(f"{name}(): a blocking copy to the device")
        out = func(*args, **kwargs)
        if on_device or copy_to_device:
            _mark(out)
        return out
