"""A task of the user's own: image folders with labels.csv (groups from its header or a
schema.yaml), grey or colour, any size; arrays split into groups by a schema.yaml."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semilabel.cli import main
from semilabel.data.readers import (
    as_images,
    image_channels,
    read_dataset,
    read_image_folder,
    read_images,
    read_labels,
)
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema
from semilabel.errors import DataError

RNG = np.random.default_rng(3)
GREY = RNG.integers(0, 256, size=(6, 24, 40), dtype=np.uint8)  # H=24, W=40: not square
COLOUR = RNG.integers(0, 256, size=(6, 24, 40, 3), dtype=np.uint8)
SHAPES = ["circle", "square", "triangle", "circle", "square", "star"]
SIZES = ["10", "2", "1", "2", "10", "1"]

TASK_YAML = """\
groups:
  - {name: shape, classes: [triangle, square, circle, star]}
  - {name: size, classes: ["10", "2", "1"]}
"""
TASK = LabelSchema((LabelGroup("shape", ("triangle", "square", "circle", "star")), LabelGroup("size", ("10", "2", "1"))))


def save(folder: Path, images: np.ndarray, mode: str | None = None, suffix: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"im{i}{suffix}" for i in range(len(images))]
    for name, image in zip(names, images):
        img = Image.fromarray(image)
        (img.convert(mode) if mode else img).save(folder / name)
    return names


def task_folder(folder: Path, images: np.ndarray = GREY, rows=None, header: str = "file,shape,size") -> Path:
    names = save(folder, images)
    rows = rows or [f"{n},{s},{z}" for n, s, z in zip(names, SHAPES, SIZES)]
    (folder / "labels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return folder


def one_line(info, path) -> str:
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


# ---- labels.csv without a schema: groups from the header, classes in natural order ---------------
def test_grey_two_group_task_with_groups_from_the_header(tmp_path):
    data = read_dataset(task_folder(tmp_path))
    assert data.schema.names == ("shape", "size")
    assert data.schema.group("shape").classes == ("circle", "square", "star", "triangle")  # alphabetical
    assert data.schema.group("size").classes == ("1", "2", "10")  # all integers: by value
    assert data.labeled.images.shape == (6, 24, 40) and data.channels == 1 and data.image_shape == (24, 40)
    np.testing.assert_array_equal(data.labeled.images, GREY)
    names = data.schema.names_of(data.labeled.labels)
    assert names == list(zip(SHAPES, SIZES))  # each row's classes as written


def test_a_schema_yaml_beside_labels_csv_fixes_the_class_order(tmp_path):
    folder = task_folder(tmp_path)
    (folder / "schema.yaml").write_text(TASK_YAML)
    data = read_dataset(folder)
    assert data.schema == TASK
    np.testing.assert_array_equal(data.labeled.labels[:, 0], [2, 1, 0, 2, 1, 3])  # circle=2 in the yaml's order
    np.testing.assert_array_equal(data.labeled.labels[:, 1], [0, 1, 2, 1, 0, 2])
    assert read_dataset(folder, schema=None).schema == TASK and read_image_folder(folder).labels.tolist() == \
        data.labeled.labels.tolist()


def test_class_names_keep_their_case_and_match_case_blind_only_when_unambiguous(tmp_path):
    written = ["Circle", "SQUARE", "star", "triangle", "circle", "square"]
    folder = task_folder(tmp_path, rows=[f"im{i}.png,{s},{z}" for i, (s, z) in enumerate(zip(written, SIZES))])
    (folder / "schema.yaml").write_text(TASK_YAML)
    np.testing.assert_array_equal(read_dataset(folder).labeled.labels[:, 0], [2, 1, 3, 0, 2, 1])
    (folder / "schema.yaml").unlink()
    inferred = read_dataset(folder).schema.group("shape").classes
    assert inferred == ("Circle", "SQUARE", "circle", "square", "star", "triangle")  # as written: 6 classes


def test_colour_folder_reads_rgb_and_rgba_and_palette_images_as_rgb(tmp_path):
    names = save(tmp_path, COLOUR[:3])
    Image.fromarray(COLOUR[3]).convert("RGBA").save(tmp_path / "im3.png")
    Image.fromarray(COLOUR[4]).convert("P").save(tmp_path / "im4.png")
    Image.fromarray(COLOUR[5]).save(tmp_path / "im5.jpg", quality=95)
    names += ["im3.png", "im4.png", "im5.jpg"]
    (tmp_path / "labels.csv").write_text("file,shape,size\n" + "".join(
        f"{n},{s},{z}\n" for n, s, z in zip(names, SHAPES, SIZES)))
    data = read_dataset(tmp_path)
    assert data.labeled.images.shape == (6, 24, 40, 3) and data.channels == 3 and data.image_shape == (24, 40)
    np.testing.assert_array_equal(data.labeled.images[:4], COLOUR[:4])  # RGBA: the alpha dropped
    palette = np.asarray(Image.fromarray(COLOUR[4]).convert("P").convert("RGB"))
    np.testing.assert_array_equal(data.labeled.images[4], palette)
    with Image.open(tmp_path / "im5.jpg") as jpeg:  # YCbCr on disk
        np.testing.assert_array_equal(data.labeled.images[5], np.asarray(jpeg.convert("RGB")))


def test_an_rgb_file_of_equal_channels_is_still_colour(tmp_path):
    task_folder(tmp_path, images=np.repeat(GREY[..., None], 3, axis=3))
    assert read_dataset(tmp_path).labeled.images.shape == (6, 24, 40, 3)


def test_mixed_grey_and_colour_files_are_refused_naming_one_of_each(tmp_path):
    task_folder(tmp_path)
    Image.fromarray(COLOUR[2]).save(tmp_path / "im2.png")
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)
    assert one_line(info, tmp_path) == (f"{tmp_path}: mixed channels: im0.png is grey (L), im2.png is colour (RGB); "
                                        f"convert them all to one kind")


def test_images_of_mixed_size_are_refused_naming_both(tmp_path):
    task_folder(tmp_path)
    Image.fromarray(GREY[1, :, :30]).save(tmp_path / "im1.png")
    with pytest.raises(DataError, match=r"images differ in size \(im0.png is 24x40, im1.png is 24x30\)") as info:
        read_dataset(tmp_path)
    one_line(info, tmp_path)


@pytest.mark.parametrize("part, images, match", [
    ("unlabeled", COLOUR[:2], "images are 24x40 colour, but the labelled images are 24x40 grey"),
    ("test", GREY[:2, :20], "images are 20x40 grey, but the labelled images are 24x40 grey"),
])
def test_unlabelled_and_test_parts_must_match_the_labelled_size_and_channels(tmp_path, part, images, match):
    task_folder(tmp_path)
    save(tmp_path / part, images)
    with pytest.raises(DataError, match=match) as info:
        read_dataset(tmp_path)
    one_line(info, tmp_path / part)


def test_unlabelled_and_test_parts_with_the_same_columns(tmp_path):
    task_folder(tmp_path)
    save(tmp_path / "unlabeled", GREY[:3])
    names = save(tmp_path / "test", GREY[:2])
    (tmp_path / "test" / "labels.csv").write_text(f"file,size,shape\n{names[0]},10,star\n{names[1]},1,circle\n")
    data = read_dataset(tmp_path)
    assert len(data.unlabeled) == 3 and data.unlabeled.labels is None
    assert data.schema.names_of(data.test.labels) == [("star", "10"), ("circle", "1")]  # by column name


def test_a_test_label_the_schema_does_not_know_is_refused_with_row_and_value(tmp_path):
    task_folder(tmp_path)
    names = save(tmp_path / "test", GREY[:3])
    (tmp_path / "test" / "labels.csv").write_text(
        f"file,shape,size\n{names[0]},star,1\n{names[1]},hexagon,2\n{names[2]},star,3\n")
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)
    assert one_line(info, tmp_path / "test" / "labels.csv") == (
        f"{tmp_path / 'test' / 'labels.csv'}: row 1: shape 'hexagon' is not one of circle, square, star, triangle "
        f"(the classes of {tmp_path / 'labels.csv'})")


@pytest.mark.parametrize("rows, header, match", [
    (["im0.png,circle,"], "file,shape,size", "row 0: empty size"),
    (["im0.png"], "file", "has only a `file` column"),
])
def test_bad_task_csv_refused(tmp_path, rows, header, match):
    task_folder(tmp_path, rows=rows, header=header)
    with pytest.raises(DataError, match=match) as info:
        read_dataset(tmp_path)
    one_line(info, tmp_path / "labels.csv")


def test_labels_csv_missing_a_group_of_its_schema_yaml(tmp_path):
    task_folder(tmp_path, rows=[f"im{i}.png,{s}" for i, s in enumerate(SHAPES)], header="file,shape")
    (tmp_path / "schema.yaml").write_text(TASK_YAML)
    with pytest.raises(DataError, match="needs a `Category` column or columns shape, size \\(missing size\\)") as info:
        read_dataset(tmp_path)
    one_line(info, tmp_path / "labels.csv")


def test_combo_headers_keep_reading_as_combo_in_grey(tmp_path):
    """`digit,letter` (or `Category`) without schema.yaml: Combo's classes, images grey as always."""
    names = save(tmp_path, COLOUR[:3])
    (tmp_path / "labels.csv").write_text("file,digit,letter\n" + "".join(
        f"{n},{d},{l}\n" for n, d, l in zip(names, "307", "aQz")))
    data = read_dataset(tmp_path)
    assert data.schema == COMBO and data.channels == 1 and data.labeled.images.shape == (3, 24, 40)
    assert data.labeled.labels.tolist() == [[3, 0], [0, 16], [7, 25]]


