"""Accuracy metrics for grouped labels (pure NumPy; used by training and evaluation)."""

from __future__ import annotations

import math

import numpy as np


def accuracy_metrics(predicted: np.ndarray, target: np.ndarray, group_names: tuple[str, ...]) -> dict[str, float]:
    """Exact match (every group right) and per-group accuracy. (N, G) arrays."""
    if predicted.shape != target.shape:
        raise ValueError(f"predictions {predicted.shape} and targets {target.shape} differ in shape")
    if len(target) == 0:
        return {"exact": float("nan"), **{name: float("nan") for name in group_names}}
    right = predicted == target
    out = {"exact": float(right.all(axis=1).mean())}
    for g, name in enumerate(group_names):
        out[name] = float(right[:, g].mean())
    return out


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a proportion."""
    if total == 0:
        return float("nan"), float("nan")
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predicted."""
    return np.bincount(target * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
