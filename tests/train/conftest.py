"""A tiny real Combo dataset for training tests (seconds, CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from semilabel.config import Config, PhaseConfig, load_config
from semilabel.data.combo import make_combo
from semilabel.data.glyphs import load_glyph_bank
from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.schema import COMBO

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _banks():
    if (SHARED / "digits_mnist.npz").exists():
        return [load_glyph_bank(SHARED / "digits_mnist.npz", 10)], [load_glyph_bank(SHARED / "letters_unipen.npz", 26)]
    from semilabel.api import builtin_banks

    return builtin_banks()


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    """240 labelled, 120 unlabelled (with hidden labels), 60 test images."""
    digits, letters = _banks()
    splits = make_combo(digits, letters, n_labeled=240, n_unlabeled=120, n_test=60, seed=3)
    return Dataset(
        ImageSet(splits.labeled.images, splits.labeled.labels, "tiny-labeled"),
        ImageSet(splits.unlabeled.images, splits.unlabeled.labels, "tiny-unlabeled"),
        ImageSet(splits.test.images, splits.test.labels, "tiny-test"),
        COMBO,
    )


@pytest.fixture()
def tiny_config() -> Config:
    """The pseudo-label recipe shrunk (a narrow network, half an epoch per phase) in three
    phases (supervised; augmented; pseudo-labelled), with SESEMI on so that the
    pseudo_label and sesemi methods run; tests of FixMatch add it to a phase."""
    config = load_config("pseudo")
    phases = (PhaseConfig("supervised", epochs=0.5),
              PhaseConfig("augmented", epochs=0.5, augment="weak", pretext_source="unlabeled"),
              PhaseConfig("pseudo", epochs=0.5, augment="weak", pretext_source="unlabeled", pseudo_labels=True))
    return dataclasses.replace(config, width=8, batch_size=32, eval_batch_size=128, phases=phases,
                               method_options={"sesemi": {"batch_size": 16}, "pseudo_label": {"threshold": 0.0}},
                               threads=1, sesemi=True,
                               val_min=0,  # the plain fraction its tests count with (the floor: test_label_limit.py)
                               epoch_min_images=0,  # one pass an epoch, timed or not, as its tests count
                               strong_min_steps=0)  # its few steps would make every strong phase weak
