"""The default generator style against the original data's measured figures
(ORIGINAL_DATA.md beside the shared glyph banks), and measure_style on images of
known construction.

Each check states the figure and the tolerance allowed around it. The generated
images come from the real glyph banks (skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from semilabel.data.combo import NOISE_REGIMES, ComboStyle, _angles, compose
from semilabel.data.glyphs import concat_banks, load_glyph_bank
from semilabel.data.style_stats import ORIGINAL_FIGURES, StyleStats, format_table, measure_style
from semilabel.errors import DataError

N_IMAGES = 3000


@pytest.fixture(scope="module")
def generated(shared_data):
    """3,000 images with the default style from the full real banks (a few seconds)."""
    digits = concat_banks([load_glyph_bank(shared_data / "digits_mnist.npz", 10),
                           load_glyph_bank(shared_data / "digits_unipen.npz", 10)])
    letters = load_glyph_bank(shared_data / "letters_unipen.npz", 26)
    return compose(digits, letters, N_IMAGES, np.random.default_rng(2024))


@pytest.fixture(scope="module")
def stats(generated) -> StyleStats:
    return measure_style(generated.images)


def within(value: float, figure: float, tolerance: float) -> bool:
    return abs(value - figure) <= tolerance


# ---- figure by figure ------------------------------------------------------------------------------
def test_symbol_size(stats):
    # Size: longer side of the ink box 12 / 15 / 17 px at p10 / p50 / p90; +-1 px
    assert within(stats.size_p10, 12, 1) and within(stats.size_p50, 15, 1) and within(stats.size_p90, 17, 1)


def test_symbol_size_from_the_generator_boxes(generated):
    # the same figure from the generator's own ink boxes (35% of the image max, before noise); +-1 px
    b = generated.boxes
    side = np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])
    p10, p50, p90 = np.percentile(side, [10, 50, 90])
    assert within(p10, 12, 1) and within(p50, 15, 1) and within(p90, 17, 1)


def test_place(stats):
    # Place: centres between about 12 and 44 px (p5-p95) on both axes; +-2 px
    for low, high in ((stats.centre_x_p5, stats.centre_x_p95), (stats.centre_y_p5, stats.centre_y_p95)):
        assert within(low, 12, 2) and within(high, 44, 2)


def test_ink_seldom_touches_the_border(generated):
    # "ink seldom touches the border": under 1% of the symbols reach the outer pixel ring
    b = generated.boxes
    assert np.mean((b[..., :2] <= 0).any(-1) | (b[..., 2:] >= 56).any(-1)) < 0.01


def test_arrangement(stats):
    # median vertical offset 16 px, horizontal 13 px (+-1.5 px); ~10% stacked almost exactly (+-4 points)
    assert within(stats.dy_median, 16, 1.5) and within(stats.dx_median, 13, 1.5)
    assert stats.dy_median > stats.dx_median  # more often one above the other
    assert within(stats.stacked_share, 0.10, 0.04)


def test_mostly_separated(stats, generated):
    # "touching or overlapping pairs exist but are a minority": 2-20% of the images
    assert 0.02 <= stats.touching_share <= 0.20
    b = generated.boxes
    overlap = ((np.minimum(b[:, 0, 2], b[:, 1, 2]) > np.maximum(b[:, 0, 0], b[:, 1, 0]))
               & (np.minimum(b[:, 0, 3], b[:, 1, 3]) > np.maximum(b[:, 0, 1], b[:, 1, 1])))
    assert 0.02 <= overlap.mean() <= 0.20  # ink boxes overlapping


def test_rotation():
    # "most upright or turned a few degrees, roughly one in ten much further, some lying on their side"
    degrees = np.abs(np.rad2deg(_angles(20000, ComboStyle(), np.random.default_rng(0))))
    assert np.median(degrees) < 5
    assert within(np.mean(degrees > 15), 0.10, 0.03)
    assert np.mean(degrees > 75) > 0.01


def test_brightness(stats, generated):
    # every image scaled so that its brightest pixel is 255
    assert (generated.images.reshape(N_IMAGES, -1).max(1) == 255).all()
    # the dimmer symbol at roughly three quarters of the brighter: median ratio 0.75 +-0.07
    assert within(stats.dim_ratio_median, 0.75, 0.07)


def test_noise_regime_shares(stats, generated):
    # about 26% clean, 57% salt-and-pepper, 17% grey: +-4 points, measured from the images alone
    assert within(stats.clean_share, 0.26, 0.04)
    assert within(stats.salt_pepper_share, 0.57, 0.04)
    assert within(stats.grey_share, 0.17, 0.04)
    # and the measured regime agrees with the drawn one
    share = np.bincount(generated.noise, minlength=len(NOISE_REGIMES)) / N_IMAGES
    assert np.allclose(share, [0.26, 0.57, 0.17], atol=0.03)


def test_dots(stats):
    # 2.3-2.7% bright dots (median within 2.2-2.8%); images with dim dots keep 0.5-1.5% bright (p10 there)
    assert 0.022 <= stats.bright_dots_p50 <= 0.028
    assert 0.004 <= stats.bright_dots_p10 <= 0.016
    assert stats.bright_dots_p90 <= 0.028  # exact counts per image: no binomial scatter past 2.7%
    # bright dots at 255, or at about 176 (+-8) when the ink reaches 255: both kinds present
    assert 0.2 <= stats.dots_at_255_share <= 0.8
    assert within(stats.dot_level_below_ink, 176, 8)
    # as many dark dots punch holes into the strokes: holes in about 1% or more of the stroke pixels
    # (a hole counts only between two bright neighbours), against almost none on clean images
    assert stats.dark_holes_median >= 0.008 and stats.dark_holes_clean < 0.003


def test_grey_background(stats):
    # median dark 21-28 or light 49-63; standard deviation about 0.3 of the mean (+-0.05)
    assert 21 <= stats.grey_dark_median <= 28 and 49 <= stats.grey_light_median <= 63
    assert within(stats.grey_rel_std, 0.3, 0.05)


def test_clean_ink_is_dim_and_grainy(generated):
    # "the ink itself is dim and grainy after the scaling": far fewer grey levels than ink drawn at
    # full strength (a salt-and-pepper image whose ink reaches 255 has over 150)
    clean = generated.images[generated.noise == NOISE_REGIMES.index("clean")]
    levels = np.array([len(np.unique(image)) for image in clean])
    assert np.median(levels) < 120


# ---- measure_style on images of known construction ------------------------------------------------------
def _rectangle(canvas: np.ndarray, x0: int, y0: int, w: int, h: int, value: float) -> None:
    """A hollow rectangle with 2-px strokes (one symbol)."""
    canvas[y0 : y0 + h, x0 : x0 + w] = value
    canvas[y0 + 2 : y0 + h - 2, x0 + 2 : x0 + w - 2] = 0


def _known_set(seed: int = 0) -> np.ndarray:
    """60 images: two rectangles (10x14 at x 15, y 8, bright 255; 16x12 at x 25, y 30, at
    190), 20 clean, 20 with 2% bright dots away from the ink, 20 on a grey background
    (10 dark at median 25, 10 light at 56, std 0.3 of the median)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((60, 56, 56), np.float64)
    for image in images:
        _rectangle(image, 15, 8, 10, 14, 255)
        _rectangle(image, 25, 30, 16, 12, 190)
    far = np.ones((56, 56), bool)
    far[8 - 4 : 8 + 14 + 4, 15 - 4 : 15 + 10 + 4] = False
    far[30 - 4 : 30 + 12 + 4, 25 - 4 : 25 + 16 + 4] = False
    spots = np.argwhere(far)
    for image in images[20:40]:
        chosen = spots[rng.choice(len(spots), size=int(0.02 * len(spots)), replace=False)]
        image[chosen[:, 0], chosen[:, 1]] = 255
    for k, image in enumerate(images[40:]):
        median = 25.0 if k < 10 else 56.0
        background = np.clip(median * (1 + 0.3 * rng.standard_normal((56, 56))), 0, 255)
        images[40 + k] = np.where(image > 0, image, background)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def test_measure_style_on_known_images():
    s = measure_style(_known_set())
    assert s.count == 60
    # sizes: longer sides 14 and 16 px, every image
    assert (s.size_p10, s.size_p50, s.size_p90) == (14, 15, 16)
    # centres (20, 15) and (33, 36): offsets 13 and 21, nothing stacked or touching
    assert (s.centre_x_p5, s.centre_x_p95, s.centre_y_p5, s.centre_y_p95) == (20, 33, 15, 36)
    assert (s.dx_median, s.dy_median, s.stacked_share, s.touching_share) == (13, 21, 0, 0)
    assert s.dim_ratio_median == pytest.approx(190 / 255)
    # regimes read from the background alone
    assert (s.clean_share, s.salt_pepper_share, s.grey_share) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    # 2% of the free pixels are dots (a few pairs of adjacent dots are still dots)
    assert s.bright_dots_p50 == pytest.approx(0.02, rel=0.1)
    assert s.dots_at_255_share == 1
    assert s.grey_dark_median == pytest.approx(25, abs=1.5) and s.grey_light_median == pytest.approx(56, abs=2.5)
    assert s.grey_rel_std == pytest.approx(0.3, abs=0.03)
    assert s.dark_holes_median == 0  # no dark dots drawn
    assert s.clean_grey_levels == 3  # 0, 190 and 255


