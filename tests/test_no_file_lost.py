"""A user's own files are never moved, renamed or deleted, whatever fails and wherever
the output goes: `make-data --out .`, `--out ..`, a folder of other work; `train --out`
and `report --out` likewise."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from semilabel import io_utils
from semilabel.cli import main
from semilabel.data.combo import write_combo
from semilabel.data.readers import read_dataset
from semilabel.errors import DataError, OutputExistsError, SemilabelError


def _user_files(folder: Path, tag: str) -> dict[Path, str]:
    """20 files and a subfolder of the user's, as a new user's working folder holds them."""
    (folder / f"{tag}-work").mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (folder / f"{tag}-{i}.txt").write_text(f"{tag} note {i}\n" * (i + 1))
    (folder / f"{tag}-work" / "draft.md").write_text("draft")
    return _digests(folder)


def _digests(folder: Path) -> dict[Path, str]:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _foreign(folder: Path, before: dict[Path, str]) -> dict[Path, str]:
    now = _digests(folder)
    return {p: now.get(p) for p in before}


def _count_renames(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = os.replace
    monkeypatch.setattr(io_utils.os, "replace", lambda a, b: (calls.append(str(b)), real(a, b))[1])
    return calls


def _fail_rename(monkeypatch, fail_at: int, real) -> list[str]:
    """Make the rename number `fail_at` (from 0) fail as a full disk would; the targets
    of the renames tried are collected in the returned list."""
    seen: list[str] = []

    def failing(a, b):
        seen.append(b)
        if len(seen) == fail_at + 1:
            raise OSError(28, "No space left on device", str(a), None, str(b))
        return real(a, b)

    monkeypatch.setattr(io_utils.os, "replace", failing)
    return seen


@pytest.mark.parametrize("where", [".", "..", "other-work"])
def test_a_failure_at_any_rename_loses_no_file_of_the_user(tmp_path, tiny_combo, monkeypatch, where):
    home = tmp_path / "home"
    cwd = home / "project"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = _user_files(home, "home") if where == ".." else {}
    before = {**before, **{Path("project") / p: d for p, d in _user_files(cwd, "mine").items()}} \
        if where != "other-work" else before
    if where == "other-work":
        before = {Path("project/other-work") / p: d for p, d in _user_files(cwd / "other-work", "theirs").items()}
    calls = _count_renames(monkeypatch)
    write_combo(tiny_combo, where, seed=0)  # a clean run, to count its renames
    out = (cwd / where).resolve()
    assert read_dataset(out).labeled is not None
    assert _foreign(home, before) == before
    renames, first_set = len(calls), _digests(out)

    real = os.replace
    for fail_at in range(renames):
        seen = _fail_rename(monkeypatch, fail_at, real)
        with pytest.raises(SemilabelError) as info:
            write_combo(tiny_combo, where, seed=0)
        assert "No space left" in str(info.value) and "\n" not in str(info.value)
        assert _foreign(home, before) == before, f"a user's file changed when rename {fail_at + 1} failed"
        assert not [p for p in out.iterdir() if p.name.startswith(".semilabel-")]  # nothing staged is left
    monkeypatch.setattr(io_utils.os, "replace", real)
    write_combo(tiny_combo, where, seed=0)
    assert _digests(out) == first_set


def test_a_set_cut_short_between_renames_is_refused_by_the_readers(tmp_path, tiny_combo, synthetic_banks, monkeypatch):
    from semilabel.data.combo import make_combo

    out = tmp_path / "set"
    write_combo(tiny_combo, out, seed=0)
    other = make_combo(*([b] for b in synthetic_banks), n_labeled=len(tiny_combo.labeled),
                       n_unlabeled=len(tiny_combo.unlabeled), n_test=len(tiny_combo.test), seed=9)
    real, seen = os.replace, []

    def fail_after_the_manifest(a, b):
        seen.append(b)
        if len(seen) > 1 and Path(b).parent == out and Path(b).name != "dataset.json":
            raise OSError(5, "Input/output error", str(a), None, str(b))
        return real(a, b)

    monkeypatch.setattr(io_utils.os, "replace", fail_after_the_manifest)
    with pytest.raises(SemilabelError):
        write_combo(other, out, seed=9)
    monkeypatch.setattr(io_utils.os, "replace", real)
    with pytest.raises(DataError, match="do not match dataset.json"):
        read_dataset(out)


def test_make_data_into_the_current_folder_through_the_cli(tmp_path, monkeypatch, capsys, shared_data):
    monkeypatch.chdir(tmp_path)
    before = _user_files(tmp_path, "mine")
    args = ["make-data", "--digits", str(shared_data / "digits_mnist.npz"), "--letters",
            str(shared_data / "letters_unipen.npz"), "--out", ".", "--n-labeled", "30", "--n-unlabeled", "10",
            "--n-test", "10"]
    assert main(args) == 0
    assert _foreign(tmp_path, before) == before
    assert read_dataset(tmp_path).labeled is not None
    capsys.readouterr()
    monkeypatch.setattr(io_utils.os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError(13, "Permission denied", a, None, b)))
    assert main([*args, "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Permission denied" in err[0]
    assert _foreign(tmp_path, before) == before


def test_a_folder_where_the_set_writes_a_file_is_refused_before_anything_is_written(tmp_path, tiny_combo):
    (tmp_path / "images_l.pkl").mkdir()
    (tmp_path / "images_l.pkl" / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="is a folder where the set writes a file"):
        write_combo(tiny_combo, tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images_l.pkl"]


@pytest.mark.parametrize("force", [False, True])
def test_train_refuses_a_folder_of_other_work_and_leaves_it_as_it_was(tmp_path, tiny_train_dir, monkeypatch, capsys,
                                                                      force):
    monkeypatch.chdir(tmp_path)
    before = _user_files(tmp_path, "mine")
    (tmp_path / "config.yaml").write_text("my own settings\n")  # names a run writes too
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "figure.png").write_bytes(b"mine")
    before = _digests(tmp_path)
    code = main(["train", str(tiny_train_dir), "--out", ".", "--time-budget", "0.05", "--no-report", "--quiet",
                 *(["--force"] if force else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a run's" in err[0] and "mine-0.txt" in err[0]
    assert _digests(tmp_path) == before


def test_train_asks_for_force_before_overwriting_a_run_stopped_before_its_first_checkpoint(tmp_path, tiny_train_dir,
                                                                                            capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("width: 8\n")
    code = main(["train", str(tiny_train_dir), "--out", str(run), "--time-budget", "0.05", "--no-report", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--force" in err[0] and "no last.pt" in err[0]
    assert (run / "config.yaml").read_text() == "width: 8\n"


def test_report_into_a_folder_of_other_figures_overwrites_and_deletes_none_of_them(tmp_path):
    from eval_fixtures import build_tiny_run
    from semilabel.report import FIGURES, write_report

    tiny = build_tiny_run(tmp_path / "tiny")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "holiday.png").write_bytes(b"the user's own")
    (pictures / "notes.md").write_text("the user's own")
    write_report(tiny.run, pictures)  # names the report never writes sit beside it
    assert (pictures / "report.html").exists()
    assert (pictures / "holiday.png").read_bytes() == b"the user's own"
    assert (pictures / "notes.md").read_text() == "the user's own"

    other = tmp_path / "other"
    other.mkdir()
    (other / f"{sorted(FIGURES)[0]}.png").write_bytes(b"the user's own")
    (other / "confusion_mine.png").write_bytes(b"the user's own")
    before = _digests(other)
    with pytest.raises(OutputExistsError, match="a name the report writes"):
        write_report(tiny.run, other)
    assert _digests(other) == before


# ---- an image-folder set (make-data --task numbers): its subfolders are staged too -----------
def _numbers(synthetic_banks, n_labeled: int = 6, n_unlabeled: int = 3, n_test: int = 3, seed: int = 0):
    from semilabel.data.numbers import make_numbers

    return make_numbers(synthetic_banks[0], n_labeled=n_labeled, n_unlabeled=n_unlabeled, n_test=n_test, seed=seed)


def _users_files_among_a_folder_set(out: Path) -> dict[Path, str]:
    """The user's files beside the set, in its test/ and unlabeled/ subfolders too; names
    like the set's own but not quite (5 digits, another suffix)."""
    for sub in ("", "test", "unlabeled"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        (out / sub / "notes.txt").write_text(f"mine {sub}")
        (out / sub / "12345.png").write_bytes(b"my own picture")
        (out / sub / "000001.png.bak").write_bytes(b"my own backup")
    (out / "test" / "labels.csv.orig").write_text("file,tens\n")
    return _digests(out)


@pytest.mark.parametrize("new_folder", [False, True])
def test_a_failure_at_any_rename_of_a_folder_set_loses_no_file_of_the_user(tmp_path, synthetic_banks, monkeypatch,
                                                                          new_folder):
    from semilabel.data.numbers import write_numbers

    out = tmp_path / "set"
    before = {} if new_folder else _users_files_among_a_folder_set(out)
    splits = _numbers(synthetic_banks)
    calls = _count_renames(monkeypatch)
    write_numbers(splits, out, seed=0)  # a clean run, to count its renames
    renames, first_set = len(calls), _digests(out)
    assert renames > 12 and _foreign(out, before) == before
    if new_folder:
        assert len(read_dataset(out).unlabeled) == 3
    real = os.replace
    for fail_at in range(renames):
        if new_folder:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        seen = _fail_rename(monkeypatch, fail_at, real)
        with pytest.raises(SemilabelError) as info:
            write_numbers(splits, out, seed=0)
        assert "No space left" in str(info.value) and "\n" not in str(info.value)
        assert _foreign(out, before) == before, f"a user's file changed when rename {fail_at + 1} failed"
        if out.exists():
            assert not [p for p in out.rglob(".semilabel-*")]  # nothing staged is left
        placed = [n for n in seen[:-1] if ".semilabel-" not in str(n)]  # renamed into the set's folder
        if new_folder and not placed:
            assert not out.exists()  # nothing reached the new folder: it goes, with the subfolders it created
        monkeypatch.setattr(io_utils.os, "replace", real)
    write_numbers(splits, out, seed=0)
    assert _digests(out) == first_set


def test_a_smaller_folder_set_removes_the_old_sets_surplus_images_only(tmp_path, synthetic_banks):
    from semilabel.data.numbers import write_numbers

    out = tmp_path / "set"
    write_numbers(_numbers(synthetic_banks, 8, 6, 5, seed=1), out, seed=1)
    before = _users_files_among_a_folder_set(out)
    (out / "unlabeled" / "notes.txt").unlink()  # the readers would refuse a text file there
    (out / "unlabeled" / "12345.png").unlink()
    (out / "unlabeled" / "000001.png.bak").unlink()
    before = {p: d for p, d in before.items() if p.parts[0] != "unlabeled" or p.name[0] == "0" and p.suffix == ".png"}
    write_numbers(_numbers(synthetic_banks, 4, 2, 3, seed=2), out, seed=2)
    assert sorted(p.name for p in (out / "unlabeled").iterdir()) == ["000000.png", "000001.png"]
    assert sorted(p.name for p in out.glob("[0-9]*.png")) == ["000000.png", "000001.png", "000002.png", "000003.png",
                                                             "12345.png"]
    mine = {p: d for p, d in before.items() if not (p.suffix == ".png" and len(p.stem) == 6) and p.name != "labels.csv"
            and p.name not in ("schema.yaml", "dataset.json")}
    assert _foreign(out, mine) == mine
    data = read_dataset(out)
    assert (len(data.labeled), len(data.unlabeled), len(data.test)) == (4, 2, 3)


def test_a_folder_set_cut_short_between_renames_is_refused_by_the_readers(tmp_path, synthetic_banks, monkeypatch):
    from semilabel.data.numbers import write_numbers

    out = tmp_path / "set"
    write_numbers(_numbers(synthetic_banks, seed=1), out, seed=1)
    real, seen = os.replace, []

    def fail_in_test(a, b):
        seen.append(b)
        if Path(b).parent == out / "test" and Path(b).name == "000001.png":
            raise OSError(5, "Input/output error", str(a), None, str(b))
        return real(a, b)

    monkeypatch.setattr(io_utils.os, "replace", fail_in_test)
    with pytest.raises(SemilabelError):
        write_numbers(_numbers(synthetic_banks, seed=2), out, seed=2)
    monkeypatch.setattr(io_utils.os, "replace", real)
    with pytest.raises(DataError, match="do not match dataset.json"):
        read_dataset(out)


@pytest.mark.parametrize("blocker", ["file", "link"])
def test_a_file_or_link_where_a_folder_set_writes_a_subfolder_is_refused_before_anything_is_written(
        tmp_path, synthetic_banks, blocker):
    from semilabel.data.numbers import write_numbers

    out = tmp_path / "set"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if blocker == "file":
        (out / "test").write_text("mine")
    else:
        (out / "test").symlink_to(elsewhere)
    with pytest.raises(OutputExistsError, match=f"{out / 'test'}: is a {blocker} where the set writes a folder"):
        write_numbers(_numbers(synthetic_banks), out, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["test"] and list(elsewhere.iterdir()) == []