# ---- the command line: one line, exit 2, nothing written -----------------------------------
@pytest.mark.parametrize("damage, match", [
    ("mixed", "mixed channels: im0.png is grey (L), im3.png is colour (RGB)"),
    ("schema", "group `shape` lists class `star` twice"),
    ("test-label", "row 0: size '7' is not one of 1, 2, 10"),
])
def test_train_refuses_bad_task_folders_in_one_line_writing_nothing(tmp_path, capsys, damage, match):
    data = task_folder(tmp_path / "data")
    if damage == "mixed":
        Image.fromarray(COLOUR[3]).save(data / "im3.png")
    elif damage == "schema":
        (data / "schema.yaml").write_text("groups:\n  - {name: shape, classes: [star, circle, star]}\n")
    else:
        names = save(data / "test", GREY[:1])
        (data / "test" / "labels.csv").write_text(f"file,shape,size\n{names[0]},star,7\n")
    code = main(["train", str(data), "--out", str(tmp_path / "run"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0], err
    assert not (tmp_path / "run").exists()


# ---- arrays: .npz and pickles with a schema.yaml beside them --------------------------------------
def test_npz_of_colour_images_split_into_groups_by_schema_yaml(tmp_path):
    indices = np.array([[0, 2], [3, 1], [2, 0], [1, 1], [0, 0], [3, 2]])
    np.savez(tmp_path / "d.npz", x=COLOUR, y=TASK.to_multihot(indices), x_test=COLOUR[:2], y_test=indices[:2])
    (tmp_path / "schema.yaml").write_text(TASK_YAML)
    data = read_dataset(tmp_path / "d.npz")
    assert data.schema == TASK and data.channels == 3 and data.image_shape == (24, 40)
    np.testing.assert_array_equal(data.labeled.labels, indices)
    np.testing.assert_array_equal(data.test.labels, indices[:2])  # (N, G) class-index columns
    np.testing.assert_array_equal(read_labels(tmp_path / "d.npz"), indices)
    assert read_images(tmp_path / "d.npz").images.shape == (6, 24, 40, 3)


def test_original_pickles_with_schema_yaml(tmp_path):
    indices = np.array([[1, 0], [2, 2], [3, 1], [0, 1], [1, 1], [2, 0]])
    (tmp_path / "images_l.pkl").write_bytes(pickle.dumps(GREY[:, None]))  # (N, 1, H, W) grey stays accepted
    (tmp_path / "labels_l.pkl").write_bytes(pickle.dumps(TASK.to_multihot(indices)))
    (tmp_path / "schema.yaml").write_text(TASK_YAML)
    data = read_dataset(tmp_path)
    assert data.schema == TASK and data.labeled.images.shape == (6, 24, 40)
    np.testing.assert_array_equal(data.labeled.labels, indices)


@pytest.mark.parametrize("where", ["npz", "pickles"])
def test_a_schema_whose_bits_do_not_add_up_to_the_label_width_is_refused(tmp_path, where):
    bits = COMBO.to_multihot(np.array([[1, 2]] * 6))  # 36 bits; the schema has 4 + 3 = 7
    (tmp_path / "schema.yaml").write_text(TASK_YAML)
    if where == "npz":
        np.savez(tmp_path / "d.npz", x=GREY, y=bits)
        path, labels = tmp_path / "d.npz", f"{tmp_path / 'd.npz'}[y]"
    else:
        (tmp_path / "images_l.pkl").write_bytes(pickle.dumps(GREY))
        (tmp_path / "labels_l.pkl").write_bytes(pickle.dumps(bits))
        path, labels = tmp_path, str(tmp_path / "labels_l.pkl")
    with pytest.raises(DataError) as info:
        read_dataset(path)
    assert str(info.value) == (f"{labels}: labels have 36 columns, but {tmp_path / 'schema.yaml'} describes "
                               f"4 shape + 3 size = 7 bits (or 2 class-index columns)")


def test_arrays_without_a_schema_stay_combo(tmp_path):
    np.savez(tmp_path / "d.npz", x=COLOUR, y=COMBO.to_multihot(np.array([[1, 2]] * 6)))
    data = read_dataset(tmp_path / "d.npz")
    assert data.schema == COMBO and data.channels == 3


@pytest.mark.parametrize("shape, channels", [((2, 9, 30), 1), ((2, 9, 30, 1), 1), ((2, 1, 9, 30), 1),
                                             ((2, 9, 30, 3), 3)])
def test_array_layouts_of_any_size(shape, channels):
    images = as_images(np.zeros(shape, np.uint8), "x")
    assert image_channels(images) == channels and images.shape[1:3] == (9, 30)


@pytest.mark.parametrize("shape", [(2, 9, 30, 4), (2, 3, 9, 30), (2, 7, 30, 3)])
def test_other_array_layouts_refused(shape):
    with pytest.raises(DataError, match="x: "):
        as_images(np.zeros(shape, np.uint8), "x")


# ---- limits: a folder's decoded pixels count against the input cap, colour 3 bytes each ----------
def test_a_folder_over_the_input_cap_is_refused_before_decoding_colour_counting_three_times(tmp_path, monkeypatch):
    big = np.zeros((4, 256, 512), np.uint8)  # 4 x 128 KiB grey = 0.5 MiB; in colour 1.5 MiB
    task_folder(tmp_path / "grey", images=big, rows=[f"im{i}.png,circle,1" for i in range(4)])
    task_folder(tmp_path / "colour", images=np.repeat(big[..., None], 3, axis=3),
                rows=[f"im{i}.png,circle,1" for i in range(4)])
    monkeypatch.setenv("SEMILABEL_MAX_INPUT_MB", "1")
    assert read_dataset(tmp_path / "grey").labeled.images.shape == (4, 256, 512)
    decoded = []
    monkeypatch.setattr("semilabel.data.folders._decode", lambda path, mode: decoded.append(path))
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path / "colour")
    assert one_line(info, tmp_path / "colour").startswith(
        f"{tmp_path / 'colour'}: 4 images of 256x512x3 pixels take 1.5 MB, over the 1.0 MB limit per folder")
    assert decoded == []
