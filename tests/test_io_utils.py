"""Atomic writes: the final file gets the umask's mode and is on disk before the rename;
a staged folder replaces a whole set of files at once."""

from __future__ import annotations

import os
import stat

import pytest

from semilabel import io_utils
from semilabel.io_utils import atomic_write_text, staged_folder


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.csv", "a,b\n")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.csv").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode  # what a plain open gives


def test_the_data_is_flushed_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io_utils.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                          real_fsync(fd)))
    monkeypatch.setattr(io_utils.os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    atomic_write_text(tmp_path / "summary.json", "{}")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].endswith(".tmp") and events[1][1] == str(tmp_path / "summary.json")
    assert events[2][1] == str(tmp_path)  # the folder entry too


def test_a_staged_folder_replaces_the_set_whole_or_not_at_all(tmp_path):
    final = tmp_path / "set"
    final.mkdir()
    for name in ("a.pkl", "b.pkl", "stale.pkl"):
        (final / name).write_text("old")
    (final / "notes.txt").write_text("the user's")
    with pytest.raises(RuntimeError):
        with staged_folder(final, {"a.pkl", "b.pkl", "stale.pkl"}) as staged:
            (staged / "a.pkl").write_text("new")
            raise RuntimeError("killed half way")
    assert {p.name: p.read_text() for p in final.iterdir()} == {"a.pkl": "old", "b.pkl": "old", "stale.pkl": "old",
                                                                "notes.txt": "the user's"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # nothing staged is left
    with staged_folder(final, {"a.pkl", "b.pkl", "stale.pkl"}) as staged:
        (staged / "a.pkl").write_text("new")
        (staged / "b.pkl").write_text("new")
    assert {p.name: p.read_text() for p in final.iterdir()} == {"a.pkl": "new", "b.pkl": "new", "notes.txt": "the user's"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
