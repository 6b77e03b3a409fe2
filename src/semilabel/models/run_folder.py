"""What a training run leaves in its folder, by name: written by `semilabel.train.run`,
read back by predict, evaluate and the report (checkpoint names: `models.checkpoint`)."""

from __future__ import annotations

from semilabel.models.checkpoint import BEST, LAST

METRICS_CSV = "metrics.csv"
CONFIG_YAML = "config.yaml"
SUMMARY_JSON = "summary.json"
VAL_INDEX = "val_index.npy"
RUN_SUBFOLDERS = ("tensorboard", "evaluation", "report")  # written by training, `evaluate` and `report`
RUN_FILES = (LAST, BEST, METRICS_CSV, SUMMARY_JSON, VAL_INDEX, CONFIG_YAML)
RUN_NAMES = frozenset((*RUN_FILES, *RUN_SUBFOLDERS))  # everything a run folder holds of a run's own


def short_run_note(summary: dict) -> str | None:
    """'short run: N optimiser steps foreseen, under strong_min_steps M' when the run's
    strong phases trained with the weak policy (`summary["strong_phases"]`), else None."""
    strong = summary.get("strong_phases") or {}
    if strong.get("policy") != "weak":
        return None
    return (f"short run: {strong['forecast_steps']:,} optimiser steps foreseen, "
            f"under strong_min_steps {strong['strong_min_steps']:,}")
