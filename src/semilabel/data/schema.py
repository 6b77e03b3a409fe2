"""Label schemas: named groups of classes, one class per group per image.

Combo has two groups, `digit` (0-9) and `letter` (a-z). On disk the original data
stores labels as a multi-hot row (10 digit bits, then 26 letter bits); in memory we
keep one class index per group: an (N, G) int64 array.

Any other task describes its groups in a `schema.yaml` beside its data:

    groups:
      - {name: tens, classes: ["0", "1", "2"]}
      - {name: ink, classes: [red, green, blue, yellow]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.errors import DataError


@dataclass(frozen=True)
class LabelGroup:
    """One label group: a name and its class names, in bit order."""

    name: str
    classes: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.classes)


def group_file_names(groups, prefix: str, suffix: str) -> list[str]:
    """`<prefix><group><suffix>` per group name, the name reduced to letters, digits, `_`,
    `-` and `.` (group names are free text: `/` or `..` must not leave the folder) and
    numbered where two reduce alike."""
    names: list[str] = []
    for g, name in enumerate(groups):
        safe = re.sub(r"[^\w.-]", "_", name).lstrip(".") or "group"
        names.append(f"{prefix}{safe}{'' if f'{prefix}{safe}{suffix}' not in names else f'_{g + 1}'}{suffix}")
    return names


@dataclass(frozen=True)
class LabelSchema:
    """Ordered label groups; their classes laid end to end form the multi-hot row."""

    groups: tuple[LabelGroup, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(g.size for g in self.groups)

    @property
    def width(self) -> int:
        """Bits in one multi-hot row (36 for Combo)."""
        return sum(self.sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(o) for o in np.cumsum((0,) + self.sizes[:-1]))

    def group(self, name: str) -> LabelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    # ---- multi-hot <-> indices -------------------------------------------------
    def to_multihot(self, indices: np.ndarray) -> np.ndarray:
        """(N, G) class indices -> (N, width) uint8 multi-hot rows."""
        indices = np.asarray(indices)
        n = len(indices)
        self._check_indices(indices)
        bits = np.zeros((n, self.width), dtype=np.uint8)
        rows = np.arange(n)
        for g, offset in enumerate(self.offsets):
            bits[rows, offset + indices[:, g]] = 1
        return bits

    def from_multihot(self, bits: np.ndarray, source: str = "labels") -> np.ndarray:
        """(N, width) rows with exactly one set bit per group -> (N, G) int64.

        A row with zero or several bits in a group is refused, naming `source` and
        the first offending row: silently taking an argmax would hide broken data.
        """
        bits = np.asarray(bits)
        if bits.ndim != 2 or bits.shape[1] != self.width:
            raise DataError(
                f"{source}: labels must have shape (N, {self.width}) "
                f"({' + '.join(f'{g.size} {g.name}' for g in self.groups)} bits), got {bits.shape}"
            )
        if bits.dtype.kind == "f" and not np.isfinite(bits).all():
            row = int(np.argwhere(~np.isfinite(bits))[0, 0])
            raise DataError(f"{source}: row {row}: label is NaN or infinite")
        if not np.isin(bits, (0, 1)).all():
            row = int(np.argwhere(~np.isin(bits, (0, 1)))[0, 0])
            raise DataError(f"{source}: row {row}: label bits must be 0 or 1")
        out = np.empty((len(bits), len(self.groups)), dtype=np.int64)
        for g, (group, offset) in enumerate(zip(self.groups, self.offsets)):
            part = bits[:, offset : offset + group.size]
            counts = part.sum(axis=1)
            bad = np.flatnonzero(counts != 1)
            if len(bad):
                row = int(bad[0])
                raise DataError(
                    f"{source}: row {row}: expected exactly one {group.name} bit, found {int(counts[row])}"
                    + (f" ({len(bad)} bad rows in all)" if len(bad) > 1 else "")
                )
            out[:, g] = part.argmax(axis=1)
        return out

    # ---- Kaggle string form ----------------------------------------------------
    def to_strings(self, indices: np.ndarray) -> list[str]:
        """(N, G) indices -> strings of `width` characters '0'/'1' (the submission form)."""
        bits = self.to_multihot(indices)
        chars = np.where(bits == 1, "1", "0")
        return ["".join(row) for row in chars]

    def from_strings(self, strings: list[str], source: str = "labels", row_label: str = "row") -> np.ndarray:
        """Strings of 0/1 characters -> (N, G) int64, refusing malformed rows.

        Errors name the offending entry as `<row_label> <i>` (e.g. "id 7" in a submission)."""
        bits = np.zeros((len(strings), self.width), dtype=np.uint8)
        for i, s in enumerate(strings):
            s = s.strip()
            if len(s) != self.width or set(s) - {"0", "1"}:
                raise DataError(f"{source}: {row_label} {i}: expected {self.width} characters of 0/1, got {s[:60]!r}")
            bits[i] = np.frombuffer(s.encode(), dtype=np.uint8) - ord("0")
        try:
            return self.from_multihot(bits, source)
        except DataError as exc:
            raise DataError(str(exc).replace(f"{source}: row ", f"{source}: {row_label} ", 1)) from None

    def names_of(self, indices: np.ndarray) -> list[tuple[str, ...]]:
        """(N, G) indices -> class names per row, e.g. ('7', 'q')."""
        return [tuple(g.classes[i] for g, i in zip(self.groups, row)) for row in np.asarray(indices)]

    def _check_indices(self, indices: np.ndarray) -> None:
        if indices.ndim != 2 or indices.shape[1] != len(self.groups):
            raise DataError(f"class indices must have shape (N, {len(self.groups)}), got {indices.shape}")
        for g, group in enumerate(self.groups):
            col = indices[:, g]
            if len(col) and (col.min() < 0 or col.max() >= group.size):
                raise DataError(f"{group.name} index out of range 0..{group.size - 1}")

    # ---- serialisation (stored in checkpoints) -----------------------------------
    def to_dict(self) -> dict:
        return {"groups": [{"name": g.name, "classes": list(g.classes)} for g in self.groups]}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelSchema":
        return cls(tuple(LabelGroup(g["name"], tuple(g["classes"])) for g in data["groups"]))


COMBO = LabelSchema(
    (
        LabelGroup("digit", tuple("0123456789")),
        LabelGroup("letter", tuple("abcdefghijklmnopqrstuvwxyz")),
    )
)


def class_lookup(group: LabelGroup):
    """value -> class index (None when unknown): the class written exactly (spaces around
    it ignored), else the one class that differs only in case (Combo's `Q` is `q`)."""
    exact = {c: k for k, c in enumerate(group.classes)}
    folded: dict[str, int | None] = {}
    for k, c in enumerate(group.classes):
        folded[c.casefold()] = None if c.casefold() in folded else k  # None: two classes differ only in case

    def index(value: str) -> int | None:
        value = value.strip()
        return exact.get(value, folded.get(value.casefold()))

    return index


# ---- schema.yaml -------------------------------------------------------------------
SCHEMA_YAML = "schema.yaml"
SCHEMA_YAML_MAX_BYTES = 4 * 2**20  # a schema is a few lines; this bounds what a hostile file can make us parse
RESERVED_NAMES = ("file",)  # labels.csv's column of image names


def read_schema_yaml(path: str | Path) -> LabelSchema:
    """The ordered groups a `schema.yaml` lists; any problem is one DataError naming the file."""
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > SCHEMA_YAML_MAX_BYTES:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes, too large for a label schema")
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not readable ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}: not valid YAML{where}") from None
    return schema_from_mapping(data, str(path))


