"""The Combo generator: determinism, writer-disjoint splits, image statistics, files.

How closely the default style follows the original data's measured figures is
checked in test_style_calibration.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semilabel.data.combo import (
    CANVAS,
    GLYPH_FILES,
    INK_LEVEL,
    LAYOUTS,
    NOISE_REGIMES,
    SAMPLE_GRID,
    STROKES,
    ComboStyle,
    compose,
    ink_boxes,
    make_combo,
    read_glyph_index,
    write_combo,
)
from semilabel.data.glyphs import concat_banks
from semilabel.data.readers import ORIGINAL_FILES, read_dataset, read_original
from semilabel.errors import DataError
from semilabel.plots import save_image_grid

STYLE = ComboStyle()
FIELDS = ("images", "labels", "noise", "layout", "boxes", "writers", "glyphs")


@pytest.fixture(scope="module")
def many(real_banks):
    """3,000 labelled images from real handwriting (about a second and a half on 2 cores)."""
    digits, letters = real_banks
    return make_combo([digits], [letters], n_labeled=3000, n_unlabeled=0, n_test=300, seed=1)


# ---- determinism ------------------------------------------------------------------------------
def _assert_same(a, b):
    for part in ("labeled", "unlabeled", "test"):
        for name in FIELDS:
            x, y = getattr(getattr(a, part), name), getattr(getattr(b, part), name)
            assert x.dtype == y.dtype and x.shape == y.shape, (part, name)
            assert np.array_equal(x, y), (part, name)
    assert a.train_writers == b.train_writers and a.test_writers == b.test_writers


def test_same_seed_same_arrays(real_banks):
    digits, letters = real_banks
    a = make_combo([digits], [letters], n_labeled=120, n_unlabeled=60, n_test=60, seed=7)
    b = make_combo([digits], [letters], n_labeled=120, n_unlabeled=60, n_test=60, seed=7)
    _assert_same(a, b)
    assert a.labeled.images.tobytes() == b.labeled.images.tobytes()


def test_different_seed_different_images(real_banks):
    digits, letters = real_banks
    a = make_combo([digits], [letters], n_labeled=120, n_unlabeled=0, n_test=60, seed=7)
    b = make_combo([digits], [letters], n_labeled=120, n_unlabeled=0, n_test=60, seed=8)
    assert not np.array_equal(a.labeled.images, b.labeled.images)
    assert not np.array_equal(a.labeled.labels, b.labeled.labels)
    # not merely shifted or reordered: most images differ from every image of the other run
    same = (a.labeled.images[:, None] == b.labeled.images[None]).all(axis=(2, 3))
    assert not same.any()


def test_same_seed_byte_identical_files(synthetic_banks, tmp_path):
    digits, letters = synthetic_banks
    outs = []
    for run in ("a", "b"):
        splits = make_combo([digits], [letters], n_labeled=8, n_unlabeled=20, n_test=20, seed=3)  # 8: a small grid
        written = write_combo(splits, tmp_path / run, draw_grid=save_image_grid)
        outs.append({p.name: p.read_bytes() for p in written})
    assert outs[0].keys() == outs[1].keys()
    assert {ORIGINAL_FILES["labeled"], ORIGINAL_FILES["labels"], ORIGINAL_FILES["unlabeled"],
            ORIGINAL_FILES["test"], ORIGINAL_FILES["test_labels"], SAMPLE_GRID, *GLYPH_FILES.values()} <= outs[0].keys()
    for name in outs[0]:
        assert outs[0][name] == outs[1][name], name


# ---- writer-disjoint split ------------------------------------------------------------------------
def _check_disjoint(splits):
    assert splits.train_writers and splits.test_writers
    assert not splits.train_writers & splits.test_writers
    train_used = set(np.concatenate([splits.labeled.writers.ravel(), splits.unlabeled.writers.ravel()]).tolist())
    test_used = set(splits.test.writers.ravel().tolist())
    assert train_used <= splits.train_writers
    assert test_used <= splits.test_writers
    assert not train_used & test_used  # no writer of any test glyph appears among training glyphs


def test_writer_disjoint_real_writers(real_banks):
    digits, letters = real_banks
    splits = make_combo([digits], [letters], n_labeled=400, n_unlabeled=200, n_test=200, seed=2)
    _check_disjoint(splits)
    # one person's digits and letters fall on the same side: UNIPEN ids are shared by both banks
    assert set(digits.writers) == set(letters.writers)
    assert len(splits.test_writers) == round(STYLE.test_writer_fraction * len(set(digits.writers)))
    # every class still appears on the test side
    assert set(splits.test.labels[:, 0]) == set(range(10))


def test_writer_disjoint_with_mnist_pseudo_writers(mnist_bank, real_banks):
    _, letters = real_banks
    splits = make_combo([mnist_bank], [letters], n_labeled=300, n_unlabeled=100, n_test=300, seed=4)
    _check_disjoint(splits)
    # MNIST has no writer ids: each image is its own pseudo-writer, so no test digit glyph
    # is ever used in training
    test_digits = set(splits.test.writers[:, 0].tolist())
    train_digits = set(splits.labeled.writers[:, 0].tolist()) | set(splits.unlabeled.writers[:, 0].tolist())
    assert all(w.startswith("bank0:") for w in test_digits | train_digits)
    assert not test_digits & train_digits


def test_labels_come_from_the_drawn_glyphs(make_synthetic_bank):
    """Each writer id here names its class (`w3/c7`), so label and writer must agree."""
    digits = make_synthetic_bank(10, 20, seed=5, class_in_writer=True)
    letters = make_synthetic_bank(26, 20, seed=6, class_in_writer=True)
    splits = make_combo([digits], [letters], n_labeled=300, n_unlabeled=50, n_test=100, seed=0,
                        style=ComboStyle(test_writer_fraction=0.5))
    for part in (splits.labeled, splits.unlabeled, splits.test):
        from_writer = np.array([[int(w.split("/c")[1]) for w in row] for row in part.writers])
        np.testing.assert_array_equal(from_writer, part.labels)
    _check_disjoint(splits)


def test_split_refuses_a_class_missing_on_one_side(make_synthetic_bank):
    digits = make_synthetic_bank(10, 10, seed=1)
    letters = make_synthetic_bank(26, 10, seed=2)
    keep = (letters.labels != 25) | (letters.writers == "w0")  # only w0 ever wrote a z
    letters = letters.subset(np.flatnonzero(keep))
    with pytest.raises(DataError, match=r"letter glyph of class\(es\) \[25\]"):
        make_combo([digits], [letters], n_labeled=10, n_unlabeled=0, n_test=10, seed=0)


def test_negative_count_refused(synthetic_banks):
    with pytest.raises(DataError, match="--n-test"):
        make_combo(*([b] for b in synthetic_banks), n_labeled=5, n_unlabeled=5, n_test=-1)


# ---- image statistics ------------------------------------------------------------------------
def test_images_are_uint8_canvases(many):
    x = many.labeled
    assert x.images.shape == (3000, CANVAS, CANVAS) and x.images.dtype == np.uint8
    assert x.labels.shape == (3000, 2) and x.labels.dtype == np.int64
    assert x.boxes.shape == (3000, 2, 4) and x.writers.shape == (3000, 2)
    assert x.glyphs.shape == (3000, 2) and x.glyphs.dtype == np.int64
    assert x.images.min() == 0
    assert (x.images.reshape(3000, -1).max(1) == 255).all()  # every image scaled to a brightest pixel of 255


def test_symbol_sizes(many):
    """Longer side of each symbol's ink box (above 35% of the image's max)."""
    boxes = many.labeled.boxes
    side = np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
    p10, p50, p90 = np.percentile(side, [10, 50, 90])
    assert 11 <= p10 <= 13 and 14 <= p50 <= 16 and 16 <= p90 <= 18
    assert side.min() >= 4 and side.max() <= 32  # some turned far, none blown up


def test_rotation_stroke_and_ink_are_recorded_as_drawn(many):
    """One symbol in ten turned 20-90 degrees, the rest a few; strokes and ink as the style draws them."""
    x, style = many.labeled, ComboStyle()
    assert x.angles.shape == x.strokes.shape == x.ink.shape == (3000, 2)
    far = np.abs(x.angles) >= style.far_rotation_deg[0]
    assert abs(far.mean() - style.far_rotation_prob) < 0.02
    assert np.abs(x.angles).max() <= style.far_rotation_deg[1] and np.percentile(np.abs(x.angles[~far]), 90) < 8
    shares = np.bincount(x.strokes.ravel(), minlength=len(STROKES)) / x.strokes.size
    np.testing.assert_allclose(shares, style.stroke_probs, atol=0.02)
    assert (x.ink > 0).all() and (x.ink <= 1).all()
    assert (x.ink[x.strokes == 1] >= style.dim_ratio[0]).all()  # only thin strokes fade further
    # a turned symbol's ink box is squarer: width / height of tall glyphs (1, 7, l) lying on their side
    side = (x.boxes[..., 2] - x.boxes[..., 0]) / (x.boxes[..., 3] - x.boxes[..., 1])
    assert np.median(side[~far]) < np.median(side[np.abs(x.angles) > 70])


def test_boxes_inside_the_canvas(many):
    boxes = many.labeled.boxes
    assert boxes[..., :2].min() >= 0 and boxes[..., 2:].max() <= CANVAS
    assert (boxes[..., 2:] > boxes[..., :2]).all()
    # ink seldom touches the border
    assert np.mean((boxes[..., :2] <= 0).any(-1) | (boxes[..., 2:] >= CANVAS).any(-1)) < 0.01


def test_boxes_match_the_drawn_ink(many):
    """On grey-background images (the ink drawn as is, over grain) the ink above 35% of
    the image's max, less the background, spans the union of the two symbol boxes."""
    x = many.labeled
    grey = np.flatnonzero(x.noise == NOISE_REGIMES.index("grey"))[:300]
    diffs = []
    for i in grey:
        image = x.images[i].astype(np.float64)
        level = np.median(image)
        ys, xs = np.nonzero(image - level > INK_LEVEL * (255 - level) + 0.25 * level)
        union = np.r_[x.boxes[i, :, :2].min(0), x.boxes[i, :, 2:].max(0)]
        diffs.append([xs.min() - union[0], ys.min() - union[1], xs.max() + 1 - union[2], ys.max() + 1 - union[3]])
    diffs = np.abs(np.array(diffs))
    assert np.median(diffs) <= 1.0
    assert np.mean(diffs.max(1) <= 2) > 0.9


