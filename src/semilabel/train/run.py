"""A training run on disk: the run folder, metrics.csv, checkpoints, console output.

`train_run` is what `semilabel train` calls: read and validate the data, check the
run folder, train (`fit`), score the test part when it has labels, and write
`summary.json`. A notebook can call it directly.

Every write is atomic. metrics.csv is rewritten from the history stored in the
checkpoint, after last.pt, so a kill at any instant leaves a folder that
`--resume` continues without a lost or repeated row; best.pt is written before
last.pt, so a resumed run re-derives it identically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from semilabel.config import Config, save_config
from semilabel.data.npy import write_npy
from semilabel.data.fingerprint import describe_difference, fingerprint
from semilabel.data.readers import Dataset, read_dataset
from semilabel.data.schema import LabelSchema
from semilabel.train.method_choice import batch_note, resolve_methods, run_counts
from semilabel.device import (batch_size_for, check_precision, choose_precision, cuda_note, device_line, resolve_device,
                              with_batch_size)
from semilabel.distributed import DistInfo, all_reduce_sum, gather_ints
from semilabel.metrics import wilson_interval
from semilabel.errors import CheckpointError, Interrupted, OutputExistsError, SemilabelError
from semilabel.io_utils import atomic_write, atomic_write_text
from semilabel.metrics import accuracy_metrics
from semilabel.models.checkpoint import BEST, LAST, joint_head_note, load_checkpoint, save_checkpoint
from semilabel.models.inference import Predictions, predict
from semilabel.models.run_folder import (CONFIG_YAML, METRICS_CSV, RUN_FILES, RUN_NAMES, RUN_SUBFOLDERS, SUMMARY_JSON,
                                         VAL_INDEX)
from semilabel.train.fit import FitResult, TrainState, fit, run_settings
from semilabel.train.interrupt import stop_requested
from semilabel.train.recording import ProgressBar

MIN_FREE_BYTES = 200 * 2**20


class RunRecorder:
    """Writes what `fit` reports into the run folder, and shows progress."""

    def __init__(self, run_dir: Path, quiet: bool = False, tensorboard: bool = True, data_path: str | None = None,
                 data_facts: dict | None = None):
        self.run_dir = run_dir
        self.data_path = data_path  # stored in checkpoints so --resume finds the data
        self.data_facts = data_facts or {}  # the data's fingerprint and image shape, stored with every checkpoint
        self.quiet = quiet
        self._bar = ProgressBar()  # drawn on a terminal only: a log gets the epoch lines
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(run_dir / "tensorboard"))
            except Exception:  # TensorBoard is optional
                self._writer = None

    def progress(self, phase: str, done: float, total: float, rate: float, info: str) -> None:
        if not self.quiet:
            self._bar.show(phase, done, total, rate, info)

    def close_bar(self) -> None:
        self._bar.close()

    def epoch_end(self, row: dict, payload: Callable[[], dict], is_best: bool) -> None:
        data = {**payload(), "data": self.data_path, **self.data_facts}
        if is_best:
            self._save(BEST, {**data, "model": data["best_model"]})
        self._save(LAST, data)
        self.write_metrics(data["state"]["history"])
        if self._writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._writer.add_scalar(key, value, row["epoch"])
            self._writer.flush()
        if not self.quiet:
            self.close_bar()
            shown = [f"epoch {row['epoch']:>3}", f"{row['phase']:<10}"]
            for key, fmt in (("train_loss", "loss {:.3f}"), ("val_exact", "exact {:.2%}"), ("val_digit", "digit {:.2%}"),
                             ("val_letter", "letter {:.2%}"), ("pseudo_admitted", "pseudo {:.0f}"),
                             ("pseudo_accuracy", "({:.1%} right)"), ("images_per_s", "{:.0f} img/s")):
                if key in row:
                    shown.append(fmt.format(row[key]))
            print("  ".join(shown) + ("  *" if is_best else ""), file=sys.stderr, flush=True)

    def periodic(self, payload: Callable[[], dict]) -> None:
        self._save(LAST, {**payload(), "data": self.data_path, **self.data_facts})

    def _save(self, name: str, data: dict) -> None:
        try:
            save_checkpoint(self.run_dir / name, data)
        except OSError as exc:
            raise SemilabelError(f"{self.run_dir / name}: cannot write the checkpoint ({exc.strerror or exc}); "
                                 f"checkpoints already there are intact") from None

    def write_metrics(self, history: list[dict]) -> None:
        """Rewrite metrics.csv from the run's history (columns may grow between phases)."""
        columns: list[str] = []
        for r in history:
            columns += [k for k in r if k not in columns]
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        try:
            atomic_write_text(self.run_dir / METRICS_CSV, out.getvalue())
        except OSError as exc:
            raise SemilabelError(f"{self.run_dir / METRICS_CSV}: cannot write ({exc.strerror or exc})") from None

    def close(self) -> None:
        self.close_bar()
        if self._writer is not None:
            self._writer.close()


