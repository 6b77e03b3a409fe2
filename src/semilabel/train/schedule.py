"""Learning-rate schedules as functions of progress (0 to 1).

Progress is steps done / steps planned, or, under a time budget, seconds spent /
seconds allotted; either way the same curve is followed. The curve spans the whole
run (`run_progress`) or restarts in every phase.
"""

from __future__ import annotations

import math


def lr_at(progress: float, peak: float, kind: str = "cosine", warmup: float = 0.05, floor: float = 0.01) -> float:
    """Learning rate at `progress` in [0, 1].

    cosine: linear warm-up over `warmup`, then cosine decay to `floor * peak`;
    onecycle: warm-up over 30% from peak/25, then cosine to peak/1e4;
    constant: `peak` throughout.
    """
    p = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return peak
    if kind == "onecycle":
        rise = 0.3
        if p < rise:
            return peak / 25 + (peak - peak / 25) * (1 - math.cos(math.pi * p / rise)) / 2
        q = (p - rise) / (1 - rise)
        return peak / 1e4 + (peak - peak / 1e4) * (1 + math.cos(math.pi * q)) / 2
    if kind != "cosine":
        raise ValueError(f"unknown schedule {kind!r}")
    if warmup > 0 and p < warmup:
        return peak * (0.1 + 0.9 * p / warmup)
    q = (p - warmup) / (1 - warmup) if warmup < 1 else 1.0
    return peak * (floor + (1 - floor) * (1 + math.cos(math.pi * q)) / 2)


def run_progress(phase: int, progress_in_phase: float, spans: list[float]) -> float:
    """Progress through the whole run, given progress through phase `phase` and each
    phase's planned length (`spans`: steps, or seconds under a time budget)."""
    p = min(max(progress_in_phase, 0.0), 1.0)
    total = sum(spans)
    return (sum(spans[:phase]) + p * spans[phase]) / total if total > 0 else p


def lengthen_span(spans: list[float], phase: int, amount: float, limit: float) -> bool:
    """Lengthen `spans[phase]` by up to `amount` (never past `limit`), taking the time
    from the later phases in proportion to their spans, so that the total, and with it
    a run-wide curve, stays the same. False when nothing could be added."""
    later = sum(spans[phase + 1:])
    amount = min(amount, limit - spans[phase], later)
    if amount <= 0:
        return False
    for i in range(phase + 1, len(spans)):
        spans[i] -= amount * spans[i] / later
    spans[phase] += amount
    return True
