"""Atomic file writes: a temporary file in the same folder, then a rename; a set of files
staged beside its final folder's entries and renamed into place one by one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from semilabel import faults
from semilabel.errors import CheckpointError, OutputExistsError, SemilabelError


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
def staged_folder(final: str | Path, managed: Iterable[str], first: str | None = None) -> Iterator[Path]:
    """Yield a hidden staging folder inside `final` to write a set of files into.

    On success each staged file replaces its namesake in `final`, `first` (the set's
    manifest) before the others, so that a set cut short between two renames is refused
    by the readers that check it; files of an earlier set whose names are in `managed`
    but were not written again are then removed. Nothing else in `final` is ever moved,
    renamed or deleted, whatever fails: on an exception only the staging folder goes
    (and `final` itself, when this call created it and it is still empty). An OSError
    becomes one SemilabelError line naming the path.
    """
    final = Path(final)
    managed = set(managed)
    created = _prepare_set_folder(final, managed)
    staged = Path(tempfile.mkdtemp(prefix=".semilabel-", suffix=".tmp", dir=final))
    try:
        yield staged
        names = sorted(p.name for p in staged.iterdir())
        if not set(names) <= managed:
            raise SemilabelError(f"{final}: wrote files that are not the set's own: {sorted(set(names) - managed)}")
        for name in names:
            _fsync(staged / name)
        for name in sorted(names, key=lambda n: n != first):  # the manifest first
            faults.reached(f"rename:{name}")
            os.replace(staged / name, final / name)
        for name in sorted(managed - set(names)):  # an earlier set's part this one leaves out
            if (final / name).is_file() or (final / name).is_symlink():
                (final / name).unlink()
        staged.rmdir()
        _fsync(final, directory=True)
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        if created:
            with suppress(OSError):
                final.rmdir()  # only while empty: nothing but our staging was ever in it
        if isinstance(exc, OSError):
            where = exc.filename2 or exc.filename or final  # os.replace names its target second
            raise SemilabelError(f"{where}: cannot write the set ({exc.strerror or exc}); "
                                 f"files in {final} that are not the set's own were left untouched") from None
        raise


def _prepare_set_folder(final: Path, managed: set[str]) -> bool:
    """Create `final` if needed (True when this call created it); refuse, before anything
    is written, a file in its place or a folder standing where one of the set's files goes."""
    if final.exists() and not final.is_dir():
        raise OutputExistsError(f"{final}: exists and is not a folder")
    if final.is_dir():
        blocked = sorted(n for n in managed if (final / n).is_dir() and not (final / n).is_symlink())
        if blocked:
            raise OutputExistsError(f"{final / blocked[0]}: is a folder where the set writes a file; move it away first")
        return False
    try:
        final.mkdir(parents=True)
    except OSError as exc:
        raise SemilabelError(f"{final}: cannot create the folder ({exc.strerror or exc})") from None
    return True


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
