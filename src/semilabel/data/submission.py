"""The Kaggle submission CSV: `Id,Category`, Category the 0/1 string of every group.

Also a per-group form (`id,digit,letter` with class names) that people read more
easily. Both are written atomically and read back with row-level errors.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from semilabel.data.folders import listed
from semilabel.data.schema import LabelSchema, class_lookup
from semilabel.errors import DataError
from semilabel.io_utils import atomic_write_text


def format_submission(indices: np.ndarray, schema: LabelSchema, style: str = "kaggle",
                      probabilities: list[np.ndarray] | None = None) -> str:
    """(N, G) class indices -> CSV text.

    style "kaggle": `Id,Category`; "groups": `id,<group>...` with class names;
    "probabilities": the groups form plus one `<group>_p` column of the chosen
    class's probability (requires `probabilities`, one (N, C_g) array per group).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if style == "kaggle":
        writer.writerow(["Id", "Category"])
        writer.writerows(enumerate(schema.to_strings(indices)))
    elif style in ("groups", "probabilities"):
        header = ["id", *schema.names]
        if style == "probabilities":
            if probabilities is None:
                raise ValueError("probabilities style needs per-group probabilities")
            header += [f"{name}_p" for name in schema.names]
        writer.writerow(header)
        names = schema.names_of(indices)
        for i, row in enumerate(names):
            extra = []
            if style == "probabilities":
                extra = [f"{probabilities[g][i, indices[i, g]]:.5f}" for g in range(len(schema.groups))]
            writer.writerow([i, *row, *extra])
    else:
        raise ValueError(f"unknown submission style {style!r}")
    return out.getvalue()


def write_submission(path: str | Path, indices: np.ndarray, schema: LabelSchema, style: str = "kaggle",
                     probabilities: list[np.ndarray] | None = None) -> None:
    atomic_write_text(path, format_submission(indices, schema, style, probabilities))


def read_submission(path: str | Path, schema: LabelSchema) -> np.ndarray:
    """Read either form back to (N, G) indices, rows ordered by id 0..N-1."""
    path = Path(path)
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
    ids = []
    for i, row in enumerate(rows):
        if len(row) < len(header):
            raise DataError(f"{path}: data row {i}: expected {len(header)} columns, got {len(row)}")
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
        return schema.from_strings([r[1] for r in rows], str(path), row_label="id")
    if header[1 : 1 + len(schema.groups)] == list(schema.names):
        labels = np.empty((len(rows), len(schema.groups)), dtype=np.int64)
        for g, group in enumerate(schema.groups):
            index = class_lookup(group)
            for i, row in enumerate(rows):
                k = index(row[1 + g])
                if k is None:
                    raise DataError(f"{path}: id {i}: {group.name} {row[1 + g]!r} is not one of {listed(group.classes)}")
                labels[i, g] = k
        return labels
    raise DataError(f"{path}: header must be `Id,Category` or `id,{','.join(schema.names)}`, got {','.join(header)}")
