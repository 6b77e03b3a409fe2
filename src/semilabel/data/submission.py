"""Prediction CSVs: Combo's Kaggle form `Id,Category` (Category the 0/1 string of every
group), and a per-group form with class names that people read more easily: Combo's
`id,digit,letter`, any other schema's `file,<group names...>` (`file` the image's name
in its folder, or its row for arrays). All are written atomically and read back with
row-level errors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semilabel.data.folders import listed
from semilabel.data.schema import COMBO, LabelSchema, class_lookup
from semilabel.errors import DataError
from semilabel.io_utils import atomic_write_text

FILE_COLUMN = "file"


def key_column(schema: LabelSchema) -> str:
    """The first column of the per-group form: `id` for Combo (as it always was), else `file`."""
    return "id" if schema == COMBO else FILE_COLUMN


def format_submission(indices: np.ndarray, schema: LabelSchema, style: str = "kaggle",
                      probabilities: list[np.ndarray] | None = None, files: Sequence[str] | None = None) -> str:
    """(N, G) class indices -> CSV text.

    style "kaggle": `Id,Category`; "groups": `id,<group>...` (Combo) or `file,<group>...`
    (any other schema: `files`, else the row numbers) with class names; "probabilities":
    the groups form plus one `<group>_p` column of the chosen class's probability
    (requires `probabilities`, one (N, C_g) array per group).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if style == "kaggle":
        writer.writerow(["Id", "Category"])
        writer.writerows(enumerate(schema.to_strings(indices)))
    elif style in ("groups", "probabilities"):
        key = key_column(schema)
        if files is not None and len(files) != len(indices):
            raise ValueError(f"{len(files)} file names for {len(indices)} predictions")
        keys = list(files) if files is not None and key == FILE_COLUMN else range(len(indices))
        header = [key, *schema.names]
        if style == "probabilities":
            if probabilities is None:
                raise ValueError("probabilities style needs per-group probabilities")
            header += [f"{name}_p" for name in schema.names]
        writer.writerow(header)
        names = schema.names_of(indices)
        for i, (name, row) in enumerate(zip(keys, names)):
            extra = []
            if style == "probabilities":
                extra = [f"{probabilities[g][i, indices[i, g]]:.5f}" for g in range(len(schema.groups))]
            writer.writerow([name, *row, *extra])
    else:
        raise ValueError(f"unknown submission style {style!r}")
    return out.getvalue()


def write_submission(path: str | Path, indices: np.ndarray, schema: LabelSchema, style: str = "kaggle",
                     probabilities: list[np.ndarray] | None = None, files: Sequence[str] | None = None) -> None:
    atomic_write_text(path, format_submission(indices, schema, style, probabilities, files))


def class_indices(rows: list[list[str]], schema: LabelSchema, path: Path, first: int = 1,
                  row_label: str = "id") -> np.ndarray:
    """(N, G) indices of the class names in columns first..first+G-1 of `rows`."""
    labels = np.empty((len(rows), len(schema.groups)), dtype=np.int64)
    for g, group in enumerate(schema.groups):
        index = class_lookup(group)  # as written, else the one class that differs only in case
        for i, row in enumerate(rows):
            k = index(row[first + g])
            if k is None:
                raise DataError(f"{path}: {row_label} {i}: {group.name} {row[first + g]!r} is not one of "
                                f"{listed(group.classes)}")
            labels[i, g] = k
    return labels


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [row for row in reader if any(cell.strip() for cell in row)]  # blank lines are not rows
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not header:
        raise DataError(f"{path}: file is empty")
    header = [h.strip() for h in header]
    if not rows:
        raise DataError(f"{path}: has a header but no rows")
    for i, row in enumerate(rows):
        if len(row) < len(header):
            raise DataError(f"{path}: data row {i}: expected {len(header)} columns, got {len(row)}")
    return header, rows


def read_predictions(path: str | Path, schema: LabelSchema) -> tuple[list[str] | None, np.ndarray]:
    """Read any form back: (the `file` column, else None; (N, G) indices). The `id` forms are
    ordered by id 0..N-1; the `file` form keeps its rows' order."""
    path = Path(path)
    header, rows = _read_rows(path)
    names = list(schema.names)
    if header[0] == FILE_COLUMN and header[1 : 1 + len(names)] == names:
        files = [row[0].strip() for row in rows]
        for i, name in enumerate(files):
            if not name:
                raise DataError(f"{path}: data row {i}: empty `file`")
        return files, class_indices(rows, schema, path, row_label="data row")
    ids = []
    for i, row in enumerate(rows):
        try:
            ids.append(int(row[0]))
        except ValueError:
            raise DataError(f"{path}: data row {i}: id {row[0]!r} is not an integer") from None
    order = np.argsort(ids, kind="stable")
    expected = np.arange(len(ids))
    if not np.array_equal(np.asarray(ids)[order], expected):
        have = set(ids)
        missing = [j for j in range(len(ids)) if j not in have]
        detail = f"id {missing[0]} is missing" if missing else "ids repeat"
        raise DataError(f"{path}: ids must be 0..{len(ids) - 1} once each ({detail})")
    rows = [rows[j] for j in order]
    if header[:2] == ["Id", "Category"]:
        return None, schema.from_strings([r[1] for r in rows], str(path), row_label="id")
    if header[1 : 1 + len(names)] == names:
        return None, class_indices(rows, schema, path)
    raise DataError(f"{path}: header must be `Id,Category`, `id,{','.join(names)}` or `file,{','.join(names)}`, "
                    f"got {','.join(header)}")


def read_submission(path: str | Path, schema: LabelSchema) -> np.ndarray:
    """Read any form back to (N, G) indices (rows ordered by id, or as the file lists them)."""
    return read_predictions(path, schema)[1]


def file_column(path: str | Path) -> list[str] | None:
    """The `file` column of a CSV (a labels.csv, a prediction CSV), None when it has none."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return None
    header, rows = _read_rows(path)
    if FILE_COLUMN not in header:
        return None
    at = header.index(FILE_COLUMN)
    return [row[at].strip() for row in rows]
