"""The Kaggle submission CSV (`Id,Category`) and the per-group form."""

from __future__ import annotations

import numpy as np
import pytest

from semilabel.data.readers import read_labels
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema
from semilabel.data.submission import format_submission, read_predictions, read_submission, write_submission
from semilabel.errors import DataError

RNG = np.random.default_rng(0)
INDICES = np.stack([RNG.integers(0, 10, 50), RNG.integers(0, 26, 50)], 1).astype(np.int64)


@pytest.mark.parametrize("style", ["kaggle", "groups"])
def test_write_then_read_back(tmp_path, style):
    path = tmp_path / "sub.csv"
    write_submission(path, INDICES, COMBO, style=style)
    np.testing.assert_array_equal(read_submission(path, COMBO), INDICES)
    np.testing.assert_array_equal(read_labels(path), INDICES)
    assert [p.name for p in tmp_path.iterdir()] == ["sub.csv"]  # atomic: no temporary left


def test_kaggle_form_exact_text():
    text = format_submission(np.array([[7, 16], [0, 0]]), COMBO)
    seven_q = "0000000100" + "0" * 16 + "1" + "0" * 9
    zero_a = "1" + "0" * 9 + "1" + "0" * 25
    assert text == f"Id,Category\n0,{seven_q}\n1,{zero_a}\n"


def test_groups_and_probabilities_forms():
    idx = np.array([[7, 16], [3, 0]])
    assert format_submission(idx, COMBO, style="groups") == "id,digit,letter\n0,7,q\n1,3,a\n"
    probs = [np.full((2, 10), 0.1), np.full((2, 26), 0.0)]
    probs[0][0, 7], probs[1][0, 16], probs[1][1, 0] = 0.9, 0.75, 0.5
    text = format_submission(idx, COMBO, style="probabilities", probabilities=probs)
    assert text == "id,digit,letter,digit_p,letter_p\n0,7,q,0.90000,0.75000\n1,3,a,0.10000,0.50000\n"


def test_probabilities_form_reads_back(tmp_path):
    probs = [np.full((50, 10), 0.1), np.full((50, 26), 1 / 26)]
    path = tmp_path / "p.csv"
    write_submission(path, INDICES, COMBO, style="probabilities", probabilities=probs)
    np.testing.assert_array_equal(read_submission(path, COMBO), INDICES)


def test_bad_style_arguments():
    with pytest.raises(ValueError):
        format_submission(INDICES, COMBO, style="excel")
    with pytest.raises(ValueError):
        format_submission(INDICES, COMBO, style="probabilities")


def test_rows_in_any_order_are_sorted_by_id(tmp_path):
    lines = format_submission(INDICES[:6], COMBO).splitlines()
    path = tmp_path / "shuffled.csv"
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    np.testing.assert_array_equal(read_submission(path, COMBO), INDICES[:6])


def test_overwrite_replaces_file(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, INDICES, COMBO)
    write_submission(path, INDICES[:3], COMBO)
    assert len(read_submission(path, COMBO)) == 3


def _kaggle_lines(n: int = 6) -> list[str]:
    return format_submission(INDICES[:n], COMBO).splitlines()


def test_missing_id_detected(tmp_path):
    lines = _kaggle_lines()
    del lines[1 + 2]  # drop id 2
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"id 2 is missing") as err:
        read_submission(path, COMBO)
    assert str(path) in str(err.value)


def test_repeated_id_detected(tmp_path):
    lines = _kaggle_lines()
    lines[1 + 3] = "2," + lines[1 + 3].split(",")[1]  # ids 0,1,2,2,4,5
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=str(path)):
        read_submission(path, COMBO)


@pytest.mark.parametrize("bad", ["1" * 36, "0" * 36, "01" * 17, "2" + "0" * 35, "abc"])
def test_bad_category_row_named(tmp_path, bad):
    lines = _kaggle_lines()
    lines[1 + 3] = f"3,{bad}"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_submission(path, COMBO)
    assert str(path) in str(err.value) and "id 3" in str(err.value)


def test_bad_group_value_names_the_id(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("id,digit,letter\n0,1,a\n1,11,b\n")
    with pytest.raises(DataError, match=r"id 1: digit '11'"):
        read_submission(path, COMBO)


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("Id,Category\n", "no rows"),
    ("Id,Category\n0,{s}\nx,{s}\n", r"data row 1: id 'x' is not an integer"),
    ("Id,Category\n0,{s}\n1\n", r"data row 1: expected 2 columns"),
    ("Name,Label\n0,{s}\n", "header must be"),
])
def test_malformed_files(tmp_path, text, match):
    path = tmp_path / "m.csv"
    path.write_text(text.replace("{s}", COMBO.to_strings(np.array([[1, 1]]))[0]))
    with pytest.raises(DataError, match=match) as err:
        read_submission(path, COMBO)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_submission(tmp_path / "none.csv", COMBO)


def test_spreadsheet_bom_and_trailing_blank_lines_are_accepted(tmp_path):
    lines = _kaggle_lines()
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    assert len(read_submission(path, COMBO)) == len(lines) - 1


INK = LabelSchema((LabelGroup("tens", tuple("0123456789")), LabelGroup("ink", ("red", "Red", "green", "dark blue"))))


def test_other_schemas_write_file_and_class_names(tmp_path):
    indices = np.array([[3, 0], [9, 1], [0, 3]])
    text = format_submission(indices, INK, "groups", files=["a.png", "b.png", "sub/c.png"])
    assert text == "file,tens,ink\na.png,3,red\nb.png,9,Red\nsub/c.png,0,dark blue\n"
    assert format_submission(indices, INK, "groups").splitlines()[1:] == ["0,3,red", "1,9,Red", "2,0,dark blue"]
    probs = [np.full((3, 10), 0.1), np.full((3, 4), 0.25)]
    assert format_submission(indices, INK, "probabilities", probs, files=["a", "b", "c"]).splitlines()[:2] == [
        "file,tens,ink,tens_p,ink_p", "a,3,red,0.10000,0.25000"]
    path = tmp_path / "p.csv"
    write_submission(path, indices, INK, "groups", files=["z.png", "a.png", "m.png"])
    files, back = read_predictions(path, INK)
    assert files == ["z.png", "a.png", "m.png"]  # the file form keeps its order
    np.testing.assert_array_equal(back, indices)
    np.testing.assert_array_equal(read_submission(path, INK), indices)


def test_class_names_match_as_written_then_without_case(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("file,tens,ink\na,3,red\nb,4,Red\nc,5,GREEN\nd,6,Dark Blue\n")
    np.testing.assert_array_equal(read_submission(path, INK), [[3, 0], [4, 1], [5, 2], [6, 3]])
    path.write_text("file,tens,ink\na,3,RED\n")  # `red` and `Red` are two classes: RED is neither
    with pytest.raises(DataError) as err:
        read_submission(path, INK)
    assert str(err.value) == f"{path}: data row 0: ink 'RED' is not one of red, Red, green, dark blue"
