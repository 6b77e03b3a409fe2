"""LabelSchema / COMBO: multi-hot rows <-> (N, G) indices <-> Kaggle 0/1 strings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semilabel.data.schema import COMBO, LabelGroup, LabelSchema
from semilabel.errors import DataError

ALL_PAIRS = np.array(list(itertools.product(range(10), range(26))), dtype=np.int64)  # 260 rows


def test_combo_layout():
    assert COMBO.names == ("digit", "letter")
    assert COMBO.sizes == (10, 26)
    assert COMBO.width == 36
    assert COMBO.offsets == (0, 10)
    assert COMBO.group("letter").classes[16] == "q"
    with pytest.raises(KeyError):
        COMBO.group("colour")


def test_indices_multihot_round_trip_every_pair():
    bits = COMBO.to_multihot(ALL_PAIRS)
    assert bits.shape == (260, 36) and bits.dtype == np.uint8
    assert (bits.sum(1) == 2).all()
    assert (bits[:, :10].sum(1) == 1).all() and (bits[:, 10:].sum(1) == 1).all()
    rows = np.arange(260)
    assert (bits[rows, ALL_PAIRS[:, 0]] == 1).all()
    assert (bits[rows, 10 + ALL_PAIRS[:, 1]] == 1).all()
    back = COMBO.from_multihot(bits)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, ALL_PAIRS)


def test_strings_round_trip_every_pair():
    strings = COMBO.to_strings(ALL_PAIRS)
    assert all(len(s) == 36 and set(s) <= {"0", "1"} for s in strings)
    np.testing.assert_array_equal(COMBO.from_strings(strings), ALL_PAIRS)


def test_string_form_is_digit_bits_then_letter_bits():
    (s,) = COMBO.to_strings(np.array([[7, 16]]))  # "7", "q"
    assert s == "0000000100" + "0" * 16 + "1" + "0" * 9
    assert COMBO.names_of(np.array([[7, 16]])) == [("7", "q")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 25)), min_size=0, max_size=40))
def test_round_trips_property(pairs):
    indices = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(COMBO.from_multihot(COMBO.to_multihot(indices)), indices)
    np.testing.assert_array_equal(COMBO.from_strings(COMBO.to_strings(indices)), indices)


def test_boolean_and_float_multihot_accepted():
    bits = COMBO.to_multihot(ALL_PAIRS[:5])
    np.testing.assert_array_equal(COMBO.from_multihot(bits.astype(bool)), ALL_PAIRS[:5])
    np.testing.assert_array_equal(COMBO.from_multihot(bits.astype(np.float32)), ALL_PAIRS[:5])


@pytest.mark.parametrize("group, start, count, found", [
    ("digit", 0, 0, "found 0"),    # no digit bit
    ("digit", 0, 2, "found 2"),    # two digit bits
    ("letter", 10, 0, "found 0"),  # no letter bit
    ("letter", 10, 2, "found 2"),  # two letter bits
])
def test_row_with_zero_or_two_bits_in_a_group_is_refused(group, start, count, found):
    bits = COMBO.to_multihot(np.array([[1, 1]] * 6))
    size = 10 if group == "digit" else 26
    bits[3, start : start + size] = 0
    bits[3, start : start + count] = 1
    with pytest.raises(DataError) as err:
        COMBO.from_multihot(bits, source="train/labels_l.pkl")
    message = str(err.value)
    assert "train/labels_l.pkl" in message
    assert "row 3" in message
    assert group in message and found in message


def test_first_bad_row_is_named_and_all_bad_rows_counted():
    bits = COMBO.to_multihot(np.zeros((10, 2), np.int64))
    bits[[4, 7, 9], 0] = 0
    with pytest.raises(DataError, match=r"src\.pkl: row 4: .*\(3 bad rows in all\)"):
        COMBO.from_multihot(bits, source="src.pkl")


@pytest.mark.parametrize("shape", [(4, 35), (4, 37), (4, 2 * 36), (36,), (2, 3, 36)])
def test_wrong_width_or_rank_refused(shape):
    with pytest.raises(DataError) as err:
        COMBO.from_multihot(np.zeros(shape, np.uint8), source="lab.npz[y]")
    assert "lab.npz[y]" in str(err.value) and "36" in str(err.value)


def test_values_other_than_zero_and_one_refused():
    bits = COMBO.to_multihot(np.zeros((5, 2), np.int64)).astype(np.float64)
    bits[2, 20] = 0.5
    with pytest.raises(DataError, match=r"lab: row 2: label bits must be 0 or 1"):
        COMBO.from_multihot(bits, source="lab")
    bits[2, 20] = 0
    bits[1, 0] = 2
    with pytest.raises(DataError, match=r"lab: row 1:"):
        COMBO.from_multihot(bits, source="lab")
    bits[1, 0] = 1
    bits[3, 5] = np.nan
    with pytest.raises(DataError, match=r"lab: row 3: label is NaN"):
        COMBO.from_multihot(bits, source="lab")


def test_from_strings_refuses_bad_rows_naming_source_and_row():
    good = COMBO.to_strings(np.array([[0, 0], [1, 1], [2, 2]]))
    for bad in (good[1][:-1], good[1] + "0", good[1].replace("1", "x", 1), "", "1" * 36):
        rows = [good[0], bad, good[2]]
        with pytest.raises(DataError) as err:
            COMBO.from_strings(rows, source="sub.csv")
        assert "sub.csv" in str(err.value) and "row 1" in str(err.value), bad


def test_from_strings_strips_whitespace():
    (s,) = COMBO.to_strings(np.array([[3, 4]]))
    np.testing.assert_array_equal(COMBO.from_strings([f"  {s}\n"]), [[3, 4]])


@pytest.mark.parametrize("indices", [
    np.array([[10, 0]]), np.array([[-1, 0]]), np.array([[0, 26]]), np.array([[0, 0, 0]]), np.array([0, 0]),
])
def test_to_multihot_refuses_bad_indices(indices):
    with pytest.raises(DataError):
        COMBO.to_multihot(indices)


def test_dict_round_trip_and_custom_schema():
    assert LabelSchema.from_dict(COMBO.to_dict()) == COMBO
    colours = LabelSchema((LabelGroup("colour", ("red", "green")), LabelGroup("size", ("s", "m", "l"))))
    assert colours.width == 5 and colours.offsets == (0, 2)
    idx = np.array([[1, 2], [0, 0]])
    assert colours.to_strings(idx) == ["01001", "10100"]
    np.testing.assert_array_equal(colours.from_strings(["01001", "10100"]), idx)
