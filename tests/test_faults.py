"""Fault injection stays out of a real run's way: a value that does not parse is
ignored with one warning, and a well-formed one acts only where and when it says."""

from __future__ import annotations

import signal
import time

import pytest

from semilabel import faults


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(faults, "_counts", {})
    monkeypatch.setattr(faults, "_warned", set())
    monkeypatch.delenv("RANK", raising=False)


@pytest.mark.parametrize("spec", ["step", "step@", "step@x", "step@0", "step@2/NOSUCH", "step@1/SLEEPfast",
                                  "@3", "step@1/kill", "step@1/SLEEP"])
def test_a_malformed_value_is_ignored_with_one_warning(monkeypatch, capsys, spec):
    monkeypatch.setenv(faults.ENV, spec)
    sent = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    for _ in range(3):
        faults.reached("step")  # must not raise, nor signal
    assert not sent
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {faults.ENV}={spec!r} ignored (expected [rankR:]POINT@N[/SIGNAL or SLEEPseconds])"]


def test_a_signal_goes_on_the_chosen_visit_of_the_chosen_point_only(monkeypatch):
    monkeypatch.setenv(faults.ENV, "write:last.pt@2/INT")
    sent = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    for point in ("step", "write:last.pt", "step", "write:best.pt", "write:last.pt", "write:last.pt"):
        faults.reached(point)
    assert sent == [signal.SIGINT]


def test_a_rank_prefix_acts_on_that_torchrun_process_only(monkeypatch):
    monkeypatch.setenv(faults.ENV, "rank1:step@1/TERM")
    sent = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setenv("RANK", "0")
    faults.reached("step")
    assert sent == []
    monkeypatch.setenv("RANK", "1")
    faults.reached("step")
    assert sent == [signal.SIGTERM]


def test_sleep_delays_from_the_chosen_visit_on(monkeypatch):
    monkeypatch.setenv(faults.ENV, "step@2/SLEEP0.25")
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    for _ in range(4):
        faults.reached("step")
    assert slept == [0.25, 0.25, 0.25]
