"""Image folders: PNG/JPEG files, grey or colour, and the `labels.csv` that names them.

`labels.csv` has a `file` column and one column per label group holding class names
(`file,tens,units,ink` -> `000001.png,3,7,red`), or Combo's `Category` column (the 0/1
string of every group). Images come back as one uint8 array: (N, H, W) when every file
is grey, (N, H, W, 3) RGB when every file is colour; a folder mixing the two, or mixing
sizes, is refused. Every problem is one DataError naming the file and, where it
applies, the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.limits import max_input_bytes, over_cap
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema, class_lookup, natural_order
from semilabel.errors import DataError

LABELS_CSV = "labels.csv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
# PIL modes that hold one grey level per pixel; every other mode (RGB, RGBA, P, CMYK,
# YCbCr, ...) is read as RGB. Decided by mode, not by content: an RGB file whose three
# channels happen to be equal is still a colour file.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_LISTED_CLASSES = 12  # classes named in a "not one of" message


@dataclass(frozen=True)
class LabelsTable:
    """A parsed labels.csv: its header (without `file`) and rows, in file order."""

    path: Path
    files: list[str]
    columns: list[str]
    rows: list[dict[str, str]]

    @property
    def is_combo(self) -> bool:
        """Combo's own forms: a `Category` column, or group columns among digit/letter."""
        return "Category" in self.columns or (bool(self.columns) and set(self.columns) <= set(COMBO.names))


def read_labels_table(path: Path) -> LabelsTable:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [h for h in (reader.fieldnames or []) if h is not None]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: file is empty or has only a header")
    if "file" not in header:
        raise DataError(f"{path}: needs a `file` column (found {', '.join(header)})")
    files = [r["file"] or "" for r in rows]
    for i, name in enumerate(files):
        if not name:
            raise DataError(f"{path}: row {i}: empty `file`")
    return LabelsTable(path, files, [h for h in header if h != "file"], rows)


def schema_of_table(table: LabelsTable) -> LabelSchema:
    """The schema a labels.csv implies without a schema.yaml: Combo for Combo's header,
    else one group per column (in header order) whose classes are the distinct values
    in the column, in natural order."""
    if table.is_combo:
        return COMBO
    if not table.columns:
        raise DataError(f"{table.path}: has only a `file` column; add one column per label group")
    groups = []
    for name in table.columns:
        values = []
        for i, row in enumerate(table.rows):
            value = (row.get(name) or "").strip()
            if not value:
                raise DataError(f"{table.path}: row {i}: empty {name} (every image needs a class in every group)")
            values.append(value)
        groups.append(LabelGroup(name.strip(), natural_order(values)))
    return LabelSchema(tuple(groups))


def labels_of_table(table: LabelsTable, schema: LabelSchema, classes_from: str | None = None) -> np.ndarray:
    """(N, G) class indices of the table's rows under `schema`. A class name matches
    exactly, else without regard to case when that picks one class (Combo's `Q` is `q`).
    `classes_from` names where the classes came from, for the refusal of an unknown one."""
    if "Category" in table.columns:
        return schema.from_strings([r["Category"] or "" for r in table.rows], str(table.path))
    missing = [g.name for g in schema.groups if g.name not in table.columns]
    if missing:
        raise DataError(f"{table.path}: needs a `Category` column or columns {', '.join(schema.names)} "
                        f"(missing {', '.join(missing)})")
    labels = np.empty((len(table.rows), len(schema.groups)), dtype=np.int64)
    for g, group in enumerate(schema.groups):
        index = class_lookup(group)
        for i, row in enumerate(table.rows):
            k = index(row[group.name] or "")
            if k is None:
                origin = f" (the classes of {classes_from})" if classes_from else ""
                raise DataError(f"{table.path}: row {i}: {group.name} {row[group.name]!r} is not one of "
                                f"{listed(group.classes)}{origin}")
            labels[i, g] = k
    return labels


def listed(classes: tuple[str, ...]) -> str:
    """Classes for a message, by comma: the first few, then how many in all."""
    shown = ", ".join(classes[:_LISTED_CLASSES])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > _LISTED_CLASSES else "")


def inside(folder: Path, name: str, where: str) -> Path:
    """`folder / name`, refusing a name that leaves the folder: absolute, with `..`, or
    through a link that points elsewhere."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or name.startswith(("/", "\\")):
        raise DataError(f"{where}: file {name!r} is outside {folder} (give a path relative to the folder, without '..')")
    path = folder / relative
    if path.exists() and not path.resolve().is_relative_to(folder.resolve()):
        raise DataError(f"{where}: file {name!r} links outside {folder}")
    return path


def list_images(folder: Path) -> list[str]:
    """Image files of a folder without labels.csv, in name order; anything else is refused."""
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    others = [f for f in files if not f.lower().endswith(IMAGE_SUFFIXES)]
    if others:
        raise DataError(f"{folder / others[0]}: not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image_files(folder: Path, paths: list[Path], grey: bool = False) -> np.ndarray:
    """Decode `paths` into one uint8 array: (N, H, W) or (N, H, W, 3).

    Every header is read first (size and mode, no pixels), so that mixed sizes, mixed
    grey and colour, and a folder whose pixels would pass the input limit
    (`SEMILABEL_MAX_INPUT_MB`, counting 3 bytes per colour pixel) are refused before
    anything is decoded. `grey` converts every file to grey (Combo's images are grey,
    and its folders were always read that way)."""
    if not paths:
        raise DataError(f"{folder}: holds no images")
    first = _header(paths[0])
    seen: dict[bool, tuple[str, str]] = {}  # grey? -> (name, mode) of the first such file
    for path in paths:
        size, mode = first if path is paths[0] else _header(path)
        if size != first[0]:
            raise DataError(f"{folder}: images differ in size ({paths[0].name} is {_hw(first[0])}, "
                            f"{path.name} is {_hw(size)})")
        if not grey:
            seen.setdefault(mode in GREY_MODES, (path.name, mode))
        if len(seen) == 2:
            (g_name, g_mode), (c_name, c_mode) = seen[True], seen[False]
            raise DataError(f"{folder}: mixed channels: {g_name} is grey ({g_mode}), {c_name} is colour ({c_mode}); "
                            f"convert them all to one kind")
    colour = not grey and False in seen
    width, height = first[0]
    nbytes, cap = len(paths) * height * width * (3 if colour else 1), max_input_bytes()
    if nbytes > cap:
        raise over_cap(str(folder), f"{len(paths)} images of {height}x{width}{'x3' if colour else ''} pixels take",
                       nbytes, cap, per="folder")
    out = np.empty((len(paths), height, width, 3) if colour else (len(paths), height, width), np.uint8)
    for i, path in enumerate(paths):
        out[i] = _decode(path, "RGB" if colour else "L")
    return out


def _hw(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"  # PIL gives (width, height); we speak of H x W


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode of an image file, from its header alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except Image.DecompressionBombError as exc:  # not an OSError: a header claiming a gigantic image
        raise DataError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _decode(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # what PIL asks for before dropping a palette's transparency
            return np.asarray(img.convert(mode))
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
