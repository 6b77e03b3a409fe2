"""benchmarks/speed.py: its arguments and one cheap timing, end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def speed():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("speed_script", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclass looks the module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_every_subcommand_has_its_own_threads_default(speed):
    assert speed.parse(["compile"]).threads == 2 and speed.parse(["predict"]).threads == 0
    assert speed.parse(["cudnn-shapes", "--device", "cpu", "--threads", "1"]).threads == 1
    with pytest.raises(SystemExit):
        speed.parse(["compile", "--steps", "5"])  # the median skips five steps: nothing would be left


def test_median_seconds_skips_the_untimed_calls(speed):
    calls = []
    seconds = speed.median_seconds(lambda: calls.append(1), repeats=3, untimed=2)
    assert len(calls) == 5 and 0 <= seconds < 1


def test_predict_prints_a_row_per_recipe(speed, capsys):
    assert speed.main(["predict", "--n", "64", "--batch-size", "32", "--repeats", "1", "--threads", "1",
                       "--recipes", "compact (default)"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| compact (default) |")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "56 px"
