"""When the training loop hands its recorder what it made: the progress line, `last.pt`
inside an epoch, and each epoch's row with its checkpoint. Only the main rank records."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

PROGRESS_SECONDS = 0.5  # the progress bar is updated at most this often


class Recorder(Protocol):
    """Receives what the loop produces; only called on the main rank."""

    def epoch_end(self, row: dict, payload: Callable[[], dict], is_best: bool) -> None: ...

    def periodic(self, payload: Callable[[], dict]) -> None: ...

    def progress(self, phase: str, done: float, total: float, rate: float, info: str) -> None: ...


class RecordingSchedule:
    """Progress at most every PROGRESS_SECONDS (and at an epoch's last step: reading the
    loss waits for a GPU, so a few times a second, not every step); `last.pt` every
    `checkpoint_minutes` and every `checkpoint_every_steps` steps, and when stopping."""

    def __init__(self, recorder: Recorder | None, is_main: bool, payload: Callable[[], dict],
                 checkpoint_minutes: float, checkpoint_every_steps: int, clock: Callable[[], float]):
        self.recorder = recorder if is_main else None
        self.payload, self.clock = payload, clock
        self.minutes, self.every = checkpoint_minutes, checkpoint_every_steps
        self.last_save, self.shown = clock(), -math.inf

    def after_step(self, step: int, last_in_epoch: bool, stopping: bool,
                   progress: Callable[[], tuple[str, float, float, float, str]]) -> None:
        """`progress()` gives the recorder's progress arguments; called only when shown."""
        if self.recorder is None:
            return
        now = self.clock()
        if now - self.shown >= PROGRESS_SECONDS or last_in_epoch:
            self.shown = now
            self.recorder.progress(*progress())
        due = now - self.last_save > self.minutes * 60 or (self.every > 0 and step % self.every == 0)
        if due or stopping:
            self.recorder.periodic(self.payload)
            self.last_save = self.clock()

    def after_epoch(self, row: dict | None, is_best: bool, stopping: bool) -> None:
        """An epoch's row (None: no step since the last one) and its checkpoint."""
        if self.recorder is None:
            return
        if row is not None:
            self.recorder.epoch_end(row, self.payload, is_best)
            self.last_save = self.clock()
        elif stopping:
            self.recorder.periodic(self.payload)