def schema_from_mapping(data: object, source: str) -> LabelSchema:
    """A LabelSchema from schema.yaml's parsed content, refusing what would be ambiguous:
    no groups, a group without classes, a name used twice, a class that is not text."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a mapping with a `groups` list, got {_kind(data)}")
    unknown = sorted(str(k) for k in data if k != "groups")
    if unknown:
        raise DataError(f"{source}: unknown key `{unknown[0]}` (a schema has only `groups`)")
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        raise DataError(f"{source}: `groups` must be a non-empty list of {{name, classes}}"
                        f"{'' if 'groups' in data else ' (missing)'}")
    out, names = [], set()
    for i, entry in enumerate(groups):
        where = f"{source}: group {i + 1}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected a mapping {{name, classes}}, got {_kind(entry)}")
        extra = sorted(str(k) for k in entry if k not in ("name", "classes"))
        if extra:
            raise DataError(f"{where}: unknown key `{extra[0]}` (a group has `name` and `classes`)")
        name = _text(entry.get("name"), f"{where}: `name`")
        if name in RESERVED_NAMES:
            raise DataError(f"{where}: `{name}` is reserved for the image names in labels.csv; choose another name")
        if name in names:
            raise DataError(f"{source}: group name `{name}` is used twice")
        names.add(name)
        classes = entry.get("classes")
        if not isinstance(classes, list) or not classes:
            raise DataError(f"{where} ({name}): `classes` must be a non-empty list"
                            f"{'' if 'classes' in entry else ' (missing)'}")
        texts = [_text(c, f"{where} ({name}): class {j + 1}") for j, c in enumerate(classes)]
        seen: set[str] = set()
        for text in texts:
            if text in seen:
                raise DataError(f"{source}: group `{name}` lists class `{text}` twice")
            seen.add(text)
        out.append(LabelGroup(name, tuple(texts)))
    return LabelSchema(tuple(out))


def schema_yaml_text(schema: LabelSchema) -> str:
    """schema.yaml's content for `schema`: every name quoted, so that `0` or `no` stays text."""
    import json

    lines = ["groups:"]
    for g in schema.groups:  # JSON strings are valid YAML scalars
        lines.append(f"  - name: {json.dumps(g.name)}")
        lines.append(f"    classes: [{', '.join(json.dumps(c) for c in g.classes)}]")
    return "\n".join(lines) + "\n"


def natural_order(values) -> tuple[str, ...]:
    """Distinct class names in their natural order: by number when every one is an
    integer ("2" before "10"), else alphabetically."""
    distinct = set(values)
    try:
        return tuple(sorted(distinct, key=lambda v: (int(v), v)))
    except ValueError:
        return tuple(sorted(distinct))


def _text(value: object, where: str) -> str:
    """A name as the user wrote it; YAML numbers become their text (`7` -> "7"), but
    yes/no/null/lists are refused: YAML would have changed them already."""
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        hint = " (YAML reads yes/no/on/off/null as such: quote the name)" if value is None or isinstance(value, bool) else ""
        raise DataError(f"{where}: expected text, got {_kind(value)}{hint}")
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: is empty")
    return text


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), f"{type(value).__name__} {value!r}"[:60])
