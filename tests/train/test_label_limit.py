"""`--labels N` (config `labeled_limit`) and the validation floor (`val_min`): the label
curve keeps N labelled images and passes the others on as unlabelled."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from semilabel.data.splits import split_validation, validation_size
from semilabel.train.fit import _Trainer
from semilabel.distributed import DistInfo


def test_the_kept_labels_are_a_seeded_subset_and_validation_lies_inside_it():
    train, val = split_validation(1000, 0.05, seed=4, keep=300, val_min=40)
    kept = np.union1d(train, val)
    assert len(kept) == 300 and len(val) == 40 and not np.intersect1d(train, val).size
    again = split_validation(1000, 0.05, seed=4, keep=300, val_min=40)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))
    other = np.union1d(*split_validation(1000, 0.05, seed=5, keep=300, val_min=40))
    assert not np.array_equal(kept, other)  # each seed draws its own labelled subset


def test_without_a_limit_or_a_floor_the_split_is_the_plain_fraction():
    train, val = split_validation(400, 0.1, seed=1)
    assert len(val) == 40 and len(train) == 360
    assert all(np.array_equal(a, b) for a, b in zip((train, val), split_validation(400, 0.1, 1, keep=400)))


@pytest.mark.parametrize("m, fraction, floor, expected", [
    (30000, 0.05, 200, 1500),  # the fraction is above the floor: unchanged
    (1000, 0.05, 200, 200),  # 50 raised to the floor
    (500, 0.05, 200, 100),  # the floor capped at 20% of the labelled images
    (10, 0.05, 200, 2),
    (3, 0.05, 0, 1),  # at least one
    (1000, 0.0, 200, 0),  # no validation asked: none
])
def test_the_validation_floor_and_its_cap(m, fraction, floor, expected):
    assert validation_size(m, fraction, floor) == expected


def test_the_labels_left_out_join_the_unlabelled_pool_without_being_learnt(tiny_dataset, tiny_config):
    config = dataclasses.replace(tiny_config, labeled_limit=100, val_min=20, device="cpu")
    trainer = _Trainer(config, tiny_dataset, DistInfo(), None, None)
    assert len(trainer.val_index) == 20 and len(trainer.train_index) <= 80
    n_pool = len(tiny_dataset.unlabeled) + len(tiny_dataset.labeled) - len(trainer.train_index) - len(trainer.val_index)
    assert len(trainer.unlabeled) == n_pool
    # the pool's hidden labels are those of its images (they score pseudo-labels, never train)
    left_out = np.setdiff1d(np.arange(len(tiny_dataset.labeled)), np.r_[trainer.train_index, trainer.val_index])
    tail = trainer.unlabeled.images[len(tiny_dataset.unlabeled):]
    assert np.array_equal(tail, tiny_dataset.labeled.images[left_out])
    assert np.array_equal(trainer.unlabeled.labels[len(tiny_dataset.unlabeled):], tiny_dataset.labeled.labels[left_out])


@pytest.mark.parametrize("key, value, message", [
    ("labeled_limit", 1, "config key 'labeled_limit': must be at least 2 images"),
    ("labeled_limit", "all", "config key 'labeled_limit': expected an integer"),
    ("val_min", -1, "config key 'val_min': must be 0 \\(no floor\\) or more images"),
    ("epoch_min_images", -5, "config key 'epoch_min_images': must be 0"),
])
def test_a_label_limit_or_floor_out_of_range_is_refused_naming_the_key(key, value, message):
    from semilabel.config import apply_overrides, load_config
    from semilabel.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_config("default"), {key: value})


def test_train_labels_flag_refuses_a_bad_count_in_one_line_and_writes_nothing(tmp_path, capsys):
    from semilabel.cli import main

    assert main(["train", str(tmp_path / "no-data"), "--out", str(tmp_path / "run"), "--labels", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labeled_limit" in err[0] and not (tmp_path / "run").exists()
