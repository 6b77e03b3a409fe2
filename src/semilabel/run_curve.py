"""The label curve a run is part of: test exact-match against the number of labelled
images, with and without the unlabelled ones, over the run and the runs beside it.

A run trained with `--labels N` is a point of a curve; its siblings (the other folders
of its parent) trained on the same data (the path their checkpoints name) are the other
points. Each run's `summary.json` gives its test score, and its `config.yaml` its label
count (`labeled_limit`, else every labelled image) and whether it trained on the
unlabelled images (a method or pseudo-label phase, and `use_unlabeled`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from semilabel.config import Config, load_config
from semilabel.errors import SemilabelError
from semilabel.models.checkpoint import load_checkpoint, resolve_checkpoint
from semilabel.models.run_folder import CONFIG_YAML, SUMMARY_JSON


@dataclass(frozen=True)
class CurvePoint:
    run: str  # the run folder's name
    labels: int  # labelled images it trained and validated on
    with_unlabeled: bool
    exact: float  # test exact-match


def trains_on_unlabeled(config: Config) -> bool:
    """Whether a run with this (resolved) config learns from the unlabelled images."""
    by_phase = any(p.methods or p.pseudo_labels for p in config.phases if p.enabled)
    return config.use_unlabeled and (config.methods not in ("none", "auto") or by_phase)


def _scored(run_dir: Path) -> tuple[float, Config] | None:
    """(test exact-match, config) of a scored run folder, None for any other folder."""
    try:
        exact = float(json.loads((run_dir / SUMMARY_JSON).read_text())["test"]["exact"])
        return exact, load_config(run_dir / CONFIG_YAML)
    except (OSError, ValueError, KeyError, TypeError, SemilabelError):
        return None


def _data_path(run_dir: Path) -> str | None:
    """The training data its checkpoint names, None without a readable one."""
    try:
        return str(load_checkpoint(resolve_checkpoint(run_dir)).get("data"))
    except SemilabelError:
        return None


def _point(run_dir: Path, exact: float, config: Config, full_labels: int) -> CurvePoint:
    labels = full_labels if config.labeled_limit is None else min(config.labeled_limit, full_labels)
    return CurvePoint(run_dir.name, labels, trains_on_unlabeled(config), exact)


def curve_points(run_dir: str | Path, data_path: str, full_labels: int) -> list[CurvePoint]:
    """The points of the curve `run_dir` (trained on `data_path`) is part of, itself included,
    sorted by labels; empty unless it trained with `--labels` and a sibling on the same data
    has another label count or trained the other way. A sibling's checkpoint is read only
    once its summary and config say it is a scored run."""
    run_dir = Path(run_dir)
    own = _scored(run_dir)
    if own is None or own[1].labeled_limit is None:
        return []
    points = [_point(run_dir, *own, full_labels)]
    for sibling in sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p != run_dir):
        scored = _scored(sibling)
        if scored is not None and _data_path(sibling) == str(data_path):
            points.append(_point(sibling, *scored, full_labels))
    if len({(p.labels, p.with_unlabeled) for p in points}) < 2:
        return []
    return sorted(points, key=lambda p: (p.labels, p.with_unlabeled, p.run))
