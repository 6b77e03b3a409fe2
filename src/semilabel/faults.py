"""Fault injection for the resume tests: real signals at exact points of a run.

`SEMILABEL_FAULT="POINT@N[/SIGNAL]"` makes the process send itself SIGNAL (default
KILL) the N-th time it reaches POINT. Points: `step` (after an optimiser step),
`relabel` (inside pseudo-labelling), `phase_end` (after a phase's last checkpoint),
`write:<file name>` (inside an atomic write, after the temporary file is complete and
before the rename). Unset, `reached` costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "SEMILABEL_FAULT"
_counts: dict[str, int] = {}


def reached(point: str) -> None:
    """Count a visit to `point`; deliver the configured signal on the chosen visit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, rest = spec.rpartition("@")
    if target != point:
        return
    count, _, sig = rest.partition("/")
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(count):
        os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))
