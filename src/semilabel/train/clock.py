"""How long each phase runs: the run's plan, and the clock of the phase being trained.

A phase is measured in optimiser steps, or under a time budget in seconds. The plan
(`TrainState.spans`, saved with the state) gives each phase's length; the run-wide
learning-rate curve follows it, and a phase held past its length (`PhaseClock.extend`)
takes the time from the later phases, so the total stays the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from semilabel.config import Config, PhaseConfig
from semilabel.train.schedule import lengthen_span, run_progress

if TYPE_CHECKING:
    from semilabel.train.fit import TrainState


def phase_seconds(config: Config, phases: list[PhaseConfig]) -> list[float] | None:
    """Seconds per phase under `time_budget` (a 4% reserve covers the final evaluation)."""
    if config.time_budget is None:
        return None
    total = sum(p.time_fraction for p in phases) or 1.0
    budget = config.time_budget * 60 * 0.96
    return [budget * p.time_fraction / total for p in phases]


def plan_spans(phases: list[PhaseConfig], budgets: list[float] | None, steps_per_epoch: int) -> list[float]:
    """Each phase's planned length: its seconds under a time budget, else its steps."""
    if budgets is not None:
        return list(budgets)
    return [max(1, round(p.epochs * steps_per_epoch)) if p.epochs > 0 else 0 for p in phases]


def forecast_steps(step: int, spans: list[float], phase: int, phase_seconds: float, timed: bool) -> int | None:
    """The run's optimiser steps as foreseen at `step`, in phase `phase` after `phase_seconds`
    of it: without a time budget the planned steps (`spans` in steps), with one the steps
    so far plus the seconds left at the pace so far (None before any step is timed)."""
    if not timed:
        return round(sum(spans))
    elapsed = sum(spans[:phase]) + phase_seconds
    if step == 0 or elapsed <= 0:
        return None
    return round(step + max(0.0, sum(spans) - elapsed) * step / elapsed)


class PhaseClock:
    """The current phase's progress, and the four places where it ends.

    Progress is steps done / planned steps, or seconds spent / seconds allotted (rank
    0's reading on every rank, through `agree`). When the phase is spent, `hold(clock,
    used)` may keep it going (after `extend`ing it); otherwise the clock has `ended`.
    `now` is read for every time measurement, so a stand-in clock can drive a test.
    """

    def __init__(self, state: TrainState, timed: bool, steps_per_epoch: int, now: Callable[[], float],
                 agree: Callable[[float], float], hold: Callable[[PhaseClock, float], bool]):
        self.state, self.timed, self.steps_per_epoch = state, timed, steps_per_epoch
        self.now, self.agree, self.hold = now, agree, hold
        self.index = state.phase
        self.ended = False
        self.progress = 0.0  # as read before the coming step
        self.mark = 0.0  # when the time counted so far ends

    def start(self) -> None:
        """The phase's time runs from now."""
        self.mark = self.now()

    @property
    def span(self) -> float:
        """The phase's length as planned now: seconds, or steps (at least one)."""
        span = self.state.spans[self.index]
        return span if self.timed else max(1, span)

    def used(self) -> float:
        """Seconds spent, or steps done, in the phase."""
        state = self.state
        return state.phase_seconds if self.timed else state.epoch_in_phase * self.steps_per_epoch + state.step_in_epoch

    def empty(self, phase: PhaseConfig) -> bool:
        """Whether the phase has nothing to train: no epochs, or no time. One already spent
        (a resume from the checkpoint of the step that used up its time) is not: it ends
        in the loop, as the uninterrupted run ended it (the epoch's row and validation,
        the hold, the epoch count, which later shuffles follow)."""
        if self.timed:
            return self.state.spans[self.index] <= 0
        return phase.epochs <= 0

    def ends_before_epoch(self) -> bool:
        """Under a time budget, the time ran out while the last epoch closed (checked
        only at an epoch's start, so that no empty epoch is opened)."""
        state = self.state
        if not self.timed or state.step_in_epoch or state.phase_seconds < self.span:
            return False
        self.ended = not self.hold(self, state.phase_seconds)
        return self.ended

    def ends_before_step(self) -> bool:
        """Whether the phase is spent before the coming step (`progress` is read here)."""
        while True:
            self.progress = self._read()
            if self.progress < 1:
                return False
            if not self.hold(self, self.progress * self.span):
                self.ended = True
                return True

    def ends_with_epoch(self) -> bool:
        """Without a time budget, whether the epoch just closed used up the planned steps."""
        if self.timed or self.ended:
            return self.ended
        used = self.state.epoch_in_phase * self.steps_per_epoch
        if used >= self.span:
            self.ended = not self.hold(self, used)
        return self.ended

    def extend(self, amount: float, limit: float) -> bool:
        """Lengthen the phase by up to `amount` (never past `limit`) from the later phases."""
        return lengthen_span(self.state.spans, self.index, amount, limit)

    def curve(self, scope: str) -> float:
        """Where the coming step is on the learning-rate curve (the run's, or the phase's)."""
        return run_progress(self.index, self.progress, self.state.spans) if scope == "run" else self.progress

    def charge_step(self, began: float) -> None:
        """Count the step that started at `began` in the training and the phase time."""
        now = self.now()
        self.state.train_seconds += now - began
        self.state.phase_seconds += now - self.mark
        self.mark = now

    def settle(self) -> None:
        """Count the time since the last step (validation, relabelling) in the phase, as
        rank 0 read it; the epoch's checkpoint writes then count towards the next."""
        self.state.phase_seconds = self.agree(self.state.phase_seconds + self.now() - self.mark)
        self.mark = self.now()

    def _read(self) -> float:
        if self.timed:
            return self.agree((self.state.phase_seconds + self.now() - self.mark) / self.span)
        return self.used() / self.span
