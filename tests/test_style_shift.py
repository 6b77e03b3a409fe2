"""Style variants and the style-shift benchmark (benchmarks/style_shift.py), on tiny data (no long training)."""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np
import pytest
from scripts import load_script
from eval_fixtures import tiny_run  # noqa: F401  (session fixture)

from semilabel.data.combo import ComboStyle, make_combo
from semilabel.data.glyphs import load_glyph_bank
from semilabel.data.style_variants import FONT_LETTERS, STYLE_VARIANTS, style_variant
from semilabel.errors import ConfigError, DataError


script = load_script("style_shift.py", "style_shift_script")
StyleScore, check_split, held_out_writers = script.StyleScore, script.check_split, script.held_out_writers
markdown_table, score_styles, style_images = script.markdown_table, script.score_styles, script.style_images


@pytest.fixture(scope="module")
def tiny_banks(shared_data):
    """The banks tiny_run's data was made from (seed 0)."""
    return [load_glyph_bank(shared_data / "digits_mnist.npz", 10)], [load_glyph_bank(shared_data / "letters_unipen.npz", 26)]


@pytest.fixture(scope="module")
def font_bank():
    from semilabel.data.embedded import embedded_letter_bank

    return embedded_letter_bank(variants_per_font=1)


# ---- variants ------------------------------------------------------------------------------------
def test_each_variant_changes_one_thing():
    default = ComboStyle()
    assert style_variant("default") == default and style_variant(FONT_LETTERS) == default
    changed = {}
    for name in STYLE_VARIANTS:
        style = style_variant(name)
        changed[name] = {f.name for f in dataclasses.fields(style) if getattr(style, f.name) != getattr(default, f.name)}
    assert changed["rotate45"] == changed["sideways"] == {"far_rotation_prob", "far_rotation_deg"}  # the rotation law
    assert changed["thin"] == changed["thick"] == {"stroke_probs"}
    assert changed["dense_dots"] == {"dot_density"} and changed["touching"] == {"touch_prob"}
    assert changed["grey_background"] == {"noise_probs"}
    assert style_variant("thin").stroke_probs == (1.0, 0.0, 0.0) and style_variant("rotate45").far_rotation_deg[1] == 45
    assert set(STYLE_VARIANTS) == {"default", "rotate45", "sideways", "thin", "thick", "dense_dots", "grey_background",
                                   "touching", FONT_LETTERS}


def test_unknown_variant_is_named():
    with pytest.raises(ConfigError, match="'wobbly'.*rotate45"):
        style_variant("wobbly")


# ---- the held-out writers ------------------------------------------------------------------------
def test_held_out_writers_are_those_of_make_combo(real_banks, mnist_bank):
    digits, letters = [mnist_bank, real_banks[0]], [real_banks[1]]
    splits = make_combo(digits, letters, n_labeled=50, n_unlabeled=0, n_test=80, seed=11)
    held = held_out_writers(digits, letters, seed=11)
    assert held.writers == splits.test_writers
    assert set(splits.test.glyphs[:, 0]) <= set(held.digit_index) and set(splits.test.glyphs[:, 1]) <= set(held.letter_index)
    assert not set(splits.labeled.glyphs[:, 1]) & set(held.letter_index)
    assert held_out_writers(digits, letters, seed=12).writers != held.writers


def test_check_split_against_the_runs_data(tiny_run, tiny_banks, tmp_path):
    assert check_split(tiny_run.data, held_out_writers(*tiny_banks, seed=0), seed=0) is True
    with pytest.raises(DataError, match="--seed 1"):
        check_split(tiny_run.data, held_out_writers(*tiny_banks, seed=1), seed=1)
    assert check_split(tmp_path, held_out_writers(*tiny_banks, seed=0), seed=0) is False  # no glyph index: unchecked


def test_style_images(tiny_banks, font_bank):
    held = held_out_writers(*tiny_banks, seed=0)
    a = style_images(held, "default", 40, seed=0)
    assert np.array_equal(a.images, style_images(held, "default", 40, seed=0).images)  # same arguments, same images
    assert not np.array_equal(a.images, style_images(held, "thick", 40, seed=0).images)
    assert set(a.writers.ravel()) <= held.writers
    grey = style_images(held, "grey_background", 40, seed=0)
    assert (np.median(grey.images.reshape(40, -1), axis=1) > 15).all()
    fonts = style_images(held, FONT_LETTERS, 40, seed=0, font_letters=font_bank)
    assert set(fonts.writers[:, 1]) <= set(font_bank.writers) and set(fonts.writers[:, 0]) <= held.writers
    with pytest.raises(DataError, match="font letter bank"):
        style_images(held, FONT_LETTERS, 5, seed=0)


# ---- scoring and the table -----------------------------------------------------------------------
def test_score_styles_on_a_tiny_run(tiny_run, tiny_banks, font_bank):
    held = held_out_writers(*tiny_banks, seed=0)
    scores = score_styles(tiny_run.run, held, seed=0, n=64, styles=["default", "rotate45", FONT_LETTERS],
                          font_letters=font_bank)
    assert [s.style for s in scores] == ["default", "rotate45", FONT_LETTERS]
    for s in scores:
        assert s.count == 64 and 0 <= s.exact <= min(s.digit, s.letter) <= 1
    # the same model on the same images scores the same
    again = score_styles(tiny_run.run, held, seed=0, n=64, styles=["rotate45"])
    assert again[0] == scores[1]


def test_markdown_table():
    scores = [StyleScore("default", 100, 0.70, 0.9, 0.75), StyleScore("thin", 100, 0.55, 0.8, 0.6),
              StyleScore("touching", 100, 0.66, 0.88, 0.7)]
    lines = markdown_table(scores).splitlines()
    assert lines[0].startswith("| style | what changes | images | exact | digit | letter | exact vs in-style |")
    assert lines[2].endswith("| 70.00% | 90.00% | 75.00% | – |")
    assert lines[3].endswith("| 55.00% | 80.00% | 60.00% | -15.0 |")
    assert lines[-1] == "Worst style: thin (-15.0 points against in-style); spread of exact-match over the styles: 15.0 points."


def test_default_note_is_dated_and_named_after_the_run(tmp_path):
    note = script.default_note(tmp_path / "Crops_s0", datetime.date(2026, 12, 6))
    assert note == script.NOTES / "2026-12-06-style-shift-crops-s0.md"


def test_script_end_to_end(tiny_run, shared_data, tmp_path, capsys):
    out = tmp_path / "style.md"
    argv = [str(tiny_run.run), "--seed", "0", "--digits", str(shared_data / "digits_mnist.npz"),
            "--letters", str(shared_data / "letters_unipen.npz"), "--n", "40", "--styles", "default", "thin",
            "--out", str(out)]
    assert script.main(argv) == 0
    page = out.read_text()
    title, _, measured = page.splitlines()[:3]
    assert title == "# Style shift of run `run`" and "split checked against the data's glyph index" in page
    assert measured.startswith("Measured at commit ") and f"({datetime.date.today()})" in measured
    assert "| thin | every stroke thin and faint | 40 |" in page and "Worst style: thin" in page
    assert capsys.readouterr().out.strip() == page.strip()
    # a seed that does not reproduce the run's split is one clear line, and nothing is written
    out.unlink()
    assert script.main(argv[:2] + ["1"] + argv[3:]) == 2
    assert "--seed 1" in capsys.readouterr().err and not out.exists()
