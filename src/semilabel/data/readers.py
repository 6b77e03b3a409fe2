"""Readers: the original pickle layout, `.npz` files and PNG folders with a CSV.

Every reader returns the same in-memory types: an `ImageSet` (uint8 images, optional
(N, G) class indices) or a `Dataset` (labelled, unlabelled and test sets). Every
problem with the input is a `DataError` whose one line names the file and, where it
applies, the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.npy import read_npy, read_npz_arrays
from semilabel.data.safe_pickle import load_array_pickle
from semilabel.data.schema import COMBO, LabelSchema
from semilabel.errors import DataError

ORIGINAL_FILES = {
    "labeled": "images_l.pkl",
    "labels": "labels_l.pkl",
    "unlabeled": "images_ul.pkl",
    "test": "images_test.pkl",
    "test_labels": "labels_test.pkl",
    "hidden_labels": "labels_ul.pkl",  # generated sets only: never trained on, used to score pseudo-labels
}
# generated sets only: the glyph index of each image's symbols (see combo.write_combo)
GLYPH_FILES = {"labeled": "glyphs_l.npy", "unlabeled": "glyphs_ul.npy", "test": "glyphs_test.npy"}
LABELS_CSV = "labels.csv"
DATASET_JSON = "dataset.json"  # written by make-data: the seed and the set's fingerprint
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageSet:
    """Images (N, H, W) uint8, white ink on black; labels (N, G) int64 or None.

    For an unlabelled set, `labels` may hold hidden labels (generated data): training
    never learns from them, it only scores its pseudo-labels against them.
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    glyphs: np.ndarray | None = None  # (N, G) int64: which glyph of each group an image was drawn from (generated sets)
    files: tuple[str, ...] | None = None  # each image's name in its folder (image folders; None for arrays)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "ImageSet":
        labels = None if self.labels is None else self.labels[index]
        glyphs = None if self.glyphs is None else self.glyphs[index]
        files = None if self.files is None else tuple(np.asarray(self.files, dtype=object)[index])
        return ImageSet(self.images[index], labels, self.source, glyphs, files)


@dataclass(frozen=True)
class Dataset:
    """What training reads: labelled images, and optionally unlabelled and test images."""

    labeled: ImageSet
    unlabeled: ImageSet | None
    test: ImageSet | None
    schema: LabelSchema

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.labeled.images.shape[1:])  # type: ignore[return-value]


# ---- arrays -> validated images / labels ------------------------------------------
def as_images(array: np.ndarray, source: str) -> np.ndarray:
    """Validate and convert an image array to (N, H, W) uint8 in 0-255."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(f"{source}: images must have shape (N, H, W) or (N, 1, H, W), got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{source}: contains no images")
    if min(array.shape[1:]) < 8:
        raise DataError(f"{source}: images of {array.shape[1]}x{array.shape[2]} pixels are too small")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataError(f"{source}: integer images must lie in 0-255, found {low}..{high}")
        return array.astype(np.uint8, copy=False)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            index = int(np.argwhere(~finite)[0, 0])
            raise DataError(f"{source}: image {index} contains NaN or infinite pixels")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise DataError(f"{source}: float images must lie in 0-1 or 0-255, found {low:g}..{high:g}")
        scale = 255.0 if high <= 1.0 else 1.0
        return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    raise DataError(f"{source}: unsupported image dtype {array.dtype}")


def as_labels(array: np.ndarray, schema: LabelSchema, source: str) -> np.ndarray:
    """Accept multi-hot rows (N, width) or class indices (N, G); return (N, G) int64."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: labels must be numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise DataError(f"{source}: labels must have shape (N, {schema.width}) or (N, {len(schema.groups)}), got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{source}: contains no labels")
    if array.ndim == 2 and array.shape[1] == len(schema.groups) and array.shape[1] != schema.width:
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataError(f"{source}: row {int(np.argwhere(~np.isfinite(array))[0, 0])}: label is NaN or infinite")
        for g, group in enumerate(schema.groups):
            col = array[:, g]
            bad = np.flatnonzero((col < 0) | (col >= group.size) | (col != np.round(col)))
            if len(bad):
                raise DataError(f"{source}: row {int(bad[0])}: {group.name} index {col[bad[0]]} not in 0..{group.size - 1}")
        return array.astype(np.int64)
    return schema.from_multihot(array, source)


