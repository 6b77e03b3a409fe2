"""When the training loop hands its recorder what it made: the progress line, `last.pt`
inside an epoch, and each epoch's row with its checkpoint. Only the main rank records.
How progress shows where a person watches: `ProgressBar`."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Protocol, TextIO

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


class ProgressBar:
    """A phase's progress as a tqdm bar redrawn in place, on a terminal only.

    Written to a file or a pipe (a log, CI) every redraw would stay in it, one long line
    of carriage returns, so there nothing is drawn and the recorder's one line per epoch
    is the progress. `stream` None: standard error as it is when the bar is drawn.
    """

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._bar = None
        self._phase: str | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def show(self, phase: str, done: float, total: float, rate: float, info: str) -> None:
        isatty = getattr(self.stream, "isatty", None)
        if not (isatty and isatty()):
            return
        from tqdm import tqdm

        if self._bar is None or self._phase != phase:
            self.close()
            timed = isinstance(total, float)
            self._bar = tqdm(total=round(total, 1) if timed else total, desc=f"{phase:>10}", unit="s" if timed else "step",
                             dynamic_ncols=True, leave=False, file=self.stream,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
            self._phase = phase
        done = min(done, total)  # the last step of a timed phase may overrun its budget slightly
        self._bar.n = round(done, 1) if isinstance(done, float) else done
        self._bar.set_postfix_str(f"{rate:.0f} img/s {info}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
