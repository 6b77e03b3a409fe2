"""Atomic file writes: a temporary file in the same folder, then a rename; a set of files
staged beside its final folder's entries and renamed into place one by one."""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from fnmatch import fnmatchcase
from pathlib import Path

from semilabel import faults
from semilabel.errors import CheckpointError, OutputExistsError, SemilabelError

_FSYNC_EACH_MAX = 32  # staged files flushed one by one; a larger set is flushed by one syncfs


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

    `managed` names the set's own files, relative to `final`: exact names
    ("dataset.json", "test/labels.csv") or, for files named by their number,
    fnmatch patterns without `*` ("test/[0-9][0-9][0-9].png"); a name with a folder
    part is written into that subfolder of `final` (created when absent).

    On success each staged file replaces its namesake in `final`, `first` (the set's
    manifest) before the others, so that a set cut short between two renames is refused
    by the readers that check it; files of an earlier set that are the set's own by
    `managed` but were not written again are then removed. Nothing else in `final` or
    its subfolders is ever moved, renamed or deleted, whatever fails: on an exception
    only the staging folder goes (and the folders this call created, while still
    empty). An OSError becomes one SemilabelError line naming the path.
    """
    final = Path(final)
    rules = _Managed(managed)
    created = _prepare_set_folder(final, rules)
    staged = Path(tempfile.mkdtemp(prefix=".semilabel-", suffix=".tmp", dir=final))
    made: list[Path] = []  # subfolders of `final` this call created, parents first
    try:
        yield staged
        names = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if not p.is_dir())
        foreign = [n for n in names if not rules.owns(n)]
        if foreign:
            raise SemilabelError(f"{final}: wrote files that are not the set's own: {foreign[:5]}")
        blocked = next((n for n in names if (final / n).is_dir() and not (final / n).is_symlink()), None)
        if blocked is not None:
            raise OutputExistsError(f"{final / blocked}: is a folder where the set writes a file; move it away first")
        _flush(staged, names)
        for sub in sorted({str(Path(n).parent) for n in names} - {"."}):
            for folder in [*reversed(Path(sub).parents[:-1]), Path(sub)]:
                if not (final / folder).is_dir():
                    (final / folder).mkdir()
                    made.append(final / folder)
        for name in sorted(names, key=lambda n: n != first):  # the manifest first
            faults.reached(f"rename:{name}")
            os.replace(staged / name, final / name)
        for name in rules.stale(final, set(names)):  # an earlier set's part this one leaves out
            (final / name).unlink()
        shutil.rmtree(staged)  # only its emptied subfolders are left
        for folder in sorted({(final / n).parent for n in names} | {final}, reverse=True):
            _fsync(folder, directory=True)
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        for folder in [*reversed(made), *([final] if created else [])]:
            with suppress(OSError):
                folder.rmdir()  # only while empty: nothing but this set was ever in it
        if isinstance(exc, OSError):
            where = exc.filename2 or exc.filename or final  # os.replace names its target second
            raise SemilabelError(f"{where}: cannot write the set ({exc.strerror or exc}); "
                                 f"files in {final} that are not the set's own were left untouched") from None
        raise


class _Managed:
    """Which paths (relative to the set's folder, '/'-separated) are the set's own."""

    def __init__(self, entries: Iterable[str]):
        entries = set(entries)
        self.names = {e for e in entries if not any(c in e for c in "*?[")}
        self.patterns = sorted(entries - self.names)
        if any("*" in p for p in self.patterns):
            raise ValueError("managed patterns must not use `*`: it would match across folders and any name")
        self.folders = sorted({str(f) for e in entries for f in Path(e).parents[:-1]})  # subfolders, parents first

    def owns(self, name: str) -> bool:
        return name in self.names or any(
            posixpath.dirname(name) == posixpath.dirname(p) and fnmatchcase(name, p) for p in self.patterns)

    def stale(self, final: Path, written: set[str]) -> list[str]:
        """The set's own files now in `final` that `written` does not hold."""
        found = [n for n in self.names if (final / n).is_file() or (final / n).is_symlink()]
        for folder in sorted({posixpath.dirname(p) for p in self.patterns}):
            where = final / folder
            if where.is_dir() and not where.is_symlink():
                found += [posixpath.join(folder, p.name) if folder else p.name for p in where.iterdir()
                          if (p.is_file() or p.is_symlink())]
        return sorted(n for n in set(found) if n not in written and self.owns(n))


def _prepare_set_folder(final: Path, rules: _Managed) -> bool:
    """Create `final` if needed (True when this call created it); refuse, before anything
    is written, a file in its place, a folder standing where one of the set's files goes,
    or a file or link standing where one of its subfolders goes."""
    if final.exists() and not final.is_dir():
        raise OutputExistsError(f"{final}: exists and is not a folder")
    if final.is_dir():
        blocked = sorted(n for n in rules.names if (final / n).is_dir() and not (final / n).is_symlink())
        if blocked:
            raise OutputExistsError(f"{final / blocked[0]}: is a folder where the set writes a file; move it away first")
        for sub in rules.folders:
            path = final / sub
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise OutputExistsError(f"{path}: is a {'link' if path.is_symlink() else 'file'} where the set "
                                        f"writes a folder; move it away first")
        return False
    try:
        final.mkdir(parents=True)
    except OSError as exc:
        raise SemilabelError(f"{final}: cannot create the folder ({exc.strerror or exc})") from None
    return True


def _flush(folder: Path, names: list[str]) -> None:
    """Put the staged files on disk before any is renamed: one fsync per file for a few,
    one syncfs of the file system for many (an fsync costs milliseconds each)."""
    if len(names) > _FSYNC_EACH_MAX and _syncfs(folder):
        return
    for name in names:
        _fsync(folder / name)


def _syncfs(folder: Path) -> bool:
    """Linux syncfs(2) on `folder`'s file system; False where it is not available."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
    except (OSError, AttributeError):
        return False
    try:
        return getattr(libc, "syncfs", None) is not None and libc.syncfs(fd) == 0
    finally:
        os.close(fd)


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
