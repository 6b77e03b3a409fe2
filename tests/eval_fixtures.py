"""A tiny trained run shared by the predict/evaluate/report/export tests.

Import the fixture into a test module with `from eval_fixtures import tiny_run`.
The run is built once per session (about 10 s on two cores): a small Combo set and a
width-8 model trained one short epoch per phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from semilabel.config import Config, apply_overrides, load_config
from semilabel.data.schema import LabelSchema
from semilabel.models.checkpoint import build_model, checkpoint_meta, save_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
N_TEST = 60


@dataclass(frozen=True)
class TinyRun:
    data: Path  # original-layout folder (images_test.pkl + labels_test.pkl inside)
    run: Path  # run folder with best.pt, metrics.csv, val_index.npy


def tiny_config(**overrides: object) -> Config:
    base = {"width": 8, "sesemi": True, "batch_size": 64, "method_options.sesemi.batch_size": 16,
            "method_options.pseudo_label.threshold": 0.0, "eval_batch_size": 64,
            "phases.supervised.epochs": 1, "phases.augmented.epochs": 1, "phases.pseudo.epochs": 1,
            "phases.pseudo.methods": ["fixmatch"], "method_options.fixmatch.threshold": 0.0}  # every method on
    return apply_overrides(load_config("pseudo"), {**base, **overrides})


def build_tiny_run(root: Path) -> TinyRun:
    from semilabel.api import make_dataset
    from semilabel.train.run import train_run

    banks = {}
    if (SHARED / "digits_mnist.npz").exists() and (SHARED / "letters_unipen.npz").exists():
        banks = {"digits": [SHARED / "digits_mnist.npz"], "letters": [SHARED / "letters_unipen.npz"]}
    data = make_dataset(root / "data", n_labeled=160, n_unlabeled=64, n_test=N_TEST, seed=0, **banks).out_dir
    # threshold 0 admits every unlabelled image, so the run records pseudo-label accuracy
    train_run(data, root / "run", tiny_config(), quiet=True)
    return TinyRun(data, root / "run")


def untrained_checkpoint(path: Path, schema: LabelSchema, **overrides: object) -> Path:
    """A freshly initialised model saved as a checkpoint (no training; for shape tests)."""
    config = tiny_config(**overrides)
    model = build_model(config, schema)
    save_checkpoint(path, {**checkpoint_meta(config, schema), "model": model.state_dict()})
    return path


_CACHE: dict[str, TinyRun] = {}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    if "run" not in _CACHE:  # several modules import this fixture; build it once
        _CACHE["run"] = build_tiny_run(tmp_path_factory.mktemp("tiny"))
    return _CACHE["run"]
