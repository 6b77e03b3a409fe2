"""Readers: the original pickle layout, `.npz` files and image folders with a CSV.

Every reader returns the same in-memory types: an `ImageSet` (uint8 images, optional
(N, G) class indices) or a `Dataset` (labelled, unlabelled and test sets). Every
problem with the input is a `DataError` whose one line names the file and, where it
applies, the row.

The label schema, when not given, is found beside the data: a `schema.yaml` in the
folder (of the `.npz`, of the pickles, of `labels.csv`); else a `labels.csv`'s columns
(`file,tens,units,ink`: one group per column); else Combo, whose 36-bit rows (10 digit
bits, 26 letter bits) are the arrays' default.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.folders import (
    IMAGE_SUFFIXES,  # noqa: F401  (re-exported: where callers have always found it)
    LABELS_CSV,
    inside,
    labels_of_table,
    list_images,
    read_image_files,
    read_labels_table,
    schema_of_table,
)
from semilabel.data.npy import read_npy, read_npz_arrays
from semilabel.data.safe_pickle import load_array_pickle
from semilabel.data.schema import COMBO, SCHEMA_YAML, LabelSchema, read_schema_yaml
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
DATASET_JSON = "dataset.json"  # written by make-data: the seed and the set's fingerprint
SUBFOLDERS = ("unlabeled", "test")  # an image folder's optional parts


def image_channels(images: np.ndarray) -> int:
    """1 for grey images (N, H, W), 3 for colour (N, H, W, 3)."""
    return 3 if images.ndim == 4 else 1


@dataclass(frozen=True)
class ImageSet:
    """Images uint8, (N, H, W) grey or (N, H, W, 3) RGB; labels (N, G) int64 or None.

    Combo's images are white ink on black; a colour task's are whatever it draws.

    For an unlabelled set, `labels` may hold hidden labels (generated data): training
    never learns from them, it only scores its pseudo-labels against them.
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    glyphs: np.ndarray | None = None  # (N, G) int64: which glyph of each group an image was drawn from (generated sets)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "ImageSet":
        labels = None if self.labels is None else self.labels[index]
        glyphs = None if self.glyphs is None else self.glyphs[index]
        return ImageSet(self.images[index], labels, self.source, glyphs)


@dataclass(frozen=True)
class Dataset:
    """What training reads: labelled images, and optionally unlabelled and test images."""

    labeled: ImageSet
    unlabeled: ImageSet | None
    test: ImageSet | None
    schema: LabelSchema

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of every part's images."""
        return tuple(self.labeled.images.shape[1:3])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (RGB), the same in every part."""
        return image_channels(self.labeled.images)


# ---- arrays -> validated images / labels ------------------------------------------
def as_images(array: np.ndarray, source: str) -> np.ndarray:
    """Validate and convert an image array to uint8 in 0-255: (N, H, W) grey, from
    (N, H, W), (N, 1, H, W) or (N, H, W, 1); or (N, H, W, 3) colour, channels last."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3 and not (array.ndim == 4 and array.shape[3] == 3):
        raise DataError(f"{source}: images must have shape (N, H, W), (N, H, W, 3) or (N, 1, H, W), got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{source}: contains no images")
    if min(array.shape[1:3]) < 8:
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