def _check_pair(images: np.ndarray, labels: np.ndarray | None, source: str) -> None:
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{source}: {len(images)} images but {len(labels)} labels")


# ---- single files ---------------------------------------------------------------
def read_pickle_images(path: str | Path) -> np.ndarray:
    return as_images(load_array_pickle(path), str(path))


def read_pickle_labels(path: str | Path, schema: LabelSchema = COMBO) -> np.ndarray:
    return as_labels(load_array_pickle(path), schema, str(path))


def read_npz(path: str | Path, schema: LabelSchema = COMBO) -> Dataset:
    """An `.npz` with `x` (images) and optional `y` (labels); optionally `x_unlabeled`,
    `x_test` and `y_test`. Without `y`, `x` is read as unlabelled test images."""
    path = Path(path)
    arrays = read_npz_arrays(path)
    if "x" not in arrays:
        raise DataError(f"{path}: missing array `x` (found {sorted(arrays) or 'none'})")
    source = f"{path}[x]"
    images = as_images(arrays["x"], source)
    labels = as_labels(arrays["y"], schema, f"{path}[y]") if "y" in arrays else None
    _check_pair(images, labels, str(path))
    main = ImageSet(images, labels, source)
    unlabeled = test = None
    if "x_unlabeled" in arrays:
        unlabeled = ImageSet(as_images(arrays["x_unlabeled"], f"{path}[x_unlabeled]"), None, f"{path}[x_unlabeled]")
    if "x_test" in arrays:
        y_test = as_labels(arrays["y_test"], schema, f"{path}[y_test]") if "y_test" in arrays else None
        x_test = as_images(arrays["x_test"], f"{path}[x_test]")
        _check_pair(x_test, y_test, f"{path}[x_test]")
        test = ImageSet(x_test, y_test, f"{path}[x_test]")
    if labels is None:
        return Dataset(ImageSet(images[:0], np.zeros((0, len(schema.groups)), np.int64), source), unlabeled, main, schema)
    return _checked(Dataset(main, unlabeled, test, schema), path)