def test_noise_regimes_in_configured_proportions(many):
    share = np.bincount(many.labeled.noise, minlength=len(NOISE_REGIMES)) / len(many.labeled)
    np.testing.assert_allclose(share, STYLE.noise_probs, atol=0.03)
    layout = np.bincount(many.labeled.layout, minlength=len(LAYOUTS)) / len(many.labeled)
    assert layout.min() > 0.1
    assert layout[LAYOUTS.index("stacked")] > layout[LAYOUTS.index("side_by_side")]  # more often stacked


def test_noise_regimes_look_different(many):
    x = many.labeled
    flat = x.images.reshape(len(x), -1).astype(np.float64)
    by = {name: flat[x.noise == k] for k, name in enumerate(NOISE_REGIMES)}
    # clean and salt-and-pepper: a black background
    assert np.median(by["clean"], axis=1).max() == 0 and np.median(by["salt_pepper"], axis=1).max() == 0
    # clean ink is dim and grainy, scaled up: few grey levels, no isolated bright dots
    levels = np.array([len(np.unique(row)) for row in by["clean"]])
    assert np.median(levels) < 80
    # grey: median background dark (21-28) or light (49-63)
    median = np.median(by["grey"], axis=1)
    assert (((median >= 19) & (median <= 30)) | ((median >= 47) & (median <= 65))).all()
    # salt-and-pepper: 0.5-2.7% of the pixels at the dot level (255 or 176; ink at 255 adds a few), against
    # almost none in clean images
    dots = ((flat == 255) | (np.abs(flat - 176) <= 1)).mean(1)
    sp = dots[x.noise == NOISE_REGIMES.index("salt_pepper")]
    assert np.percentile(sp, 5) > 0.004 and np.percentile(sp, 95) < 0.035
    assert dots[x.noise == NOISE_REGIMES.index("clean")].mean() < 0.003


