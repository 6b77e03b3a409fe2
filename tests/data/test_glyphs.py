"""Glyph banks: loading .npz banks, validation, and joining banks with writer ids."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semilabel.data.glyphs import GlyphBank, concat_banks, load_glyph_bank
from semilabel.errors import DataError

GLYPHS = np.zeros((4, 28, 28), np.uint8)
LABELS = np.array([0, 1, 2, 3], np.int64)


def test_real_bank_loads(shared_data):
    bank = load_glyph_bank(shared_data / "digits_unipen.npz", 10)
    assert bank.images.shape[1:] == (28, 28) and bank.images.dtype == np.uint8
    assert bank.labels.dtype == np.int64 and set(np.unique(bank.labels)) == set(range(10))
    assert bank.writers is not None and bank.writers.dtype.kind == "U" and len(bank.writers) == len(bank)
    mnist = load_glyph_bank(shared_data / "digits_mnist.npz", 10)
    assert mnist.writers is None


@pytest.mark.parametrize("arrays, n_classes, match", [
    ({"y": LABELS}, 10, r"lacks array\(s\) \['x'\]"),
    ({"x": GLYPHS}, 10, r"\['y'\]"),
    ({"x": GLYPHS, "y": LABELS}, 3, "labels must lie in 0..2"),
    ({"x": GLYPHS, "y": LABELS - 1}, 10, "labels must lie"),
    ({"x": GLYPHS, "y": LABELS.astype(np.float32)}, 10, "integers"),
    ({"x": GLYPHS[:, :20], "y": LABELS}, 10, r"\(N, 28, 28\)"),
    ({"x": GLYPHS.astype(np.float32), "y": LABELS}, 10, "uint8"),
    ({"x": GLYPHS, "y": LABELS[:3]}, 10, "4 glyphs but labels"),
    ({"x": GLYPHS, "y": np.array(3)}, 10, "4 glyphs but labels"),  # 0-d labels
    ({"x": GLYPHS, "y": LABELS, "writer": np.array(["a", "b"])}, 10, "4 glyphs but writers"),
])
def test_bad_banks_refused_naming_the_file(tmp_path, arrays, n_classes, match):
    path = tmp_path / "bank.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match) as err:
        load_glyph_bank(path, n_classes)
    assert str(path) in str(err.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_glyph_bank(tmp_path / "none.npz", 10)
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match="junk.npz"):
        load_glyph_bank(tmp_path / "junk.npz", 10)


def test_concat_keeps_writers_and_invents_pseudo_writers():
    a = GlyphBank(GLYPHS, LABELS, np.array(["p1", "p1", "p2", "p3"]), "a")
    b = GlyphBank(GLYPHS[:3], LABELS[:3], None, "b")
    both = concat_banks([a, b])
    assert len(both) == 7 and both.source == "a+b"
    assert list(both.writers[:4]) == ["p1", "p1", "p2", "p3"]
    pseudo = list(both.writers[4:])
    assert len(set(pseudo)) == 3 and not set(pseudo) & {"p1", "p2", "p3"}
    # pseudo-writers of two writer-less banks never collide
    c = concat_banks([b, b])
    assert len(set(c.writers)) == 6


def test_subset_and_empty_bank():
    bank = GlyphBank(GLYPHS, LABELS, np.array(list("abcd")), "s")
    sub = bank.subset(np.array([3, 1]))
    assert list(sub.labels) == [3, 1] and list(sub.writers) == ["d", "b"]
    with pytest.raises(DataError, match="empty"):
        GlyphBank(GLYPHS[:0], LABELS[:0], None, "s")


def _valid_bank_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=GLYPHS, y=LABELS, writer=np.array(["a", "b", "c", "d"]))
    return buf.getvalue()


VALID_BANK = _valid_bank_bytes()


@st.composite
def bank_bytes(draw) -> bytes:
    """Random bytes, or a valid bank with a few bytes changed and/or cut short."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(VALID_BANK)
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=60, deadline=None)
@given(data=bank_bytes())
def test_random_bank_bytes_only_data_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bank") / "bank.npz"
    path.write_bytes(data)
    try:
        load_glyph_bank(path, 10)
    except DataError as exc:
        assert str(path) in str(exc)
