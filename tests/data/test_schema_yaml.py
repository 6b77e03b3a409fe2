"""schema.yaml: the ordered label groups of a task; every malformed file is one line naming it."""

from __future__ import annotations

import pytest

from semilabel.data.schema import (
    COMBO,
    LabelGroup,
    LabelSchema,
    natural_order,
    read_schema_yaml,
    schema_yaml_text,
)
from semilabel.errors import DataError

NUMBERS_YAML = """\
groups:
  - {name: tens, classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
  - name: ink
    classes: [red, green, Blue, "yellow"]
"""


def test_groups_and_classes_in_the_order_written(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(NUMBERS_YAML)
    schema = read_schema_yaml(path)
    assert schema.names == ("tens", "ink") and schema.sizes == (10, 4)
    assert schema.group("tens").classes == tuple("0123456789")  # YAML numbers become their text
    assert schema.group("ink").classes == ("red", "green", "Blue", "yellow")  # order and case kept


def test_written_text_reads_back_the_same_schema(tmp_path):
    odd = LabelSchema((LabelGroup("answer", ("no", "yes", "null", "007")), LabelGroup("x, y", ("a b", '"q"'))))
    for schema in (COMBO, odd):
        path = tmp_path / "schema.yaml"
        path.write_text(schema_yaml_text(schema))
        assert read_schema_yaml(path) == schema


@pytest.mark.parametrize("text, match", [
    ("- a\n- b\n", "expected a mapping with a `groups` list, got a list"),
    ("", "expected a mapping with a `groups` list, got nothing"),
    ("groupz: []\n", "unknown key `groupz`"),
    ("{}\n", r"`groups` must be a non-empty list .*\(missing\)"),
    ("groups: []\n", "`groups` must be a non-empty list"),
    ("groups: {a: 1}\n", "`groups` must be a non-empty list"),
    ("groups:\n  - {name: a}\n", r"group 1 \(a\): `classes` must be a non-empty list \(missing\)"),
    ("groups:\n  - {name: a, classes: []}\n", r"group 1 \(a\): `classes` must be a non-empty list"),
    ("groups:\n  - {classes: [x]}\n", r"group 1: `name`: expected text, got nothing"),
    ("groups:\n  - {name: a, classes: [x]}\n  - {name: a, classes: [y]}\n", "group name `a` is used twice"),
    ("groups:\n  - {name: a, classes: [x, y, x]}\n", "group `a` lists class `x` twice"),
    ("groups:\n  - {name: a, classes: [0, '0']}\n", "group `a` lists class `0` twice"),
    ("groups:\n  - {name: a, classes: [yes, no]}\n", r"group 1 \(a\): class 1: expected text, got bool True .*quote"),
    ("groups:\n  - {name: a, classes: [[1, 2]]}\n", r"class 1: expected text, got a list"),
    ("groups:\n  - {name: file, classes: [x]}\n", "`file` is reserved"),
    ("groups:\n  - {name: a, classes: [x], colour: red}\n", "group 1: unknown key `colour`"),
    ("groups:\n  - a\n", "group 1: expected a mapping"),
    ("groups: [\n", "not valid YAML at line"),
])
def test_malformed_schemas_are_refused_in_one_line_naming_the_file(tmp_path, text, match):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_schema_yaml(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_an_unreadable_schema_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_schema_yaml(tmp_path / "schema.yaml")
    path = tmp_path / "schema.yaml"
    path.write_bytes(b"\xff\xfe\x00groups")
    with pytest.raises(DataError, match=f"{path}: not readable"):
        read_schema_yaml(path)


@pytest.mark.parametrize("values, order", [
    (["10", "2", "1", "2"], ("1", "2", "10")),      # numbers by value, not as text
    (["-1", "3", "0"], ("-1", "0", "3")),
    (["b", "a", "C"], ("C", "a", "b")),             # text: code-point order, case kept
    (["1", "a", "10"], ("1", "10", "a")),           # not all integers: alphabetical
])
def test_natural_order(values, order):
    assert natural_order(values) == order
