"""What a run writes is written whole and closed: no file object is left for the
garbage collector to close (and flush) after the atomic write has already synced it."""

from __future__ import annotations

import dataclasses
import gc
import warnings

import numpy as np

from semilabel.config import PhaseConfig
from semilabel.train.run import VAL_INDEX, train_run


def test_a_run_leaves_no_file_open_and_its_validation_index_loads(tiny_train_dir, tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, device="cpu", sesemi=False, phases=(PhaseConfig("only", epochs=0.5),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        run = train_run(tiny_train_dir, tmp_path / "run", config, quiet=True)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed
    assert np.array_equal(np.load(tmp_path / "run" / VAL_INDEX), run.fit.val_index) and len(run.fit.val_index)
