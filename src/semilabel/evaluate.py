"""Score predictions against labels (`semilabel evaluate`): exact-match and per-group
accuracy with 95% Wilson intervals, confusion matrices and the most confused pairs."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semilabel.data.readers import ORIGINAL_FILES, read_images, read_labels
from semilabel.data.schema import COMBO, LabelSchema, group_file_names
from semilabel.data.submission import file_column, read_predictions
from semilabel.errors import DataError
from semilabel.io_utils import atomic_write_text
from semilabel.metrics import confusion_matrix, wilson_interval

TOP_PAIRS = 10
SUMMARY_JSON = "evaluation.json"
PAIRS_CSV = "confused_pairs.csv"


@dataclass(frozen=True)
class Score:
    """A proportion of correct answers with its 95% Wilson interval."""

    name: str
    correct: int
    total: int
    low: float
    high: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass(frozen=True)
class GroupResult:
    score: Score
    classes: tuple[str, ...]
    confusion: np.ndarray  # (C, C) counts, rows true, columns predicted
    confused_pairs: list[tuple[str, str, int]]  # (true, predicted, count), most frequent first


@dataclass(frozen=True)
class Evaluation:
    count: int
    exact: Score
    groups: dict[str, GroupResult]
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        def score(s: Score) -> dict:
            return {"correct": s.correct, "total": s.total, "accuracy": s.accuracy, "ci95": [s.low, s.high]}

        return {"count": self.count, "exact": score(self.exact),
                **{name: {**score(g.score), "confused_pairs": [list(p) for p in g.confused_pairs]}
                   for name, g in self.groups.items()}}

    def table(self) -> str:
        """A compact plain-text table, plus the most confused pairs per group."""
        wide = max(8, *(len(name) for name in self.groups))  # group names of any length
        lines = [f"{'':<{wide}} {'correct':>8} {'of':>7} {'accuracy':>9}   95% interval"]
        for s in [self.exact, *(g.score for g in self.groups.values())]:
            lines.append(f"{s.name:<{wide}} {s.correct:>8} {s.total:>7} {s.accuracy:>9.2%}   "
                         f"{s.low:.2%} - {s.high:.2%}")
        for name, g in self.groups.items():
            pairs = ", ".join(f"{t}->{p} ({n})" for t, p, n in g.confused_pairs[:5]) or "none"
            lines.append(f"most confused {name} (true->predicted): {pairs}")
        return "\n".join(lines)


def score(name: str, right: np.ndarray) -> Score:
    correct, total = int(right.sum()), int(right.size)
    return Score(name, correct, total, *wilson_interval(correct, total))


def top_confused(confusion: np.ndarray, classes: tuple[str, ...], k: int = TOP_PAIRS) -> list[tuple[str, str, int]]:
    """The `k` largest off-diagonal cells, ties in (true, predicted) order."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    rows, cols = np.unravel_index(flat, off.shape)
    return [(classes[t], classes[p], int(off[t, p])) for t, p in zip(rows, cols) if off[t, p] > 0]


def evaluate_indices(predicted: np.ndarray, target: np.ndarray, schema: LabelSchema = COMBO) -> Evaluation:
    """Score (N, G) predicted class indices against (N, G) targets."""
    predicted, target = np.asarray(predicted, np.int64), np.asarray(target, np.int64)
    if predicted.shape != target.shape:
        raise DataError(f"{len(predicted)} predictions but {len(target)} labels "
                        f"(shapes {predicted.shape} and {target.shape})")
    if len(target) == 0:
        raise DataError("nothing to evaluate: no labelled images")
    right = predicted == target
    groups = {}
    for g, group in enumerate(schema.groups):
        cm = confusion_matrix(predicted[:, g], target[:, g], group.size)
        groups[group.name] = GroupResult(score(group.name, right[:, g]), group.classes, cm,
                                         top_confused(cm, group.classes))
    return Evaluation(len(target), score("exact", right.all(axis=1)), groups)


