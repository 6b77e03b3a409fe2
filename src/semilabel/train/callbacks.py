"""The recipe's policies and the fault-injection points, as callbacks of the training loop.

The loop (`semilabel.train.fit`) only trains: it calls each callback at named moments,
in order, and each acts on the run's state there:

- `phase_start(trainer, phase)`: before a phase; returns the phase as it will train.
- `phase_spent(trainer, clock, used)`: the phase's planned length is used up (`used`
  steps or seconds); True keeps it going, after the callback `extend`ed the clock.
- `relabel(trainer)`: a method is about to prepare its epoch (e.g. relabel the unlabelled set).
- `step_end(trainer)`: an optimiser step is counted, before it is recorded.
- `epoch_end(trainer, val)`: the epoch is validated (`val`), before its row is made.
- `phase_end(trainer)`: the phase's last row and checkpoint are recorded.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from semilabel import faults
from semilabel.config import PhaseConfig
from semilabel.train.clock import PhaseClock, forecast_steps

if TYPE_CHECKING:
    from semilabel.train.fit import _Trainer


class Callback:
    """Does nothing at every moment; a policy overrides the moments it acts at."""

    def phase_start(self, trainer: _Trainer, phase: PhaseConfig) -> PhaseConfig:
        return phase

    def phase_spent(self, trainer: _Trainer, clock: PhaseClock, used: float) -> bool:
        return False

    def relabel(self, trainer: _Trainer) -> None:
        pass

    def step_end(self, trainer: _Trainer) -> None:
        pass

    def epoch_end(self, trainer: _Trainer, val: dict[str, float]) -> None:
        pass

    def phase_end(self, trainer: _Trainer) -> None:
        pass


class Callbacks(Callback):
    """Several callbacks as one, called in their order at every moment."""

    def __init__(self, *items: Callback):
        self.items = items

    def phase_start(self, trainer, phase):
        for item in self.items:
            phase = item.phase_start(trainer, phase)
        return phase

    def phase_spent(self, trainer, clock, used):
        held = False
        for item in self.items:  # every one hears it, e.g. to trim an overrun
            held = item.phase_spent(trainer, clock, used) or held
        return held

    def relabel(self, trainer):
        for item in self.items:
            item.relabel(trainer)

    def step_end(self, trainer):
        for item in self.items:
            item.step_end(trainer)

    def epoch_end(self, trainer, val):
        for item in self.items:
            item.epoch_end(trainer, val)

    def phase_end(self, trainer):
        for item in self.items:
            item.phase_end(trainer)


class FaultPoints(Callback):
    """Where `SEMILABEL_FAULT` can stop a run (see semilabel.faults): after a step, before a
    method prepares its epoch, and after a phase's last checkpoint."""

    def relabel(self, trainer):
        faults.reached("relabel")

    def step_end(self, trainer):
        faults.reached("step")

    def phase_end(self, trainer):
        faults.reached("phase_end")


@dataclasses.dataclass
class ShortRunSwitch(Callback):
    """A run forecast to make fewer than `least` optimiser steps trains its strong phases
    with the weak policy (Config.strong_min_steps); decided once, as the first strong
    phase starts, and kept in the state (`short_run`, `forecast_steps`)."""

    least: int

    def phase_start(self, trainer, phase):
        state = trainer.state
        if phase.augment != "strong" or self.least <= 0:
            return phase
        if state.short_run is None:
            state.forecast_steps = forecast_steps(state.step, state.spans, state.phase, state.phase_seconds,
                                                  trainer.budgets is not None)
            state.short_run = state.forecast_steps is not None and state.forecast_steps < self.least
        return dataclasses.replace(phase, augment="weak") if state.short_run else phase


@dataclasses.dataclass
class HoldUntilOffChance(Callback):
    """A phase with `hold_until_off_chance` goes on past its span while validation is at
    chance: it grows past what it used, `share` of the run at a time, from the later
    phases, up to `max_fraction` of the run (Config.hold_max_fraction). Once it ends,
    its last step's overrun is taken from the later phases too."""

    share: float
    max_fraction: float

    def phase_spent(self, trainer, clock, used):
        if not trainer.phases[clock.index].hold_until_off_chance:
            return False
        spans, i = trainer.state.spans, clock.index
        total = sum(spans)
        if trainer.state.left_chance_step is None and len(trainer.val_x):
            while spans[i] <= used:
                if not clock.extend(self.share * total, self.max_fraction * total):
                    break
            else:
                return True
        clock.extend(used - spans[i], used)
        return False


@dataclasses.dataclass
class PlateauWatch(Callback):
    """Records `left_chance_step`, the first step whose validation exact-match is above
    `chance_exit`: every `every` steps until then on the first `images` validation
    images (0: never), and at each epoch's end on its validation."""

    every: int
    images: int
    chance_exit: float

    def step_end(self, trainer):
        self.watch(trainer)

    def epoch_end(self, trainer, val):
        self.watch(trainer, val)

    def watch(self, trainer: _Trainer, val: dict[str, float] | None = None) -> None:
        state = trainer.state
        if state.left_chance_step is not None or len(trainer.val_x) == 0:
            return
        if val is None:
            if self.every <= 0 or state.step % self.every:
                return
            exact = trainer.val_exact(self.images)
        else:
            exact = val.get("val_exact", 0.0)
        if exact > self.chance_exit:
            state.left_chance_step = state.step
