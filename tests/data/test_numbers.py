"""The built-in `numbers` task: generated, written as an image folder, read back as a
colour task with groups tens, units, ink."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from semilabel.cli import main
from semilabel.data.numbers import INK_NAMES, INK_RGB, NUMBERS, make_numbers, write_numbers
from semilabel.data.readers import read_dataset, read_images, read_labels
from semilabel.data.schema import read_schema_yaml


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_numbers(synthetic_banks):
    return make_numbers(synthetic_banks[0], n_labeled=40, n_unlabeled=12, n_test=10, seed=5)


def test_numbers_set_reads_back_as_a_three_group_colour_task(small_numbers, tmp_path):
    write_numbers(small_numbers, tmp_path, seed=5)
    data = read_dataset(tmp_path)
    assert data.schema.names == ("tens", "units", "ink") and data.schema.sizes == (10, 10, 4)
    assert data.schema.group("ink").classes == ("red", "green", "blue", "yellow")  # schema.yaml's order
    assert data.labeled.images.shape == (40, 40, 64, 3) and data.channels == 3 and data.image_shape == (40, 64)
    np.testing.assert_array_equal(data.labeled.images, small_numbers.labeled.images)  # PNG: lossless
    np.testing.assert_array_equal(data.labeled.labels, small_numbers.labeled.labels)
    np.testing.assert_array_equal(data.test.labels, small_numbers.test.labels)
    assert data.unlabeled.images.shape == (12, 40, 64, 3) and data.unlabeled.labels is None
    assert read_schema_yaml(tmp_path / "schema.yaml") == NUMBERS
    header = (tmp_path / "labels.csv").read_text().splitlines()[0]
    assert header == "file,tens,units,ink" and (tmp_path / "test" / "labels.csv").read_text().startswith(header)
    assert read_images(tmp_path / "test", NUMBERS).images.shape == (10, 40, 64, 3)
    np.testing.assert_array_equal(read_labels(tmp_path / "labels.csv"), small_numbers.labeled.labels)  # schema.yaml
    np.testing.assert_array_equal(read_labels(tmp_path / "test" / "labels.csv", NUMBERS), small_numbers.test.labels)


def test_the_ink_colour_is_the_labelled_one(small_numbers):
    """The pixels that stand out most from each image's background average nearest its labelled ink."""
    images, labels = small_numbers.labeled.images.astype(np.float32), small_numbers.labeled.labels
    for image, ink in zip(images, labels[:, 2]):
        pixels = image.reshape(-1, 3)
        standing_out = np.linalg.norm(pixels - np.median(pixels, axis=0), axis=1)
        strokes = pixels[standing_out >= np.quantile(standing_out, 0.97)].mean(axis=0)
        assert np.linalg.norm(INK_RGB - strokes, axis=1).argmin() == ink, (INK_NAMES[ink], strokes)


def test_every_class_occurs_and_the_digits_sit_tens_then_units(synthetic_banks):
    splits = make_numbers(synthetic_banks[0], n_labeled=400, n_unlabeled=0, n_test=0, seed=1)
    labels = splits.labeled.labels
    assert [len(np.unique(labels[:, g])) for g in range(3)] == [10, 10, 4]
    brightness = np.abs(splits.labeled.images.astype(np.float32) - np.median(splits.labeled.images, axis=(1, 2),
                                                                           keepdims=True)).sum(axis=(0, 1, 3))
    left, right = brightness[:32], brightness[32:]  # ink in both halves: one digit each
    assert left.sum() > 0.3 * brightness.sum() and right.sum() > 0.3 * brightness.sum()


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_images(synthetic_banks, tmp_path):
    for seed, out in ((3, "a"), (3, "b"), (4, "c")):
        write_numbers(make_numbers(synthetic_banks[0], n_labeled=8, n_unlabeled=4, n_test=4, seed=seed),
                      tmp_path / out, seed=seed)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a")["000000.png"] != _digests(tmp_path / "c")["000000.png"]


def test_empty_parts_are_left_out(synthetic_banks, tmp_path):
    write_numbers(make_numbers(synthetic_banks[0], n_labeled=5, n_unlabeled=0, n_test=0, seed=0), tmp_path)
    data = read_dataset(tmp_path)
    assert len(data.labeled) == 5 and data.unlabeled is None and data.test is None
    assert not (tmp_path / "unlabeled").exists() and not (tmp_path / "test").exists()


def test_make_data_task_numbers_from_the_built_in_glyphs(tmp_path, capsys):
    out = tmp_path / "numbers"
    args = ["make-data", "--task", "numbers", "--out", str(out), "--n-labeled", "30", "--n-unlabeled", "20",
            "--n-test", "10", "--seed", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "30 labelled, 20 unlabelled and 10 test images of the numbers task" in printed
    assert "tens (10), units (10), ink (4)" in printed
    data = read_dataset(out)
    assert data.labeled.images.shape == (30, 40, 64, 3) and len(data.unlabeled) == 20 and len(data.test) == 10
    assert (out / "samples.png").is_file()
    before = _digests(out)
    assert main(args) == 2  # an existing set needs --force
    assert "already holds a dataset (pass --force to overwrite)" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0 and _digests(out) == before  # the same seed: the same files


@pytest.mark.parametrize("flags, message", [
    (["--n-labeled", "0"], "--n-labeled must be 1 to 999,999, got 0"),
    (["--n-test", "-2"], "--n-test must be 0 to 999,999, got -2"),
    (["--digits", "x.npz"], "--digits applies to --task combo only"),
])
def test_make_data_numbers_refuses_bad_flags_writing_nothing(tmp_path, capsys, flags, message):
    assert main(["make-data", "--task", "numbers", "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_make_data_numbers_refuses_a_folder_holding_a_combo_set(tiny_combo_dir, tmp_path, capsys):
    out = tmp_path / "combo"
    out.mkdir()
    for path in tiny_combo_dir.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    before = _digests(out)
    assert main(["make-data", "--task", "numbers", "--out", str(out), "--force"]) == 2
    assert "holds a Combo set (images_l.pkl)" in capsys.readouterr().err
    assert _digests(out) == before
