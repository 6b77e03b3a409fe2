"""The phase clock: progress in steps or seconds, the places a phase ends, and a hold that
extends it; the callbacks' dispatch order."""

from __future__ import annotations

import pytest

from semilabel.config import PhaseConfig
from semilabel.train.callbacks import Callback, Callbacks
from semilabel.train.clock import PhaseClock
from semilabel.train.fit import TrainState


def _clock(spans, timed=False, hold=lambda clock, used: False, now=lambda: 0.0, **state) -> PhaseClock:
    clock = PhaseClock(TrainState(spans=list(spans), **state), timed, steps_per_epoch=8, now=now,
                       agree=lambda value: value, hold=hold)
    clock.start()
    return clock


def test_in_steps_a_phase_ends_before_the_step_past_its_plan_or_with_the_epoch_that_reaches_it():
    clock = _clock([4, 12])
    assert not clock.ends_before_step() and clock.progress == 0.0
    clock.state.step_in_epoch = 3
    assert not clock.ends_before_step() and clock.progress == 0.75 and clock.used() == 3
    assert clock.curve("run") == pytest.approx(3 / 16) and clock.curve("phase") == 0.75
    clock.state.step_in_epoch = 4
    assert clock.ends_before_step() and clock.ended
    whole = _clock([8, 8], epoch_in_phase=1)  # its first epoch just closed: 8 steps of 8
    assert not whole.ends_before_epoch()  # that place is the time budget's
    assert whole.ends_with_epoch() and whole.ended
    assert not _clock([8, 8]).ends_with_epoch()
    assert _clock([0, 8]).empty(PhaseConfig("p", epochs=0)) and not _clock([0.4, 8]).empty(PhaseConfig("p", epochs=0.1))
    assert _clock([0.4, 8]).span == 1  # at least one step


def test_a_hold_extends_the_phase_from_the_later_ones():
    asked = []

    def hold_once(clock, used):
        asked.append(used)
        return len(asked) == 1 and clock.extend(2, 10)

    clock = _clock([4, 12], hold=hold_once, step_in_epoch=4)
    assert not clock.ends_before_step()  # held: 6 steps now, taken from the next phase
    assert clock.state.spans == [6, 10] and clock.progress == pytest.approx(4 / 6)
    clock.state.step_in_epoch = 6
    assert clock.ends_before_step() and asked == [4.0, 6.0]


def test_in_seconds_progress_is_the_agreed_time_and_the_budget_is_checked_at_an_epochs_start():
    now = [100.0]
    clock = _clock([10.0, 20.0], timed=True, now=lambda: now[0])
    now[0] = 104.0
    assert not clock.ends_before_step() and clock.progress == pytest.approx(0.4)
    clock.charge_step(began=103.0)
    assert clock.state.phase_seconds == 4.0 and clock.state.train_seconds == 1.0
    now[0] = 111.0  # validation and relabelling: counted when the epoch settles
    clock.settle()
    assert clock.state.phase_seconds == 11.0 and clock.used() == 11.0
    assert not clock.ends_with_epoch()  # that place is the step plan's
    assert clock.ends_before_epoch() and clock.ended
    assert _clock([0.0, 20.0], timed=True).empty(PhaseConfig("p"))
    assert not _clock([10.0, 20.0], timed=True, phase_seconds=10.0).empty(PhaseConfig("p"))  # spent: ends in the loop


class _Note(Callback):
    def __init__(self, name, log, holds=False):
        self.name, self.log, self.holds = name, log, holds

    def step_end(self, trainer):
        self.log.append(self.name)

    def phase_spent(self, trainer, clock, used):
        self.log.append(f"{self.name} spent")
        return self.holds


def test_callbacks_act_in_order_and_every_one_hears_that_a_phase_is_spent():
    log = []
    callbacks = Callbacks(_Note("a", log, holds=True), _Note("b", log))
    callbacks.step_end(None)
    assert callbacks.phase_spent(None, None, 1.0) is True
    assert log == ["a", "b", "a spent", "b spent"]
    assert callbacks.phase_start(None, PhaseConfig("p")) == PhaseConfig("p")