def confusion_csv(confusion: np.ndarray, classes: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    writer.writerows([name, *map(int, row)] for name, row in zip(classes, confusion))
    return out.getvalue()


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> Evaluation:
    """Write evaluation.json, confusion_<group>.csv and confused_pairs.csv into `out_dir`
    (overwriting earlier ones); return the evaluation with `files` filled in."""
    out_dir = Path(out_dir)
    files = []
    for g, file in zip(evaluation.groups.values(), group_file_names(evaluation.groups, "confusion_", ".csv")):
        path = out_dir / file
        atomic_write_text(path, confusion_csv(g.confusion, g.classes))
        files.append(path)
    pairs = io.StringIO()
    writer = csv.writer(pairs, lineterminator="\n")
    writer.writerow(["group", "true", "predicted", "count"])
    writer.writerows([name, *p] for name, g in evaluation.groups.items() for p in g.confused_pairs)
    atomic_write_text(out_dir / PAIRS_CSV, pairs.getvalue())
    atomic_write_text(out_dir / SUMMARY_JSON, json.dumps(evaluation.to_dict(), indent=2))
    files += [out_dir / PAIRS_CSV, out_dir / SUMMARY_JSON]
    return Evaluation(evaluation.count, evaluation.exact, evaluation.groups, files)


def _labels_for(images_path: Path, labels: str | Path | None, own: np.ndarray | None, schema: LabelSchema) -> np.ndarray:
    """Explicit labels, else the images' own (npz `y`, labels.csv), else the original
    folder's labels_test.pkl."""
    if labels is not None:
        return read_labels(labels, schema)
    if own is not None:
        return own
    beside = images_path / ORIGINAL_FILES["test_labels"]
    if images_path.is_dir() and beside.exists():
        return read_labels(beside, schema)
    raise DataError(f"{images_path}: holds no labels; pass --labels PATH")


def evaluate_run(run_or_ckpt: str | Path, images: str | Path, labels: str | Path | None = None,
                 out_dir: str | Path | None = None, tta: int | None = None, batch_size: int = 512,
                 device: str | None = None, resize: bool = True) -> Evaluation:
    """Predict `images` with a run's best checkpoint and score against `labels`
    (optional when the images carry their own). Writes files when `out_dir` is given.
    `tta` None: the run's own test-time augmentation (`Config.tta`); 0: plain prediction.
    `device` None: the run's own device when it is usable here. Images of another size
    than the training images are resized to it (one line on stderr; refused when not
    `resize`), of another channel count refused."""
    from semilabel.predict import predict_as_run
    from semilabel.models.checkpoint import model_from_checkpoint

    model, config, schema = model_from_checkpoint(run_or_ckpt)
    image_set = read_images(images, schema)
    target = _labels_for(Path(images), labels, image_set.labels, schema)
    if len(target) != len(image_set):
        raise DataError(f"{images}: {len(image_set)} images but {labels or 'its labels'} hold {len(target)} rows")
    pred = predict_as_run(model, config, image_set.images, image_set.source, batch_size, tta, device, resize=resize)
    result = evaluate_indices(pred.indices, target, schema)
    return write_evaluation(result, out_dir) if out_dir is not None else result


def _in_label_order(files: list[str] | None, predicted: np.ndarray, predictions_csv: str | Path,
                    labels: str | Path) -> np.ndarray:
    """The predictions' rows in the order of the labels' `file` column, where both name files."""
    label_files = file_column(labels)
    if files is None or label_files is None or files == label_files:
        return predicted
    row = {name: i for i, name in enumerate(files)}
    missing = [name for name in label_files if name not in row]
    if missing:
        raise DataError(f"{predictions_csv}: has no row for file {missing[0]!r} of {labels}")
    return predicted[[row[name] for name in label_files]]


def labels_schema(labels: str | Path) -> LabelSchema:
    """The schema labels are read with: the schema.yaml beside them, else a labels.csv's
    own columns (`file,<groups>`), else Combo's."""
    from semilabel.data.folders import read_labels_table, schema_of_table
    from semilabel.data.schema import SCHEMA_YAML, read_schema_yaml

    labels = Path(labels)
    if (labels.parent / SCHEMA_YAML).is_file():
        return read_schema_yaml(labels.parent / SCHEMA_YAML)
    if file_column(labels) is not None:
        return schema_of_table(read_labels_table(labels))
    return COMBO


def evaluate_predictions(predictions_csv: str | Path, labels: str | Path, out_dir: str | Path | None = None,
                         schema: LabelSchema | None = None) -> Evaluation:
    """Score a prediction CSV (any form `predict` writes) against labels (pickle, .npz or
    CSV); rows are matched by file name where both the CSV and the labels name files.
    `schema` None: the labels' own (`labels_schema`)."""
    schema = schema or labels_schema(labels)
    files, predicted = read_predictions(predictions_csv, schema)
    target = read_labels(labels, schema)
    if len(predicted) != len(target):
        raise DataError(f"{predictions_csv}: {len(predicted)} rows but {labels} holds {len(target)} labels")
    predicted = _in_label_order(files, predicted, predictions_csv, labels)
    result = evaluate_indices(predicted, target, schema)
    return write_evaluation(result, out_dir) if out_dir is not None else result
