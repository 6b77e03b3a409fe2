"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from semilabel import faults
from semilabel.errors import CheckpointError, OutputExistsError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` then rename tmp over `path`; readers never see half a file.

    The file gets the mode a plain `open` would give (0666 less the umask), not the
    temporary file's 0600; it is flushed to disk before the rename, and the rename
    itself after, so a power loss leaves the old file or the new one, never an empty one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        faults.reached(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


@contextmanager
def staged_folder(final: str | Path, managed: Iterable[str]) -> Iterator[Path]:
    """Yield a fresh hidden folder beside `final` to write a set of files into; on
    success it replaces `final` as a whole, so a crash never leaves files of two sets
    mixed. Entries of an existing `final` whose names are not in `managed` (the set's
    own files) are carried over; on an exception the staged folder is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(staged, 0o777 & ~_umask())
    try:
        yield staged
        for path in staged.rglob("*"):
            if path.is_file():
                _fsync(path)
        managed = set(managed)
        if final.is_dir():
            for entry in final.iterdir():
                if entry.name not in managed and not (staged / entry.name).exists():
                    os.rename(entry, staged / entry.name)
            old = final.with_name(f"{staged.name}.old")
            os.rename(final, old)
            os.rename(staged, final)
            shutil.rmtree(old)
        else:
            os.rename(staged, final)
        _fsync(final.parent, directory=True)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _fsync(path: str | Path, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk; a folder that cannot be opened is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems refuse fsync on folders
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
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