@pytest.mark.parametrize("regime", range(len(NOISE_REGIMES)))
def test_single_regime_style(synthetic_banks, regime):
    probs = tuple(1.0 if k == regime else 0.0 for k in range(len(NOISE_REGIMES)))
    splits = make_combo(*([b] for b in synthetic_banks), n_labeled=50, n_unlabeled=0, n_test=10, seed=0,
                        style=ComboStyle(noise_probs=probs))
    assert (splits.labeled.noise == regime).all() and (splits.test.noise == regime).all()


def test_glyph_index_names_the_drawn_glyphs(mnist_bank, real_banks):
    """`glyphs` index the concatenated banks: their labels and writers are the image's."""
    digits_unipen, letters = real_banks
    digit_banks = [mnist_bank, digits_unipen]
    splits = make_combo(digit_banks, [letters], n_labeled=200, n_unlabeled=50, n_test=100, seed=5)
    all_digits, all_letters = concat_banks(digit_banks), concat_banks([letters])
    for part in (splits.labeled, splits.unlabeled, splits.test):
        np.testing.assert_array_equal(all_digits.labels[part.glyphs[:, 0]], part.labels[:, 0])
        np.testing.assert_array_equal(all_letters.labels[part.glyphs[:, 1]], part.labels[:, 1])
        np.testing.assert_array_equal(all_digits.writers[part.glyphs[:, 0]], part.writers[:, 0])
        np.testing.assert_array_equal(all_letters.writers[part.glyphs[:, 1]], part.writers[:, 1])
    # both digit banks are used, and no glyph is shared between training and test images
    assert (splits.labeled.glyphs[:, 0] < len(mnist_bank)).any() and (splits.labeled.glyphs[:, 0] >= len(mnist_bank)).any()
    train = set(splits.labeled.glyphs[:, 1]) | set(splits.unlabeled.glyphs[:, 1])
    assert not train & set(splits.test.glyphs[:, 1])


