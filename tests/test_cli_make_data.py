"""`semilabel make-data` and `semilabel train DATA` validation, through the CLI."""

import hashlib

import numpy as np
import pytest

from semilabel.cli import main


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pkl"))}


def _make(out, shared_data, seed=5, extra=()):
    return main(["make-data", "--digits", str(shared_data / "digits_mnist.npz"), str(shared_data / "digits_unipen.npz"),
                 "--letters", str(shared_data / "letters_unipen.npz"), "--out", str(out), "--seed", str(seed),
                 "--n-labeled", "40", "--n-unlabeled", "20", "--n-test", "20", *extra])


def test_make_data_is_byte_identical_for_a_seed_and_refuses_to_overwrite(tmp_path, shared_data, capsys):
    assert _make(tmp_path / "a", shared_data) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("style of 40 generated images") and "symbol size p10/50/90" in out[2]
    assert len(out) == 6  # the counts, then the style in a few lines
    assert _make(tmp_path / "b", shared_data) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert {"images_l.pkl", "labels_l.pkl", "images_ul.pkl", "images_test.pkl", "labels_test.pkl"} <= set(_digest(tmp_path / "a"))
    assert (tmp_path / "a" / "samples.png").stat().st_size > 1000
    assert _make(tmp_path / "c", shared_data, seed=6) == 0
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")
    capsys.readouterr()
    before = _digest(tmp_path / "a")
    assert _make(tmp_path / "a", shared_data, seed=6) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a dataset" in err[0] and "--force" in err[0]
    assert _digest(tmp_path / "a") == before
    assert _make(tmp_path / "a", shared_data, seed=6, extra=["--force"]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "c")


def test_make_data_names_a_bad_glyph_bank(tmp_path, capsys):
    bad = tmp_path / "letters.npz"
    np.savez(bad, x=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 40]))
    digits = tmp_path / "digits.npz"
    np.savez(digits, x=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 2]))
    code = main(["make-data", "--digits", str(digits), "--letters", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(bad) in err[0] and "0..25" in err[0]
    assert not (tmp_path / "out").exists()


def test_train_validates_the_data_before_anything_else(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    import pickle

    (folder / "images_l.pkl").write_bytes(pickle.dumps(np.zeros((4, 56, 56), np.uint8)))
    from semilabel.data.schema import COMBO

    labels = COMBO.to_multihot(np.array([[1, 2], [3, 4], [5, 6]]))
    (folder / "labels_l.pkl").write_bytes(pickle.dumps(labels))
    code = main(["train", str(folder), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "4 images but 3 labels" in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", [["--n-labeled", "-1"]])
def test_make_data_rejects_negative_counts(tmp_path, shared_data, capsys, flag):
    code = main(["make-data", "--digits", str(shared_data / "digits_mnist.npz"), "--letters",
                 str(shared_data / "letters_unipen.npz"), "--out", str(tmp_path / "o"), *flag])
    assert code == 2 and "--n-labeled must be 0 or more" in capsys.readouterr().err


def test_make_data_force_interrupted_half_way_leaves_the_old_set_whole(tmp_path, synthetic_banks, monkeypatch):
    """A crash after some files of the new set leaves the old set as it was; the set
    records its seed and fingerprint, and a set whose files were mixed is refused."""
    import json

    from semilabel.data import combo
    from semilabel.data.combo import make_combo, write_combo
    from semilabel.data.readers import read_dataset
    from semilabel.errors import DataError

    digits, letters = synthetic_banks
    out = tmp_path / "set"
    write_combo(make_combo([digits], [letters], n_labeled=20, n_unlabeled=10, n_test=10, seed=1), out, seed=1)
    before = _digest(out)
    facts = json.loads((out / "dataset.json").read_text())
    assert facts["seed"] == 1 and facts["fingerprint"]["labeled"]["images"] == [20, 56, 56]
    real_save, saved = combo.save_array_pickle, []

    def crash_on_the_third(array, path):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(path)
        real_save(array, path)

    monkeypatch.setattr(combo, "save_array_pickle", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        write_combo(make_combo([digits], [letters], n_labeled=20, n_unlabeled=10, n_test=10, seed=2), out, seed=2)
    assert _digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    monkeypatch.undo()
    read_dataset(out)  # the old set, whole
    other = tmp_path / "other"
    write_combo(make_combo([digits], [letters], n_labeled=20, n_unlabeled=10, n_test=10, seed=2), other, seed=2)
    (out / "labels_l.pkl").write_bytes((other / "labels_l.pkl").read_bytes())  # labels of another seed
    with pytest.raises(DataError, match=r"its files do not match dataset.json \(the labeled images or labels have "):
        read_dataset(out)