def _read_image_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except Image.DecompressionBombError as exc:  # not an OSError: a header claiming a gigantic image
        raise DataError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def read_image_folder(folder: str | Path, schema: LabelSchema = COMBO) -> ImageSet:
    """A folder of images, plus optional `labels.csv`.

    The CSV has a `file` column and either `Category` (the 0/1 string) or one column
    per label group holding class names (`digit,letter` -> `7,q`). Without a CSV, all
    image files are read in name order, unlabelled.
    """
    folder = Path(folder)
    csv_path = folder / LABELS_CSV
    labels = None
    if csv_path.exists():
        files, labels = _read_labels_csv(csv_path, schema)
    else:
        files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        others = [f for f in files if not f.lower().endswith(IMAGE_SUFFIXES)]
        if others:
            raise DataError(f"{folder / others[0]}: not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
    if not files:
        raise DataError(f"{folder}: holds no images")
    images = []
    for row, name in enumerate(files):
        path = _inside(folder, name, f"{csv_path}: row {row}") if labels is not None else folder / name
        if not path.is_file():
            raise DataError(f"{csv_path}: names {name!r}, which is not a file in {folder}")
        images.append(_read_image_file(path))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{folder}: images differ in size ({', '.join(map(str, sorted(shapes)[:3]))})")
    return ImageSet(as_images(np.stack(images), str(folder)), labels, str(folder), files=tuple(files))


def _inside(folder: Path, name: str, where: str) -> Path:
    """`folder / name`, refusing a name that leaves the folder: absolute, with `..`, or
    through a link that points elsewhere."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or name.startswith(("/", "\\")):
        raise DataError(f"{where}: file {name!r} is outside {folder} (give a path relative to the folder, without '..')")
    path = folder / relative
    if path.exists() and not path.resolve().is_relative_to(folder.resolve()):
        raise DataError(f"{where}: file {name!r} links outside {folder}")
    return path


def _read_labels_csv(path: Path, schema: LabelSchema) -> tuple[list[str], np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: file is empty or has only a header")
    if "file" not in header:
        raise DataError(f"{path}: needs a `file` column (found {', '.join(header)})")
    files = [r["file"] for r in rows]
    for i, name in enumerate(files):
        if not name:
            raise DataError(f"{path}: row {i}: empty `file`")
    if "Category" in header:
        return files, schema.from_strings([r["Category"] or "" for r in rows], str(path))
    missing = [g.name for g in schema.groups if g.name not in header]
    if missing:
        raise DataError(f"{path}: needs a `Category` column or columns {', '.join(schema.names)} (missing {', '.join(missing)})")
    labels = np.empty((len(rows), len(schema.groups)), dtype=np.int64)
    for g, group in enumerate(schema.groups):
        lookup = {c: i for i, c in enumerate(group.classes)}
        for i, row in enumerate(rows):
            value = (row[group.name] or "").strip().lower()
            if value not in lookup:
                raise DataError(f"{path}: row {i}: {group.name} {row[group.name]!r} is not one of {''.join(group.classes)}")
            labels[i, g] = lookup[value]
    return files, labels


# ---- whole datasets -------------------------------------------------------------
def read_original(folder: str | Path, schema: LabelSchema = COMBO) -> Dataset:
    """The original layout: images_l.pkl + labels_l.pkl, optional images_ul.pkl,
    images_test.pkl and labels_test.pkl."""
    folder = Path(folder)
    images = read_pickle_images(folder / ORIGINAL_FILES["labeled"])
    labels = read_pickle_labels(folder / ORIGINAL_FILES["labels"], schema)
    _check_pair(images, labels, f"{folder / ORIGINAL_FILES['labeled']} and {ORIGINAL_FILES['labels']}")
    unlabeled = _read_optional_part(folder, "unlabeled", "hidden_labels", schema)
    test = _read_optional_part(folder, "test", "test_labels", schema)
    glyphs = read_glyph_ids(folder / GLYPH_FILES["labeled"], len(images), len(schema.groups))
    labeled = ImageSet(images, labels, str(folder / ORIGINAL_FILES["labeled"]), glyphs)
    dataset = _checked(Dataset(labeled, unlabeled, test, schema), folder)
    _check_recorded_fingerprint(dataset, folder)
    return dataset


def read_glyph_ids(path: Path, n: int | None = None, n_groups: int = 2) -> np.ndarray | None:
    """A generated set's glyph index per image, (N, n_groups) int64 (.npy without
    pickles); None when the file is absent. `n`, when given, is the images it must cover."""
    if not path.exists():
        return None
    ids = read_npy(path)  # its declared size checked against its bytes before anything is allocated
    rows = ids.shape[0] if n is None and ids.ndim == 2 else n
    if ids.shape != (rows, n_groups) or not np.issubdtype(ids.dtype, np.integer):
        expected = f"({n}, {n_groups})" if n is not None else f"(N, {n_groups})"
        raise DataError(f"{path}: expected {expected} integer glyph indices, got {ids.shape} {ids.dtype}")
    return ids.astype(np.int64)


def _check_recorded_fingerprint(dataset: Dataset, folder: Path) -> None:
    """A generated set's files must be the ones its dataset.json describes (not a mix of
    two generations, nor a part changed since)."""
    import json

    from semilabel.data.fingerprint import describe_difference, fingerprint

    path = folder / DATASET_JSON
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())["fingerprint"]
        current = fingerprint(dataset)
        if dataset.labeled.glyphs is None:  # the side files are optional; those present must match
            current["labeled"].pop("glyphs", None)
            stored.get("labeled", {}).pop("glyphs", None)
        change = describe_difference(stored, current)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__}); regenerate the set or delete the file") from None
    if change:
        raise DataError(f"{folder}: its files do not match {DATASET_JSON} ({change}); regenerate the set with "
                        f"make-data, or delete {DATASET_JSON} if the change is intended")


def _read_optional_part(folder: Path, images_key: str, labels_key: str, schema: LabelSchema) -> ImageSet | None:
    """An optional images pickle of the original layout, with its labels pickle if present."""
    path = folder / ORIGINAL_FILES[images_key]
    if not path.exists():
        return None
    images = read_pickle_images(path)
    labels = None
    if (folder / ORIGINAL_FILES[labels_key]).exists():
        labels = read_pickle_labels(folder / ORIGINAL_FILES[labels_key], schema)
        _check_pair(images, labels, f"{path} and {ORIGINAL_FILES[labels_key]}")
    return ImageSet(images, labels, str(path))


def _checked(dataset: Dataset, where: Path) -> Dataset:
    shape = dataset.image_shape
    for part in (dataset.unlabeled, dataset.test):
        if part is not None and part.images.shape[1:] != shape:
            raise DataError(f"{part.source}: images are {part.images.shape[1:]}, but the labelled images are {shape}")
    return dataset


def read_dataset(path: str | Path, schema: LabelSchema = COMBO) -> Dataset:
    """Read any supported training input: an original-layout folder, an `.npz`, or a
    folder of images with `labels.csv` (and optional `unlabeled/` and `test/` subfolders)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".npz":
            return read_npz(path, schema)
        raise DataError(f"{path}: expected a folder or an .npz file")
    if (path / ORIGINAL_FILES["labeled"]).exists() or (path / ORIGINAL_FILES["labels"]).exists():
        return read_original(path, schema)
    if (path / LABELS_CSV).exists():
        labeled = read_image_folder(path, schema)
        unlabeled = read_image_folder(path / "unlabeled", schema) if (path / "unlabeled").is_dir() else None
        test = read_image_folder(path / "test", schema) if (path / "test").is_dir() else None
        return _checked(Dataset(labeled, unlabeled, test, schema), path)
    raise DataError(
        f"{path}: not a dataset folder (expected {ORIGINAL_FILES['labeled']} + {ORIGINAL_FILES['labels']}, "
        f"or images with {LABELS_CSV})"
    )


