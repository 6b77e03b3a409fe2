"""Runs and data that change underneath: the data a run was trained on is recorded and
checked on resume, a forced run starts from a clean folder, and the Python API checks
the run folder before it reads any data, as the command line does."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

from semilabel.cli import main
from semilabel.config import load_config
from semilabel.data.combo import make_combo, write_combo
from semilabel.errors import OutputExistsError
from semilabel.models.checkpoint import load_checkpoint
from semilabel.train.run import train_run

CONFIG = """\
width: 8
batch_size: 16
eval_batch_size: 64
val_fraction: 0.1
threads: 1
device: cpu
phases:
  - {name: supervised, epochs: 1}
"""


@pytest.fixture(scope="module")
def sets(synthetic_banks, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(config file, data, other data with the same sizes)."""
    root = tmp_path_factory.mktemp("sets")
    digits, letters = synthetic_banks
    for name, seed in (("data", 0), ("other", 1)):
        write_combo(make_combo([digits], [letters], n_labeled=40, n_unlabeled=0, n_test=0, seed=seed), root / name,
                    seed=seed)
    config = root / "tiny.yaml"
    config.write_text(CONFIG)
    return config, root / "data", root / "other"


def _train(data: Path, run: Path, config: Path, *extra: str) -> int:
    return main(["train", str(data), "--out", str(run), "--config", str(config), "--quiet", "--no-report", *extra])


def test_resume_on_other_data_is_refused_unless_allowed(sets, tmp_path, capsys):
    config, data, other = sets
    run = tmp_path / "run"
    assert _train(data, run, config) == 0
    stored = load_checkpoint(run / "last.pt")
    assert stored["image_shape"] == [56, 56]
    assert stored["data_fingerprint"]["labeled"]["images"] == [40, 56, 56]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), str(other), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {run / 'last.pt'}: trained on other data (the labeled images or labels have changed (same sizes)); "
        f"resume on the same data, or pass --allow-other-data to continue on this one"]
    assert main(["train", "--resume", str(run), "--quiet", "--no-report"]) == 0  # its own data, from the checkpoint
    assert main(["train", "--resume", str(run), str(other), "--allow-other-data", "--quiet", "--no-report"]) == 0


def test_resume_on_a_set_whose_glyph_ids_changed_is_refused(sets, tmp_path, capsys):
    """The same images and labels, other glyph ids: another validation split, so other data."""
    import shutil

    from semilabel.data.readers import DATASET_JSON, GLYPH_FILES, read_dataset
    from semilabel.errors import DataError
    from semilabel.train.fit import split_validation

    config, data, _ = sets
    run = tmp_path / "run"
    assert _train(data, run, config) == 0
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    ids = np.load(changed / GLYPH_FILES["labeled"])
    np.save(changed / GLYPH_FILES["labeled"], ids[::-1].copy())  # each image's glyphs another image's
    assert not np.array_equal(split_validation(40, 0.1, 0, ids)[0], split_validation(40, 0.1, 0, ids[::-1])[0])
    with pytest.raises(DataError, match=rf"its files do not match {DATASET_JSON} \(the labeled glyph ids, which "
                                        rf"decide the validation split, have changed\)"):
        read_dataset(changed)  # the set's own record catches it too
    (changed / DATASET_JSON).unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), str(changed), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {run / 'last.pt'}: trained on other data (the labeled glyph ids, which decide the validation split, "
        f"have changed); resume on the same data, or pass --allow-other-data to continue on this one"]
    (changed / GLYPH_FILES["labeled"]).unlink()
    assert main(["train", "--resume", str(run), str(changed), "--quiet", "--no-report"]) == 2
    assert "the labeled glyph ids, which decide the validation split, are missing" in capsys.readouterr().err


def test_force_clears_what_the_new_run_would_not_rewrite(sets, tmp_path):
    config, data, _ = sets
    run = tmp_path / "run"
    assert _train(data, run, config) == 0
    assert (run / "val_index.npy").exists()
    for folder in ("tensorboard", "evaluation", "report"):
        (run / folder).mkdir(exist_ok=True)
        (run / folder / "old-run.marker").write_text("from the old run")
    (run / "notes.txt").write_text("the user's own")
    assert _train(data, run, config.with_name("missing.yaml"), "--force") == 2  # a failed start deletes nothing
    assert (run / "evaluation" / "old-run.marker").exists()
    assert _train(data, run, config, "--force", "--set", "val_fraction=0") == 0
    assert not list(run.glob("*/old-run.marker"))
    assert not (run / "val_index.npy").exists() or len(np.load(run / "val_index.npy")) == 0
    assert (run / "notes.txt").read_text() == "the user's own"


def test_train_run_checks_the_run_folder_before_reading_the_data(sets, tmp_path):
    config, data, _ = sets
    run = tmp_path / "run"
    assert _train(data, run, config) == 0
    with pytest.raises(OutputExistsError, match="already holds a run"):
        train_run(tmp_path / "no-such-data", run, load_config("default"), quiet=True)


def test_a_malformed_fault_value_does_not_stop_a_real_run(sets, tmp_path, monkeypatch, capsys):
    from semilabel import faults

    config, data, _ = sets
    monkeypatch.setattr(faults, "_warned", set())
    monkeypatch.setenv(faults.ENV, "step@soon/KILL")
    assert _train(data, tmp_path / "run", config) == 0
    assert (tmp_path / "run" / "summary.json").exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if faults.ENV in line]
    assert warnings == [f"warning: {faults.ENV}='step@soon/KILL' ignored (expected [rankR:]POINT@N[/SIGNAL or "
                        f"SLEEPseconds])"]


def test_the_summary_gives_each_phases_length_in_steps_or_seconds(sets, tmp_path):
    config, data, _ = sets
    assert _train(data, tmp_path / "steps", config) == 0
    summary = json.loads((tmp_path / "steps" / "summary.json").read_text())
    assert summary["phase_lengths"] == {"unit": "steps", "supervised": summary["steps"]}  # one epoch
    assert _train(data, tmp_path / "timed", config, "--time-budget", "0.05") == 0
    lengths = json.loads((tmp_path / "timed" / "summary.json").read_text())["phase_lengths"]
    assert lengths == {"unit": "seconds", "supervised": pytest.approx(0.05 * 60 * 0.96, abs=0.05)}


def test_a_short_run_says_its_strong_phase_trained_weak(sets, tmp_path, capsys):
    config, data, _ = sets
    short = tmp_path / "short.yaml"
    short.write_text(CONFIG + "  - {name: augmented, epochs: 1, augment: strong}\nstrong_min_steps: 1000\n")
    assert _train(data, tmp_path / "run", short) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["strong_phases"] == {"policy": "weak", "forecast_steps": summary["steps"], "strong_min_steps": 1000}
    assert ("short run: 6 optimiser steps foreseen, under strong_min_steps 1,000, so the strong phases trained with "
            "the weak policy (--set strong_min_steps=0 keeps them strong)") in capsys.readouterr().out.splitlines()
    from semilabel.report import write_report

    page = html.unescape(write_report(tmp_path / "run").read_text())
    assert "the weak policy (short run: 6 optimiser steps foreseen, under strong_min_steps 1,000)" in page
