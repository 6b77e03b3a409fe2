"""Readers: the original pickle layout, .npz files and PNG folders with labels.csv."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from semilabel.data.readers import (
    ORIGINAL_FILES,
    as_labels,
    read_dataset,
    read_image_folder,
    read_images,
    read_labels,
    read_npz,
    read_original,
    read_pickle_images,
    read_pickle_labels,
)
from semilabel.data.schema import COMBO
from semilabel.errors import DataError

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(6, 56, 56), dtype=np.uint8)
INDICES = np.array([[0, 0], [1, 5], [2, 10], [3, 15], [9, 25], [7, 16]], dtype=np.int64)
BITS = COMBO.to_multihot(INDICES)


def pkl(path: Path, array) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(array, protocol=4))
    return path


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def original(folder: Path, images=IMAGES, labels=BITS, **extra) -> Path:
    pkl(folder / ORIGINAL_FILES["labeled"], images)
    pkl(folder / ORIGINAL_FILES["labels"], labels)
    for key, array in extra.items():
        pkl(folder / ORIGINAL_FILES[key], array)
    return folder


def raises_naming(path, match: str | None = None):
    """pytest.raises(DataError) that also checks the message names `path`."""

    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(DataError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            if handled:
                assert str(path) in str(self.info.value), f"{path} not named in: {self.info.value}"
            return handled

    return _Ctx()


# ---- original layout ----------------------------------------------------------------------
def test_write_combo_output_reads_back(tiny_combo, tiny_combo_dir):
    data = read_original(tiny_combo_dir)
    np.testing.assert_array_equal(data.labeled.images, tiny_combo.labeled.images)
    np.testing.assert_array_equal(data.labeled.labels, tiny_combo.labeled.labels)
    np.testing.assert_array_equal(data.unlabeled.images, tiny_combo.unlabeled.images)
    np.testing.assert_array_equal(data.unlabeled.labels, tiny_combo.unlabeled.labels)  # hidden labels_ul.pkl
    np.testing.assert_array_equal(data.test.images, tiny_combo.test.images)
    np.testing.assert_array_equal(data.test.labels, tiny_combo.test.labels)
    assert data.labeled.images.dtype == np.uint8 and data.image_shape == (56, 56)
    assert data.labeled.labels.dtype == np.int64
    assert data.schema == COMBO
    # read_dataset recognises the layout; read_images on the folder gives its test images
    again = read_dataset(tiny_combo_dir)
    np.testing.assert_array_equal(again.labeled.labels, tiny_combo.labeled.labels)
    np.testing.assert_array_equal(read_images(tiny_combo_dir).images, tiny_combo.test.images)


def test_original_layout_minimal(tmp_path):
    data = read_original(original(tmp_path))
    np.testing.assert_array_equal(data.labeled.images, IMAGES)
    np.testing.assert_array_equal(data.labeled.labels, INDICES)
    assert data.unlabeled is None and data.test is None


def test_original_layout_with_all_parts(tmp_path):
    data = read_original(original(tmp_path, unlabeled=IMAGES[:4], test=IMAGES[:3], test_labels=BITS[:3]))
    assert len(data.unlabeled) == 4 and data.unlabeled.labels is None
    np.testing.assert_array_equal(data.test.labels, INDICES[:3])


@pytest.mark.parametrize("name, array", [
    ("(N,1,56,56) uint8", IMAGES[:, None]),
    ("(N,56,56,1) uint8", IMAGES[..., None]),
    ("int64 0-255", IMAGES.astype(np.int64)),
    ("float 0-255", IMAGES.astype(np.float32)),
    ("float64 0-255", IMAGES.astype(np.float64)),
    ("float 0-1", IMAGES.astype(np.float64) / 255.0),
    ("float 0-1 with channel", (IMAGES.astype(np.float32) / 255.0)[:, None]),
])
def test_image_forms_converted_to_uint8(tmp_path, name, array):
    images = read_pickle_images(pkl(tmp_path / "x.pkl", array))
    assert images.dtype == np.uint8 and images.shape == (6, 56, 56)
    np.testing.assert_array_equal(images, IMAGES)


def test_bool_images(tmp_path):
    images = read_pickle_images(pkl(tmp_path / "x.pkl", IMAGES > 128))
    assert set(np.unique(images)) == {0, 255}


def test_labels_as_indices_accepted(tmp_path):
    np.testing.assert_array_equal(read_pickle_labels(pkl(tmp_path / "y.pkl", INDICES)), INDICES)
    np.testing.assert_array_equal(read_pickle_labels(pkl(tmp_path / "y.pkl", BITS.astype(np.float32))), INDICES)


@pytest.mark.parametrize("array, match", [
    (np.full((2, 56, 56), np.nan, np.float32), "image 0 contains NaN"),
    (np.concatenate([np.zeros((1, 56, 56)), np.full((1, 56, 56), np.inf)]), "image 1 contains NaN or infinite"),
    (np.full((2, 56, 56), 300.0), "0-1 or 0-255"),
    (np.full((2, 56, 56), -0.5), "0-1 or 0-255"),
    (np.full((2, 56, 56), 256, np.int32), "0-255"),
    (np.full((2, 56, 56), -1, np.int16), "0-255"),
    (np.zeros((56, 56), np.uint8), "shape"),                # one image, no batch axis
    (np.zeros((2, 3, 56, 56), np.uint8), "shape"),          # RGB channels first
    (np.zeros((2, 1, 1, 56, 56), np.uint8), "shape"),       # rank 5
    (np.zeros((0, 56, 56), np.uint8), "no images"),
    (np.zeros((2, 4, 4), np.uint8), "too small"),
    (np.zeros((2, 56, 56), np.complex64), "dtype"),
    (np.array(7), "shape"),                                  # 0-d
])
def test_bad_images_refused_naming_the_file(tmp_path, array, match):
    path = pkl(tmp_path / "images_l.pkl", array)
    with raises_naming(path, match):
        read_pickle_images(path)


@pytest.mark.parametrize("labels, match", [
    (BITS[:, :35], "36"),                                      # wrong width
    (np.zeros((6, 36), np.uint8), "row 0: expected exactly one digit bit"),
    (np.r_[BITS[:4], BITS[4:5] + np.eye(36, dtype=np.uint8)[11], BITS[5:]], "row 4: .*letter"),
    (INDICES + [[0, 26]], "row 0: letter index"),               # index out of range
    (INDICES * 1.5, "index"),                                   # fractional class index
    (BITS[:, 0], "shape"),                                      # 1-D
    (np.array(1.0), "shape"),                                   # 0-d
    (np.zeros((0, 36), np.uint8), "no labels"),
    (np.array([["a", "b"]]), "numbers"),
])
def test_bad_labels_refused_naming_the_file(tmp_path, labels, match):
    path = pkl(tmp_path / "labels_l.pkl", labels)
    with raises_naming(path, match):
        read_pickle_labels(path)


def test_as_labels_zero_dim_is_a_data_error():
    with pytest.raises(DataError, match="src"):
        as_labels(np.array(3), COMBO, "src")


def test_count_mismatch_named(tmp_path):
    folder = original(tmp_path, labels=BITS[:5])
    with pytest.raises(DataError, match=r"6 images but 5 labels") as err:
        read_original(folder)
    assert ORIGINAL_FILES["labeled"] in str(err.value)


def test_test_labels_count_mismatch_named(tmp_path):
    folder = original(tmp_path, test=IMAGES[:3], test_labels=BITS[:2])
    with raises_naming(folder / ORIGINAL_FILES["test"], "3 images but 2 labels"):
        read_original(folder)


def test_image_size_mismatch_between_parts(tmp_path):
    folder = original(tmp_path, test=np.zeros((2, 28, 28), np.uint8))
    with raises_naming(folder / ORIGINAL_FILES["test"], "28"):
        read_original(folder)


@pytest.mark.parametrize("damage", ["empty", "truncated", "missing"])
@pytest.mark.parametrize("which", ["labeled", "labels"])
def test_damaged_original_files(tmp_path, damage, which):
    folder = original(tmp_path)
    path = folder / ORIGINAL_FILES[which]
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        path.unlink()
    with raises_naming(path):
        read_dataset(folder)


# ---- .npz ---------------------------------------------------------------------------------
def test_npz_full_round_trip(tmp_path):
    path = npz(tmp_path / "d.npz", x=IMAGES, y=BITS, x_unlabeled=IMAGES[:2], x_test=IMAGES[:3], y_test=INDICES[:3])
    data = read_dataset(path)
    np.testing.assert_array_equal(data.labeled.images, IMAGES)
    np.testing.assert_array_equal(data.labeled.labels, INDICES)
    assert len(data.unlabeled) == 2 and data.unlabeled.labels is None
    np.testing.assert_array_equal(data.test.labels, INDICES[:3])
    np.testing.assert_array_equal(read_labels(path), INDICES)
    images = read_images(path)
    np.testing.assert_array_equal(images.labels, INDICES)


def test_npz_without_labels_is_a_test_set(tmp_path):
    data = read_npz(npz(tmp_path / "d.npz", x=IMAGES / 255.0))
    assert len(data.labeled) == 0 and data.test is not None
    np.testing.assert_array_equal(data.test.images, IMAGES)


def test_npz_only_x_test(tmp_path):
    path = npz(tmp_path / "t.npz", x_test=IMAGES, y_test=BITS)
    got = read_images(path)
    np.testing.assert_array_equal(got.images, IMAGES)
    np.testing.assert_array_equal(got.labels, INDICES)
    np.testing.assert_array_equal(read_labels(path), INDICES)


@pytest.mark.parametrize("arrays, match", [
    ({"images": IMAGES, "y": BITS}, "missing array `x`"),
    ({}, "missing array `x`"),
    ({"x": IMAGES, "y": BITS[:5]}, "6 images but 5 labels"),
    ({"x": IMAGES, "y": BITS[:, :30]}, r"\[y\].*36"),
    ({"x": IMAGES.astype(np.float32) * 2.0}, "0-1 or 0-255"),
    ({"x": IMAGES[:, 0]}, "shape"),
    ({"x": IMAGES, "y": BITS, "x_test": IMAGES[:2], "y_test": BITS[:3]}, r"x_test.*2 images but 3 labels"),
    ({"x": np.array([None, 1], dtype=object)}, "Python objects"),
])
def test_bad_npz_refused_naming_the_file(tmp_path, arrays, match):
    path = npz(tmp_path / "bad.npz", **arrays)
    with raises_naming(path, match):
        read_dataset(path)


@pytest.mark.parametrize("cut", [10, 100, 0.5, -30])
def test_truncated_npz(tmp_path, cut):
    data = (npz(tmp_path / "ok.npz", x=IMAGES, y=BITS)).read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: int(len(data) * cut)] if isinstance(cut, float) else data[:cut])
    with raises_naming(path):
        read_npz(path)


def test_empty_and_foreign_npz(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with raises_naming(empty, "empty"):
        read_npz(empty)
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n")
    with raises_naming(text) as err:
        read_npz(text)
    assert "Python objects" not in str(err.value)  # a text file holds no pickled objects
    npy = tmp_path / "array.npz"
    with npy.open("wb") as fh:
        np.save(fh, IMAGES)
    with raises_naming(npy):
        read_npz(npy)


def test_npz_with_damaged_member_header(tmp_path):
    """A zip whose `x.npy` member has a broken header: corrupt, not 'Python objects'."""
    buf = io.BytesIO()
    np.save(buf, IMAGES)
    member = buf.getvalue().replace(b"'descr'", b"'dexcr'")  # the header lacks a required key
    path = tmp_path / "hdr.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", member)
    with raises_naming(path) as err:
        read_npz(path)
    assert "Python objects" not in str(err.value)


# ---- PNG folders --------------------------------------------------------------------------
def png_folder(folder: Path, images=IMAGES[:4], names=None, mode="L") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i:02d}.png" for i in range(len(images))]
    for name, image in zip(names, images):
        Image.fromarray(image).convert(mode).save(folder / name)
    return names


def test_png_folder_with_category_csv(tmp_path):
    names = png_folder(tmp_path)
    order = [2, 0, 3, 1]  # the CSV decides the order
    strings = COMBO.to_strings(INDICES[:4])
    rows = "".join(f"{names[i]},{strings[i]}\n" for i in order)
    (tmp_path / "labels.csv").write_text("file,Category\n" + rows)
    got = read_image_folder(tmp_path)
    np.testing.assert_array_equal(got.images, IMAGES[:4][order])
    np.testing.assert_array_equal(got.labels, INDICES[:4][order])
    data = read_dataset(tmp_path)
    np.testing.assert_array_equal(data.labeled.labels, INDICES[:4][order])


def test_png_folder_with_group_columns_and_rgb(tmp_path):
    names = png_folder(tmp_path, mode="RGB")
    rows = [f"{n},{COMBO.groups[0].classes[d]},{COMBO.groups[1].classes[l].upper() if i % 2 else COMBO.groups[1].classes[l]}"
            for i, (n, (d, l)) in enumerate(zip(names, INDICES[:4]))]
    (tmp_path / "labels.csv").write_text("file,digit,letter\n" + "\n".join(rows) + "\n")
    got = read_image_folder(tmp_path)
    np.testing.assert_array_equal(got.images, IMAGES[:4])  # grey RGB -> the same grey levels
    np.testing.assert_array_equal(got.labels, INDICES[:4])


def test_png_dataset_with_unlabeled_and_test_subfolders(tmp_path):
    names = png_folder(tmp_path)
    (tmp_path / "labels.csv").write_text(
        "file,digit,letter\n" + "".join(f"{n},{d},{'abcdefghijklmnopqrstuvwxyz'[l]}\n"
                                        for n, (d, l) in zip(names, INDICES)))
    png_folder(tmp_path / "unlabeled", IMAGES[:3])
    png_folder(tmp_path / "test", IMAGES[:2])
    data = read_dataset(tmp_path)
    assert len(data.labeled) == 4 and len(data.unlabeled) == 3 and len(data.test) == 2
    assert data.unlabeled.labels is None


def test_csv_naming_a_missing_file(tmp_path):
    names = png_folder(tmp_path)
    (tmp_path / "labels.csv").write_text(f"file,digit,letter\n{names[0]},1,a\nghost.png,2,b\n")
    with raises_naming(tmp_path / "labels.csv", "ghost.png"):
        read_image_folder(tmp_path)


@pytest.mark.parametrize("csv_text, match", [
    ("file,Category\nimg00.png,{bad}\n", "row 0"),
    ("file,digit,letter\nimg00.png,1,a\nimg01.png,x,b\n", "row 1: digit 'x'"),
    ("file,digit,letter\nimg00.png,1,a\nimg01.png,2,ab\n", "row 1: letter"),
    ("file,digit\nimg00.png,1\n", "missing letter"),
    ("name,Category\nimg00.png,0\n", "needs a `file` column"),
    ("file,Category\n", "only a header"),
    ("", "empty"),
])
def test_bad_labels_csv(tmp_path, csv_text, match):
    png_folder(tmp_path)
    (tmp_path / "labels.csv").write_text(csv_text.replace("{bad}", "1" * 36))
    with raises_naming(tmp_path / "labels.csv", match):
        read_image_folder(tmp_path)


def test_folder_without_csv_reads_images_in_name_order(tmp_path):
    png_folder(tmp_path, IMAGES[:3], names=["b.png", "a.png", "c.png"])
    got = read_images(tmp_path)
    assert got.labels is None
    np.testing.assert_array_equal(got.images, IMAGES[[1, 0, 2]])


def test_non_image_file_in_folder_without_csv(tmp_path):
    png_folder(tmp_path, IMAGES[:2])
    (tmp_path / "notes.txt").write_text("hello")
    with raises_naming(tmp_path / "notes.txt", "not an image file"):
        read_image_folder(tmp_path)


def test_corrupt_png_named(tmp_path):
    png_folder(tmp_path, IMAGES[:2])
    bad = tmp_path / "img01.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with raises_naming(bad, "not a readable image"):
        read_image_folder(tmp_path)
    bad.write_bytes(b"not a png at all")
    with raises_naming(bad, "not a readable image"):
        read_image_folder(tmp_path)


def test_png_claiming_a_gigantic_size(tmp_path):
    """A PNG header saying 30000x30000 (a decompression bomb) is a DataError, not a crash."""
    png_folder(tmp_path, IMAGES[:1], names=["bomb.png"])
    data = (tmp_path / "bomb.png").read_bytes()
    ihdr = b"IHDR" + struct.pack(">II", 30000, 30000) + data[24:29]
    (tmp_path / "bomb.png").write_bytes(data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:])
    with raises_naming(tmp_path / "bomb.png"):
        read_image_folder(tmp_path)


def test_images_of_different_sizes(tmp_path):
    png_folder(tmp_path, IMAGES[:2])
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "small.png")
    with raises_naming(tmp_path, "differ in size"):
        read_image_folder(tmp_path)


def test_empty_folder_and_non_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises_naming(tmp_path / "empty", "no images"):
        read_image_folder(tmp_path / "empty")
    with raises_naming(tmp_path / "empty", "not a dataset folder"):
        read_dataset(tmp_path / "empty")
    with raises_naming(tmp_path / "nowhere", "no such file"):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "data.csv").write_text("a,b\n")
    with raises_naming(tmp_path / "data.csv"):
        read_dataset(tmp_path / "data.csv")


# ---- property: random bytes never raise anything but DataError --------------------------------
def _valid_files() -> dict[str, list[bytes]]:
    buf_plain, buf_zip = io.BytesIO(), io.BytesIO()
    np.savez(buf_plain, x=IMAGES[:2], y=BITS[:2])
    np.savez_compressed(buf_zip, x=IMAGES[:2], y=BITS[:2])
    pickles = [pickle.dumps(a, protocol=p) for a in (IMAGES[:2], BITS[:2]) for p in (2, 4, 5)]
    return {"pkl": pickles, "npz": [buf_plain.getvalue(), buf_zip.getvalue()]}


VALID = _valid_files()


@st.composite
def file_bytes(draw, ext: str) -> bytes:
    """Pure random bytes, or a valid file with a few bytes changed and/or cut short."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(VALID[ext])))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _only_data_errors(path: Path, readers) -> None:
    for read in readers:
        try:
            read(path)
        except DataError as exc:
            assert str(path) in str(exc)


@settings(max_examples=60, deadline=None)
@given(data=file_bytes("pkl"))
def test_random_pickle_bytes_only_data_error(fuzz_dir, data):
    path = fuzz_dir / "images_l.pkl"
    path.write_bytes(data)
    _only_data_errors(path, (read_pickle_images, read_pickle_labels, read_images, read_labels))


@settings(max_examples=60, deadline=None)
@given(data=file_bytes("npz"))
def test_random_npz_bytes_only_data_error(fuzz_dir, data):
    path = fuzz_dir / "data.npz"
    path.write_bytes(data)
    _only_data_errors(path, (read_npz, read_dataset, read_images, read_labels))


def test_a_damaged_glyph_index_is_refused_in_one_line(tiny_combo_dir, tmp_path):
    from semilabel.data.readers import GLYPH_FILES, read_dataset

    for path in tiny_combo_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert read_dataset(tmp_path).labeled.glyphs.shape == (len(read_dataset(tmp_path).labeled), 2)
    np.save(tmp_path / GLYPH_FILES["labeled"], np.zeros((3, 2), np.int64))
    with pytest.raises(DataError, match=r"glyphs_l.npy: expected \(16, 2\) integer glyph indices, got \(3, 2\)"):
        read_dataset(tmp_path)
