"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from semilabel import faults
from semilabel.errors import CheckpointError, OutputExistsError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` then rename tmp over `path`; readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        faults.reached(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def refuse_existing(path: str | Path, force: bool, flag: str = "--force") -> None:
    """Raise OutputExistsError when `path` exists and overwriting was not asked for."""
    if Path(path).exists() and not force:
        raise OutputExistsError(f"{path}: already exists (pass {flag} to overwrite)")


def load_torch_file(path: str | Path, kind: str) -> object:
    """`torch.load` with `weights_only=True` (a file cannot run code); a missing or
    corrupt file is one CheckpointError naming the path and `kind` ("checkpoint")."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {kind}") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or not a {kind} ({exc.__class__.__name__})") from None
