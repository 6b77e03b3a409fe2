"""Fault injection for the resume and torchrun tests: real signals and delays at
exact points of a run.

`SEMILABEL_FAULT="[rankR:]POINT@N[/ACTION]"` acts the N-th time the process reaches
POINT. ACTION is a signal name (default KILL), sent to the process itself, or
`SLEEP<seconds>` (e.g. `SLEEP0.5`), a delay on the N-th visit and every later one.
With `rankR:` only the torchrun process of rank R acts. Points: `step` (after an
optimiser step), `relabel` (inside pseudo-labelling), `phase_end` (after a phase's
last checkpoint), `write:<file name>` (inside an atomic write, after the temporary
file is complete and before the rename), `rename:<file name>` (as a staged set's
file is renamed into place).

A value that does not parse is ignored with one warning on stderr: it never stops a
real run. Unset, `reached` costs one environment lookup.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass

ENV = "SEMILABEL_FAULT"
_SPEC = re.compile(r"(?:rank(?P<rank>\d+):)?(?P<point>.+)@(?P<count>[1-9]\d*)(?:/(?P<action>[A-Z0-9.]+))?")
_counts: dict[str, int] = {}
_warned: set[str] = set()


@dataclass(frozen=True)
class Fault:
    point: str
    count: int
    rank: int | None = None
    signal: signal.Signals | None = None  # None: sleep
    sleep: float = 0.0


def parse(spec: str) -> Fault | None:
    """The fault `spec` describes, or None (with one warning per value) when malformed."""
    m = _SPEC.fullmatch(spec.strip())
    action = (m.group("action") or "KILL") if m else ""
    fault = None
    if m and action.startswith("SLEEP"):
        try:
            fault = Fault(m["point"], int(m["count"]), _rank(m["rank"]), None, float(action[5:]))
        except ValueError:
            fault = None
    elif m and isinstance(getattr(signal, f"SIG{action}", None), signal.Signals):
        fault = Fault(m["point"], int(m["count"]), _rank(m["rank"]), getattr(signal, f"SIG{action}"))
    if fault is None and spec not in _warned:
        _warned.add(spec)
        print(f"warning: {ENV}={spec!r} ignored (expected [rankR:]POINT@N[/SIGNAL or SLEEPseconds])",
              file=sys.stderr)
    return fault


def _rank(text: str | None) -> int | None:
    return None if text is None else int(text)


def reached(point: str) -> None:
    """Count a visit to `point`; act on the chosen visit (and after it, for a sleep)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    fault = parse(spec)
    if fault is None or fault.point != point:
        return
    if fault.rank is not None and str(fault.rank) != os.environ.get("RANK", "0"):
        return
    _counts[point] = _counts.get(point, 0) + 1
    if fault.signal is None:
        if _counts[point] >= fault.count:
            time.sleep(fault.sleep)
    elif _counts[point] == fault.count:
        os.kill(os.getpid(), fault.signal)
