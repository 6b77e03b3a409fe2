"""The probes' shared redraw of a generated set, and the two probes that use it, on tiny data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script
from eval_fixtures import tiny_run  # noqa: F401  (session fixture)

from semilabel.data.glyphs import load_glyph_bank
from semilabel.data.readers import read_dataset
from semilabel.errors import DataError

PROBES = Path(__file__).resolve().parents[1] / "benchmarks" / "probes"


@pytest.fixture(scope="module")
def probes():
    """Loader of a probe script by name; the probes import their sibling `common`."""
    sys.path.insert(0, str(PROBES))
    modules = {}

    def load(name: str):
        if name not in modules:
            modules[name] = load_script(f"probes/{name}.py", f"probe_{name}")
        return modules[name]

    yield load
    sys.path.remove(str(PROBES))
    for name in modules:
        sys.modules.pop(f"probe_{name}", None)


@pytest.fixture(scope="module")
def banks(shared_data):
    """The banks tiny_run's data was made from (seed 0), and their paths."""
    paths = shared_data / "digits_mnist.npz", shared_data / "letters_unipen.npz"
    return paths, [load_glyph_bank(paths[0], 10)], [load_glyph_bank(paths[1], 26)]


def test_redraw_gives_the_images_on_disk_and_how_they_were_drawn(probes, tiny_run, banks):
    common = probes("common")
    _, digits, letters = banks
    data = read_dataset(tiny_run.data)
    drawn = common.redraw_parts(tiny_run.data, data, digits, letters, ("labeled", "test"))
    assert set(drawn) == {"labeled", "test"}
    for part in ("labeled", "test"):
        on_disk = getattr(data, part)
        assert np.array_equal(drawn[part].images, on_disk.images) and np.array_equal(drawn[part].labels, on_disk.labels)
        assert drawn[part].boxes.shape == (len(on_disk), 2, 4)  # the records the disk does not hold


def test_redraw_refuses_other_banks_or_no_seed(probes, tiny_run, banks, shared_data, tmp_path):
    common = probes("common")
    _, digits, letters = banks
    data = read_dataset(tiny_run.data)
    other_digits = [load_glyph_bank(shared_data / "digits_unipen.npz", 10)]
    with pytest.raises(DataError, match="labeled images are not the ones these glyph banks and seed 0 draw"):
        common.redraw_parts(tiny_run.data, data, other_digits, letters, ("labeled",))
    with pytest.raises(DataError, match="dataset.json: missing"):
        common.redraw_parts(tmp_path, data, digits, letters, ("test",))


def test_error_sources_splits_a_runs_errors(probes, tiny_run, banks, shared_data, capsys):
    error_sources = probes("error_sources")
    (digit_path, letter_path), _, _ = banks
    argv = [str(tiny_run.data), str(tiny_run.run), "--digits", str(digit_path), "--letters", str(letter_path),
            "--threads", "1"]
    assert error_sources.run_cli(error_sources.main, argv) == 0
    out = capsys.readouterr().out
    assert "| property | bucket | share | digit | letter | exact | points lost |" in out
    # the buckets of one property add up to the whole test part
    shares = [float(line.split("|")[3].strip(" %")) for line in out.splitlines() if line.startswith("| noise |")]
    assert shares and sum(shares) == pytest.approx(100, abs=0.3)
    # a bank the data was not made from: one line, exit status 2
    wrong = argv[:3] + [str(shared_data / "digits_unipen.npz")] + argv[4:]
    assert error_sources.run_cli(error_sources.main, wrong) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "seed 0 draw" in err[0]


def test_glyph_ceiling_reads_true_box_crops(probes, tiny_run, banks, capsys):
    glyph_ceiling = probes("glyph_ceiling")
    (digit_path, letter_path), _, _ = banks
    argv = [str(tiny_run.data), "--digits", str(digit_path), "--letters", str(letter_path), "--symbols", "true-boxes",
            "--minutes", "0.01", "--batch", "32", "--threads", "1"]
    assert glyph_ceiling.run_cli(glyph_ceiling.main, argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.0")]
    assert rows, "no check row printed"
    step = int(rows[-1].split("|")[2].replace(",", ""))
    assert step >= 1