@dataclass
class RunResult:
    run_dir: Path
    fit: FitResult
    summary: dict
    test_predictions: Predictions | None = None  # of the dataset's test images, by the best model


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_run_dir(run_dir: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Refuse an unusable run folder before anything is read or written: a file in its
    place or above it, a folder already holding a run (without --force or --resume), a
    folder holding anything else (its files are the user's, never overwritten), no write
    permission, or too little free space."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"{run_dir}: exists and is not a folder")
    if not resume and (run_dir / LAST).exists() and not force:
        raise OutputExistsError(f"{run_dir}: already holds a run (use --resume {run_dir} to continue, or --force to overwrite)")
    if not resume and run_dir.is_dir() and not (run_dir / LAST).exists():
        _refuse_foreign_entries(run_dir, force)
    base = _existing_ancestor(run_dir.absolute())
    if not base.is_dir():
        raise SemilabelError(f"{run_dir}: cannot create the run folder ({base} is a file)")
    if not os.access(base, os.W_OK | os.X_OK) or os.statvfs(base).f_flag & os.ST_RDONLY:
        raise SemilabelError(f"{run_dir}: cannot write to the run folder ({base} is read-only)")
    usage = shutil.disk_usage(base)
    if usage.total == 0:  # /proc, /sys and the like
        raise SemilabelError(f"{run_dir}: cannot write to the run folder ({base} is not a disk)")
    free = usage.free
    if free < MIN_FREE_BYTES:
        raise SemilabelError(f"{run_dir}: only {free // 2**20} MiB free; training needs at least {MIN_FREE_BYTES // 2**20} MiB")
    return run_dir


def _refuse_foreign_entries(run_dir: Path, force: bool) -> None:
    """A folder without a run may only hold what a run writes: training never overwrites
    or clears a user's files (a config.yaml of theirs, a report/ folder, other work)."""
    foreign = sorted(e.name + ("/" if e.is_dir() else "") for e in run_dir.iterdir()
                     if e.name not in RUN_NAMES and not (e.name.startswith(".") and e.name.endswith(".tmp")))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputExistsError(f"{run_dir}: holds files that are not a run's ({shown}); train into a new or empty "
                                f"folder, such as {run_dir / 'run-1'}")
    leftovers = sorted(e.name for e in run_dir.iterdir() if e.name in RUN_NAMES)
    if leftovers and not force:
        raise OutputExistsError(f"{run_dir}: holds {', '.join(leftovers)} but no {LAST} (a run stopped before its "
                                f"first checkpoint?); pass --force to overwrite them")


def prepare_run_dir(run_dir: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Create the run folder after `check_run_dir`, prove it writable with a probe file,
    clear a forced-over run, and drop temporary files a killed run left behind."""
    run_dir = check_run_dir(run_dir, force=force, resume=resume)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise SemilabelError(f"{run_dir}: cannot write to the run folder ({exc.strerror})") from None
    for tmp in run_dir.glob(".*.tmp"):  # an atomic write cut short by a kill
        tmp.unlink(missing_ok=True)
    if force and not resume:  # everything the old run (and commands on it) wrote
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in RUN_SUBFOLDERS:
            if (run_dir / name).is_dir() and not (run_dir / name).is_symlink():
                shutil.rmtree(run_dir / name)
    return run_dir


def data_facts(dataset: Dataset) -> dict:
    """What a checkpoint records about its training data: the fingerprint, image shape (H, W)
    and channels (1 grey, 3 colour; absent in older checkpoints: 1)."""
    return {"data_fingerprint": fingerprint(dataset), "image_shape": list(dataset.image_shape),
            "channels": dataset.channels}


def _resume_payload(run_dir: Path, dataset: Dataset, allow_other_data: bool = False) -> dict:
    if not (run_dir / LAST).exists():
        raise CheckpointError(f"{run_dir}: nothing to resume (no {LAST})")
    payload = load_checkpoint(run_dir / LAST)
    try:
        stored = LabelSchema.from_dict(payload["schema"])
        TrainState(**payload["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{run_dir / LAST}: cannot resume from it (missing or unreadable {exc})") from None
    if stored != dataset.schema:
        raise CheckpointError(f"{run_dir / LAST}: trained for label groups {stored.names} {stored.sizes}, "
                              f"but this data has {dataset.schema.names} {dataset.schema.sizes}")
    before = payload.get("data_fingerprint")
    change = describe_difference(before, fingerprint(dataset)) if before else ""
    if change and not allow_other_data:
        raise CheckpointError(f"{run_dir / LAST}: trained on other data ({change}); resume on the same data, "
                              f"or pass --allow-other-data to continue on this one")
    return payload


def _agree(ok: bool, dist: DistInfo) -> bool:
    """True on every rank when `ok` holds on every rank (identity for one process)."""
    return bool(all_reduce_sum(torch.tensor([0.0 if ok else 1.0]), dist).item() == 0)


def _part_sizes(dataset: Dataset) -> tuple[int, int, int]:
    """(labelled, unlabelled, test) image counts."""
    return tuple(0 if part is None else len(part) for part in (dataset.labeled, dataset.unlabeled, dataset.test))


def kept_labels_note(config: Config, dataset: Dataset) -> str | None:
    """The line that says how many labelled images `labeled_limit` keeps (None: all)."""
    n = len(dataset.labeled)
    if config.labeled_limit is None or config.labeled_limit >= n:
        return None
    where = "join the unlabelled images without their labels" if config.use_unlabeled else "are not used (--no-unlabeled)"
    return (f"labels: keeping {config.labeled_limit:,} of the {n:,} labelled images (seed {config.seed}); "
            f"the other {n - config.labeled_limit:,} {where}")


def _summary(result: FitResult, config: Config, device: torch.device, precision, wall_seconds: float) -> dict:
    """What summary.json says of the training (the test scores are added by `_score_test`)."""
    summary = {
        "epochs": result.state.epoch,
        "steps": result.state.step,
        "train_seconds": round(result.state.train_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "images_per_second": round(result.images_per_second, 1),
        "device": str(device),
        "precision": precision.name,
        "batch_size": config.batch_size,
        # each phase's length as it ended up (a phase held at chance grows; see PhaseConfig)
        "phase_lengths": {"unit": "seconds" if config.time_budget is not None else "steps",
                          **{p.name: round(v, 1) for p, v in zip([p for p in config.phases if p.enabled],
                                                                 result.state.spans or [])}},
    }
    if result.state.short_run is not None:  # the strong phases' policy, as Config.strong_min_steps decided it
        summary["strong_phases"] = {"policy": "weak" if result.state.short_run else "strong",
                                    "forecast_steps": result.state.forecast_steps,
                                    "strong_min_steps": config.strong_min_steps}
    if device.type == "cuda":
        summary["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    if len(result.val_index) and result.state.best_exact > -math.inf:
        summary["best_val_exact"] = result.state.best_exact
        summary["val_images"] = len(result.val_index)
        summary["val_interval"] = [round(v, 4) for v in wilson_interval(round(result.state.best_exact * len(result.val_index)),
                                                                      len(result.val_index))]
        summary["left_chance_step"] = result.state.left_chance_step  # None: validation never passed 10%
    return summary


def _score_test(result: FitResult, dataset: Dataset, config: Config, summary: dict) -> Predictions | None:
    """The best model's predictions of the test images (None without any), as predict and
    evaluate make them; with their labels, its scores added to `summary`."""
    test = dataset.test
    test_predictions = None
    if test is not None:
        device = next(result.model.parameters()).device
        # scored: the model's own prediction and the one predict and evaluate give (the run's
        # test-time copies); kept: the latter. Unlabelled test images need only that one.
        copies = dict.fromkeys([0, config.tta] if test.labels is not None else [config.tta])
        for n in copies:
            test_predictions = predict(result.model, test.images, config.eval_batch_size, device, tta=n,
                                       policy=config.weak_augment)
            if test.labels is not None:
                metrics = accuracy_metrics(test_predictions.indices, test.labels, dataset.schema.names)
                summary["test_tta" if n else "test"] = {**metrics, "count": len(test), **({"copies": n} if n else {})}
    return test_predictions


def train_run(data: str | Path | Dataset, run_dir: str | Path, config: Config, force: bool = False,
              resume: bool = False, quiet: bool = False, dist: DistInfo | None = None,
              data_path: str | None = None, allow_other_data: bool = False) -> RunResult:
    """Train on `data` (a path any reader accepts, or a Dataset) into `run_dir`.

    The run folder is checked before the data is read (as the command line does). A
    resume refuses data other than the run's own unless `allow_other_data`.

    Ctrl-C (or SIGTERM) stops after the current step with last.pt saved, raising
    `Interrupted` whose message says how to resume.
    """
    if data_path is None and not isinstance(data, Dataset):
        data_path = str(data)
    dist = dist or DistInfo()
    device = resolve_device(config.device, dist)  # an unusable device or precision fails before anything is written
    check_precision(config.precision, device)
    run_dir = check_run_dir(run_dir, force=force, resume=resume)
    if resume and not (run_dir / LAST).exists():
        raise CheckpointError(f"{run_dir}: nothing to resume (no {LAST})")
    dataset = data if isinstance(data, Dataset) else read_dataset(data)
    decided = config.methods == "auto"  # a choice to explain in the first lines
    config, choice = resolve_methods(config, *run_counts(config, *_part_sizes(dataset)), device.type, dist.world_size)
    unset_batch = config.batch_size is None
    config = with_batch_size(config, device, choice.many_passes)
    batch_by_passes = unset_batch and config.batch_size != batch_size_for(None, device)  # a choice to explain
    payload = _resume_payload(run_dir, dataset, allow_other_data) if resume else None
    recorder = None
    problem: SemilabelError | None = None
    if dist.is_main:
        try:
            prepare_run_dir(run_dir, force=force, resume=resume)
            save_config(config, run_dir / CONFIG_YAML)
            recorder = RunRecorder(run_dir, quiet=quiet, data_path=data_path, data_facts=data_facts(dataset))
            if payload is not None:
                recorder.write_metrics(payload["state"]["history"])  # drop rows written after last.pt
        except SemilabelError as exc:
            problem = exc
    if not _agree(problem is None, dist):
        raise problem or SemilabelError(f"{run_dir}: rank 0 could not prepare the run folder")
    precision = choose_precision(config.precision, device)
    if dist.is_main and not quiet:
        note = cuda_note() if config.device == "auto" and device.type == "cpu" else None
        line = device_line(device, precision, config.batch_size)
        print(line if note is None else f"{line}\n{note}", file=sys.stderr, flush=True)
        kept = kept_labels_note(config, dataset)
        for line in (kept, choice.reason if decided else None,
                     batch_note(choice, config.batch_size) if batch_by_passes else None):
            if line is not None:
                print(line, file=sys.stderr, flush=True)
        joint = joint_head_note(config, dataset.schema)
        if joint is not None:
            print(joint, file=sys.stderr, flush=True)
    with run_settings(config, dist):  # the run's threads for training and scoring; the caller's after
        started = time.monotonic()
        try:
            with stop_requested() as stop:
                result = fit(config, dataset, recorder, resume=payload, dist=dist, stop=stop)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; {run_dir / LAST} is saved. Continue with: semilabel train --resume {run_dir}",
                              quiet=exc.quiet) from None
        finally:
            if recorder is not None:
                recorder.close()
        steps = gather_ints(result.state.step, dist)
        if len(set(steps)) > 1:
            raise SemilabelError(f"the processes ended at different steps {steps}; the run is not consistent")
        summary = _summary(result, config, device, precision, time.monotonic() - started)
        test_predictions = _score_test(result, dataset, config, summary) if dist.is_main else None
        if dist.is_main:
            atomic_write(run_dir / VAL_INDEX, lambda tmp: write_npy(tmp, result.val_index))
            atomic_write_text(run_dir / SUMMARY_JSON, json.dumps(summary, indent=2))
        return RunResult(run_dir, result, summary, test_predictions)