def as_labels(array: np.ndarray, schema: LabelSchema, source: str, schema_source: str | None = None) -> np.ndarray:
    """Accept multi-hot rows (N, width) or class indices (N, G); return (N, G) int64.
    `schema_source` (the schema.yaml the schema came from) is named when the label
    width does not add up to the schema's groups."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: labels must be numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise DataError(f"{source}: labels must have shape (N, {schema.width}) or (N, {len(schema.groups)}), got {array.shape}")
    if len(array) == 0:
        raise DataError(f"{source}: contains no labels")
    if schema_source is not None and array.shape[1] not in (schema.width, len(schema.groups)):
        raise DataError(f"{source}: labels have {array.shape[1]} columns, but {schema_source} describes "
                        f"{' + '.join(f'{g.size} {g.name}' for g in schema.groups)} = {schema.width} bits "
                        f"(or {len(schema.groups)} class-index columns)")
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


# ---- where the schema comes from ---------------------------------------------------
@dataclass(frozen=True)
class _Schema:
    """A schema and the file that gave it (None: given by the caller, or Combo's default)."""

    schema: LabelSchema
    source: str | None = None


def _resolve(schema: LabelSchema | None, folder: Path) -> _Schema:
    """The caller's schema, else `folder`/schema.yaml, else Combo."""
    if schema is not None:
        return _Schema(schema)
    if (folder / SCHEMA_YAML).is_file():
        return _Schema(read_schema_yaml(folder / SCHEMA_YAML), str(folder / SCHEMA_YAML))
    return _Schema(COMBO)


# ---- single files ---------------------------------------------------------------
def read_pickle_images(path: str | Path) -> np.ndarray:
    return as_images(load_array_pickle(path), str(path))


def read_pickle_labels(path: str | Path, schema: LabelSchema | None = None) -> np.ndarray:
    """Labels of a pickle: multi-hot rows or class indices, split into groups by `schema`
    (None: the schema.yaml beside the file, else Combo)."""
    found = _resolve(schema, Path(path).parent)
    return as_labels(load_array_pickle(path), found.schema, str(path), found.source)


def read_npz(path: str | Path, schema: LabelSchema | None = None) -> Dataset:
    """An `.npz` with `x` (images) and optional `y` (labels); optionally `x_unlabeled`,
    `x_test` and `y_test`. Without `y`, `x` is read as unlabelled test images.
    `schema` None: the schema.yaml beside the file, else Combo."""
    path = Path(path)
    found = _resolve(schema, path.parent)
    schema = found.schema
    arrays = read_npz_arrays(path)
    if "x" not in arrays:
        raise DataError(f"{path}: missing array `x` (found {sorted(arrays) or 'none'})")
    source = f"{path}[x]"
    images = as_images(arrays["x"], source)
    labels = as_labels(arrays["y"], schema, f"{path}[y]", found.source) if "y" in arrays else None
    _check_pair(images, labels, str(path))
    main = ImageSet(images, labels, source)
    unlabeled = test = None
    if "x_unlabeled" in arrays:
        unlabeled = ImageSet(as_images(arrays["x_unlabeled"], f"{path}[x_unlabeled]"), None, f"{path}[x_unlabeled]")
    if "x_test" in arrays:
        y_test = as_labels(arrays["y_test"], schema, f"{path}[y_test]", found.source) if "y_test" in arrays else None
        x_test = as_images(arrays["x_test"], f"{path}[x_test]")
        _check_pair(x_test, y_test, f"{path}[x_test]")
        test = ImageSet(x_test, y_test, f"{path}[x_test]")
    if labels is None:
        return Dataset(ImageSet(images[:0], np.zeros((0, len(schema.groups)), np.int64), source), unlabeled, main, schema)
    return _checked(Dataset(main, unlabeled, test, schema), path)


def read_image_folder(folder: str | Path, schema: LabelSchema | None = None) -> ImageSet:
    """A folder of images (PNG, JPEG, ...; grey or colour), plus optional `labels.csv`.

    The CSV has a `file` column and either `Category` (the 0/1 string) or one column
    per label group holding class names (`digit,letter` -> `7,q`). Without a CSV, all
    image files are read in name order, unlabelled. `schema` None: the schema.yaml in
    the folder, else the CSV's columns (see `folders.schema_of_table`)."""
    return _read_folder(Path(folder), schema)[0]


def _read_folder(folder: Path, schema: LabelSchema | None, classes_from: str | None = None
                 ) -> tuple[ImageSet, LabelSchema | None, str | None]:
    """The folder's images and labels, the schema they were read with (None: no CSV and
    none given) and the file its classes came from (for a refused class elsewhere)."""
    csv_path = folder / LABELS_CSV
    if schema is None and (folder / SCHEMA_YAML).is_file():
        schema, classes_from = read_schema_yaml(folder / SCHEMA_YAML), str(folder / SCHEMA_YAML)
    labels = None
    if csv_path.exists():
        table = read_labels_table(csv_path)
        if schema is None:
            schema = schema_of_table(table)
            classes_from = None if schema == COMBO else str(csv_path)
        labels = labels_of_table(table, schema, classes_from)
        paths = []
        for row, name in enumerate(table.files):
            path = inside(folder, name, f"{csv_path}: row {row}")
            if not path.is_file():
                raise DataError(f"{csv_path}: names {name!r}, which is not a file in {folder}")
            paths.append(path)
    else:
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder")
        paths = [folder / name for name in list_images(folder)]
    images = read_image_files(folder, paths, grey=schema == COMBO)  # Combo's folders have always been read grey
    return ImageSet(as_images(images, str(folder)), labels, str(folder)), schema, classes_from


# ---- whole datasets -------------------------------------------------------------
def read_original(folder: str | Path, schema: LabelSchema | None = None) -> Dataset:
    """The original layout: images_l.pkl + labels_l.pkl, optional images_ul.pkl,
    images_test.pkl and labels_test.pkl. `schema` None: the folder's schema.yaml, else Combo."""
    folder = Path(folder)
    found = _resolve(schema, folder)
    schema = found.schema
    images = read_pickle_images(folder / ORIGINAL_FILES["labeled"])
    labels = as_labels(load_array_pickle(folder / ORIGINAL_FILES["labels"]), schema,
                       str(folder / ORIGINAL_FILES["labels"]), found.source)
    _check_pair(images, labels, f"{folder / ORIGINAL_FILES['labeled']} and {ORIGINAL_FILES['labels']}")
    unlabeled = _read_optional_part(folder, "unlabeled", "hidden_labels", found)
    test = _read_optional_part(folder, "test", "test_labels", found)
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


def _read_optional_part(folder: Path, images_key: str, labels_key: str, found: _Schema) -> ImageSet | None:
    """An optional images pickle of the original layout, with its labels pickle if present."""
    path = folder / ORIGINAL_FILES[images_key]
    if not path.exists():
        return None
    images = read_pickle_images(path)
    labels = None
    labels_path = folder / ORIGINAL_FILES[labels_key]
    if labels_path.exists():
        labels = as_labels(load_array_pickle(labels_path), found.schema, str(labels_path), found.source)
        _check_pair(images, labels, f"{path} and {ORIGINAL_FILES[labels_key]}")
    return ImageSet(images, labels, str(path))


def _describe(images: np.ndarray) -> str:
    return f"{images.shape[1]}x{images.shape[2]} {'colour' if image_channels(images) == 3 else 'grey'}"


def _checked(dataset: Dataset, where: Path) -> Dataset:
    """Every part's images of the labelled part's size and channels."""
    shape = dataset.labeled.images.shape[1:]
    for part in (dataset.unlabeled, dataset.test):
        if part is not None and part.images.shape[1:] != shape:
            raise DataError(f"{part.source}: images are {_describe(part.images)}, but the labelled images are "
                            f"{_describe(dataset.labeled.images)}")
    return dataset


def read_dataset(path: str | Path, schema: LabelSchema | None = None) -> Dataset:
    """Read any supported training input: an original-layout folder, an `.npz`, or a
    folder of images with `labels.csv` (and optional `unlabeled/` and `test/` subfolders,
    `test/` with its own labels.csv of the same columns). `schema` None: the schema.yaml
    beside the data, else labels.csv's columns, else Combo."""
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
        labeled, schema, classes_from = _read_folder(path, schema)
        assert schema is not None  # a labels.csv always gives one
        parts = {name: _read_folder(path / name, schema, classes_from)[0] if (path / name).is_dir() else None
                 for name in SUBFOLDERS}
        dataset = _checked(Dataset(labeled, parts["unlabeled"], parts["test"], schema), path)
        _check_recorded_fingerprint(dataset, path)
        return dataset
    raise DataError(
        f"{path}: not a dataset folder (expected {ORIGINAL_FILES['labeled']} + {ORIGINAL_FILES['labels']}, "
        f"or images with {LABELS_CSV})"
    )


def read_images(path: str | Path, schema: LabelSchema | None = None) -> ImageSet:
    """Read images to predict on: a pickle, an `.npz` (`x` or `x_test`), a folder of
    images, or an original-layout folder (its images_test.pkl). `schema` reads the
    labels that come with them (None: the schema.yaml beside them, else as
    `read_dataset`); a folder is read grey when it is Combo's."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / ORIGINAL_FILES["test"]).exists():
            return read_images(path / ORIGINAL_FILES["test"], schema)
        return read_image_folder(path, schema)
    if path.suffix == ".npz":
        found = _resolve(schema, path.parent)
        arrays = read_npz_arrays(path)
        key = "x" if "x" in arrays else "x_test" if "x_test" in arrays else None
        if key is None:
            raise DataError(f"{path}: missing array `x` (found {sorted(arrays) or 'none'})")
        images = as_images(arrays[key], f"{path}[{key}]")
        ykey = {"x": "y", "x_test": "y_test"}[key]
        labels = as_labels(arrays[ykey], found.schema, f"{path}[{ykey}]", found.source) if ykey in arrays else None
        _check_pair(images, labels, str(path))
        return ImageSet(images, labels, f"{path}[{key}]")
    return ImageSet(read_pickle_images(path), None, str(path))


def read_labels(path: str | Path, schema: LabelSchema | None = None) -> np.ndarray:
    """Read labels alone: a pickle of multi-hot rows, an `.npz` (`y`), or a CSV
    (`Id,Category` submission form, per-group columns `id,<groups>`, or a labels.csv
    with a `file` column). `schema` None: the schema.yaml beside the file, else Combo
    (a labels.csv: its own columns)."""
    path = Path(path)
    if path.suffix == ".npz":
        found = _resolve(schema, path.parent)
        arrays = read_npz_arrays(path)
        key = "y" if "y" in arrays else "y_test" if "y_test" in arrays else None
        if key is None:
            raise DataError(f"{path}: missing array `y`")
        return as_labels(arrays[key], found.schema, f"{path}[{key}]", found.source)
    if path.suffix == ".csv":
        if "file" in _csv_header(path):
            table = read_labels_table(path)
            if schema is None and not (path.parent / SCHEMA_YAML).is_file():
                return labels_of_table(table, schema_of_table(table))
            found = _resolve(schema, path.parent)
            return labels_of_table(table, found.schema, found.source)
        from semilabel.data.submission import read_submission

        return read_submission(path, _resolve(schema, path.parent).schema)
    return read_pickle_labels(path, schema)


def _csv_header(path: Path) -> list[str]:
    """The first row of a CSV ([] when empty or unreadable: the full reader then says why)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [h.strip() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
