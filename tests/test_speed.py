"""benchmarks/speed.py: its arguments and one cheap timing, end to end."""

from __future__ import annotations

import sys

import pytest
from scripts import load_script


@pytest.fixture(scope="module")
def speed():
    yield load_script("speed.py", "speed_script")
    sys.modules.pop("speed_script", None)


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