def test_labels_balanced(many):
    digits = np.bincount(many.labeled.labels[:, 0], minlength=10)
    letters = np.bincount(many.labeled.labels[:, 1], minlength=26)
    assert digits.min() > 0.7 * 300 and digits.max() < 1.3 * 300
    assert letters.min() > 0.5 * 3000 / 26 and letters.max() < 1.5 * 3000 / 26
    # digit and letter drawn independently: every digit meets many letters
    pairs = np.unique(many.labeled.labels[:, 0] * 26 + many.labeled.labels[:, 1])
    assert len(pairs) > 240  # of 260


def test_digit_first_and_layouts_mix(many):
    x = many.labeled
    digit_left = x.boxes[:, 0, 0] < x.boxes[:, 1, 0]
    assert 0.3 < digit_left.mean() < 0.7


# ---- files ----------------------------------------------------------------------------------
def test_sample_grid_written(tiny_combo_dir):
    grid = tiny_combo_dir / SAMPLE_GRID
    assert grid.is_file() and grid.stat().st_size > 1000
    with Image.open(grid) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 100
    assert not [p for p in tiny_combo_dir.iterdir() if p.name.endswith(".tmp")]


def test_written_files_read_back(tiny_combo, tiny_combo_dir):
    data = read_original(tiny_combo_dir)
    np.testing.assert_array_equal(data.labeled.images, tiny_combo.labeled.images)
    np.testing.assert_array_equal(data.test.labels, tiny_combo.test.labels)
    index = read_glyph_index(tiny_combo_dir)
    assert index.keys() == {"labeled", "unlabeled", "test"}
    for part, glyphs in index.items():
        np.testing.assert_array_equal(glyphs, getattr(tiny_combo, part).glyphs)
        assert glyphs.dtype == np.int64