def test_measure_style_touching_and_stacked():
    images = np.zeros((4, 56, 56), np.uint8)
    for image in images[:2]:  # stacked exactly: same x, one above the other, apart
        _rectangle(image, 20, 6, 12, 14, 255)
        _rectangle(image, 20, 30, 12, 14, 255)
    for image in images[2:]:  # overlapping: one blob
        _rectangle(image, 20, 20, 12, 14, 255)
        _rectangle(image, 28, 26, 12, 14, 255)
    s = measure_style(images)
    assert s.touching_share == 0.5 and s.stacked_share == 1 and s.dx_median == 0 and s.dy_median == 24


def test_measure_style_dark_holes_counted():
    images = np.zeros((2, 56, 56), np.uint8)
    for image in images:
        image[10:40, 10:40] = 255  # a thick block: every inner pixel is inside a stroke
    images[1, 12:38:3, 12:38:3] = 0  # 81 holes punched in it
    s = measure_style(images)
    assert s.salt_pepper_share == 0  # no bright dots: still clean
    assert s.dark_holes_clean == pytest.approx(0.5 * 81 / 900, rel=0.05)  # median of 0 and 81/900


def test_measure_style_refuses_bad_input():
    with pytest.raises(DataError, match="uint8"):
        measure_style(np.zeros((3, 56, 56), np.float32))
    with pytest.raises(DataError, match="uint8"):
        measure_style(np.zeros((0, 56, 56), np.uint8))


def test_table_names_every_statistic(stats):
    table = format_table({"generated": stats, "again": stats})
    lines = table.splitlines()
    assert lines[0] == "| statistic | generated | again | original (ORIGINAL_DATA.md) |"
    assert len(lines) == 3 + len(ORIGINAL_FIGURES)
    assert all(line.count("|") == 5 for line in lines)  # no stray pipes inside a cell
    assert "| symbol size p50 (px) | 15.0 | 15.0 | 15 |" in lines
    assert len(stats.summary().splitlines()) == 4