def read_images(path: str | Path, schema: LabelSchema = COMBO) -> ImageSet:
    """Read images to predict on: a pickle, an `.npz` (`x` or `x_test`), a folder of
    images, or an original-layout folder (its images_test.pkl)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / ORIGINAL_FILES["test"]).exists():
            return read_images(path / ORIGINAL_FILES["test"], schema)
        return read_image_folder(path, schema)
    if path.suffix == ".npz":
        arrays = read_npz_arrays(path)
        key = "x" if "x" in arrays else "x_test" if "x_test" in arrays else None
        if key is None:
            raise DataError(f"{path}: missing array `x` (found {sorted(arrays) or 'none'})")
        images = as_images(arrays[key], f"{path}[{key}]")
        ykey = {"x": "y", "x_test": "y_test"}[key]
        labels = as_labels(arrays[ykey], schema, f"{path}[{ykey}]") if ykey in arrays else None
        _check_pair(images, labels, str(path))
        return ImageSet(images, labels, f"{path}[{key}]")
    return ImageSet(read_pickle_images(path), None, str(path))


def read_labels(path: str | Path, schema: LabelSchema = COMBO) -> np.ndarray:
    """Read labels alone: a pickle of multi-hot rows, an `.npz` (`y`), or a CSV
    (`Id,Category` submission form, or per-group columns)."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays = read_npz_arrays(path)
        key = "y" if "y" in arrays else "y_test" if "y_test" in arrays else None
        if key is None:
            raise DataError(f"{path}: missing array `y`")
        return as_labels(arrays[key], schema, f"{path}[{key}]")
    if path.suffix == ".csv":
        from semilabel.data.submission import read_submission

        return read_submission(path, schema)
    return read_pickle_labels(path, schema)