def test_glyph_index_optional(tiny_combo_dir, tmp_path):
    """A set without the side files (made elsewhere, or older) reads as before."""
    for path in tiny_combo_dir.iterdir():
        if path.name not in GLYPH_FILES.values():
            (tmp_path / path.name).write_bytes(path.read_bytes())
    assert read_glyph_index(tmp_path) == {}
    np.testing.assert_array_equal(read_dataset(tmp_path).labeled.images, read_dataset(tiny_combo_dir).labeled.images)
    (tmp_path / GLYPH_FILES["test"]).write_bytes(b"not an array")
    with pytest.raises(DataError, match="glyphs_test.npy"):
        read_glyph_index(tmp_path)


def test_empty_parts_still_make_a_readable_dataset(synthetic_banks, tmp_path):
    """--n-unlabeled 0 (a supervised baseline) and --n-test 0 must give a dataset that
    the readers accept, even when the folder held a bigger set before."""
    banks = [[b] for b in synthetic_banks]
    write_combo(make_combo(*banks, n_labeled=20, n_unlabeled=10, n_test=10, seed=0), tmp_path)
    splits = make_combo(*banks, n_labeled=20, n_unlabeled=0, n_test=0, seed=1)
    assert splits.unlabeled.images.shape == (0, CANVAS, CANVAS)
    write_combo(splits, tmp_path)
    data = read_dataset(tmp_path)
    np.testing.assert_array_equal(data.labeled.labels, splits.labeled.labels)
    assert data.unlabeled is None and data.test is None
    assert read_glyph_index(tmp_path).keys() == {"labeled"}  # no stale side files of the bigger set


def test_no_sample_grid_without_labelled_images(synthetic_banks, tmp_path):
    (tmp_path / SAMPLE_GRID).write_bytes(b"stale grid of an earlier set")
    written = write_combo(make_combo(*([b] for b in synthetic_banks), n_labeled=0, n_unlabeled=0, n_test=5,
                                     seed=0), tmp_path, draw_grid=save_image_grid)
    assert SAMPLE_GRID not in [p.name for p in written]
    assert not (tmp_path / SAMPLE_GRID).exists()


def test_no_sample_grid_without_a_grid_writer(synthetic_banks, tmp_path):
    """The data layer draws nothing itself: without `draw_grid` no grid is written, and an
    earlier set's grid does not stay behind as if it showed this one."""
    (tmp_path / SAMPLE_GRID).write_bytes(b"stale grid of an earlier set")
    written = write_combo(make_combo(*([b] for b in synthetic_banks), n_labeled=8, n_unlabeled=0, n_test=0,
                                     seed=0), tmp_path)
    assert SAMPLE_GRID not in [p.name for p in written]
    assert not (tmp_path / SAMPLE_GRID).exists()
    assert len(read_dataset(tmp_path).labeled) == 8


# ---- pieces -----------------------------------------------------------------------------------
def test_ink_boxes():
    glyphs = np.zeros((3, 28, 28), np.uint8)
    glyphs[0, 5:15, 8:12] = 200
    glyphs[1, 0:28, 27] = 41
    glyphs[1, 3, 3] = 40  # at the threshold: not ink
    boxes = ink_boxes(glyphs)
    np.testing.assert_array_equal(boxes[0], [8, 5, 12, 15])
    np.testing.assert_array_equal(boxes[1], [27, 0, 28, 28])
    np.testing.assert_array_equal(boxes[2], [0, 0, 28, 28])  # empty glyph: the whole frame


def test_compose_direct(synthetic_banks):
    digits, letters = synthetic_banks
    out = compose(digits, letters, 10, np.random.default_rng(0))
    assert len(out) == 10 and out.images.dtype == np.uint8
    assert set(out.writers.ravel()) <= set(digits.writers) | set(letters.writers)
    np.testing.assert_array_equal(digits.labels[out.glyphs[:, 0]], out.labels[:, 0])
    assert out.labels[:, 0].max() < 10 and out.labels[:, 1].max() < 26 and out.labels.min() >= 0
