"""The training loop: phases, semi-supervised methods, augmentation, EMA, time budget.

`fit` returns its results and writes nothing: a `Recorder` (see `semilabel.run`)
receives epoch rows and checkpoint payloads and decides what to store; when it hears
of them is `semilabel.train.recording`'s job. The trainer's step is labelled rows +
each method's rows -> one forward -> each method's loss (`semilabel.train.methods`).

Randomness is derived from (seed, epoch) for shuffles and (seed, step) for each
step's augmentation, pretext draws and dropout, so a run resumed at any step
continues exactly as the uninterrupted one would (on CPU, without a time budget),
and a checkpoint holds no generator state.
A checkpoint holds everything the current epoch has accumulated (loss sums, the
pseudo-label info, the last learning rate) and, at a phase's end, already points at
the next phase, so no metrics row is lost or repeated by a resume.

With several processes (torchrun), every rank makes the same global batch's random
draws but loads, augments, teacher-labels and trains on its share only (rows rank,
rank + W, ...); losses are normalised by the global batch and BatchNorm statistics are
synchronised, so W processes follow one process with the whole batch up to float
rounding, and each does 1/W of the work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from semilabel import faults
from semilabel.config import Config, PhaseConfig
from semilabel.data.augment_policy import apply_policy, preset
from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.splits import split_validation
from semilabel.device import autocast_dtype, check_precision, configure_for, optimizer_options, resolve_device, with_batch_size
from semilabel.distributed import DistInfo, all_reduce_sum, from_main
from semilabel.errors import ConfigError, DataError, Interrupted
from semilabel.metrics import accuracy_metrics
from semilabel.models.checkpoint import build_model, checkpoint_meta, uses_pretext_head
from semilabel.models.classifier import MultiHeadClassifier, combine_predictions
from semilabel.models.inference import Predictions, predict, to_input
from semilabel.train.ema import WeightEMA
from semilabel.train.losses import supervised_loss
from semilabel.train.recording import Recorder, RecordingSchedule
from semilabel.train.methods import EpochContext, Method, StepContext, create_method, phase_methods
from semilabel.train.schedule import lengthen_span, lr_at, run_progress
from semilabel.train.staging import gather, stage
from semilabel.train.sync_bn import convert_sync_batchnorm


PLATEAU_IMAGES = 256  # validation images scored by the start-up plateau check
CHANCE_EXIT = 0.10  # validation exact-match that counts as off the start-up plateau
HOLD_STEP = 0.01  # a phase held at chance grows by this share of the run at a time


@dataclass
class TrainState:
    """Where the run is; saved in checkpoints so `--resume` continues from it."""

    phase: int = 0  # index into the enabled phases
    epoch: int = 0  # epochs over the whole run (one cut short by a phase end counts)
    epoch_in_phase: int = 0
    step_in_epoch: int = 0  # steps already done in the current epoch
    step: int = 0  # optimiser steps over the whole run
    phase_seconds: float = 0.0  # time spent in the current phase (time-budget mode)
    train_seconds: float = 0.0
    images_seen: int = 0
    best_exact: float = -math.inf  # validation exact-match (minus train loss without validation)
    left_chance_step: int | None = None  # first step with validation exact-match above CHANCE_EXIT
    spans: list[float] | None = None  # each phase's planned length (seconds, or steps); a held phase grows
    short_run: bool | None = None  # decided as the first strong phase starts: it and later ones train weak
    forecast_steps: int | None = None  # the run's optimiser steps as forecast then (Config.strong_min_steps)
    history: list[dict] = field(default_factory=list)
    # the current epoch so far, so a resumed epoch reports the same row
    epoch_sums: dict[str, float] = field(default_factory=dict)  # summed loss parts (device tensors until saved)
    epoch_steps: int = 0
    epoch_lr: float = 0.0  # learning rate of the epoch's last step
    epoch_extra: dict[str, float] = field(default_factory=dict)  # what the methods reported at the epoch start

    def to_dict(self) -> dict:
        return {**self.__dict__, "epoch_sums": {k: float(v) for k, v in self.epoch_sums.items()}}


@dataclass
class FitResult:
    model: MultiHeadClassifier
    state: TrainState
    val_index: np.ndarray  # positions in the labelled set held out for validation
    best_model_state: dict[str, torch.Tensor]

    @property
    def images_per_second(self) -> float:
        return self.state.images_seen / max(self.state.train_seconds, 1e-9)


def _unlabeled_pool(dataset: Dataset, train_index: np.ndarray, val_index: np.ndarray,
                    with_test: bool = False) -> ImageSet | None:
    """The unlabelled images, plus the labelled ones that the validation split left out
    of training (they share a glyph with a validation image): those are used without
    their labels, which stay only to score pseudo-labels, like generated hidden labels.
    `with_test` adds the test images too (transductive training), their labels likewise
    only to score pseudo-labels."""
    labeled = dataset.labeled
    left_out = np.setdiff1d(np.arange(len(labeled)), np.concatenate([train_index, val_index]))
    extra = dataclasses.replace(labeled.subset(left_out), source=f"{labeled.source} (left out of training)")
    parts = [part for part in (dataset.unlabeled, extra, dataset.test if with_test else None)
             if part is not None and len(part)]
    if len(parts) <= 1:
        return parts[0] if parts else None  # one part: no copy
    hidden = None if any(p.labels is None for p in parts) else np.concatenate([p.labels for p in parts])
    source = " + ".join(dict.fromkeys(p.source for p in parts))
    return ImageSet(np.concatenate([p.images for p in parts]), hidden, source)


def pool_digest(pool: ImageSet | None) -> str | None:
    """A hash of the unlabelled pool's images: the methods' saved state (pseudo-labels are
    positions in the pool) belongs to the pool it was made on."""
    if pool is None:
        return None
    h = hashlib.blake2b(str(pool.images.shape).encode(), digest_size=16)
    h.update(np.ascontiguousarray(pool.images).data)
    return h.hexdigest()


def phase_seconds(config: Config, phases: list[PhaseConfig]) -> list[float] | None:
    """Seconds per phase under `time_budget` (a 4% reserve covers the final evaluation)."""
    if config.time_budget is None:
        return None
    total = sum(p.time_fraction for p in phases) or 1.0
    budget = config.time_budget * 60 * 0.96
    return [budget * p.time_fraction / total for p in phases]


def forecast_steps(step: int, spans: list[float], phase: int, phase_seconds: float, timed: bool) -> int | None:
    """The run's optimiser steps as foreseen at `step`, in phase `phase` after `phase_seconds`
    of it: without a time budget the planned steps (`spans` in steps), with one the steps
    so far plus the seconds left at the pace so far (None before any step is timed)."""
    if not timed:
        return round(sum(spans))
    elapsed = sum(spans[:phase]) + phase_seconds
    if step == 0 or elapsed <= 0:
        return None
    return round(step + max(0.0, sum(spans) - elapsed) * step / elapsed)


def _seeded(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0]))


def _make_optimizer(config: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    fused = optimizer_options(next(model.parameters()).device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, **fused)
    return torch.optim.AdamW(groups, lr=config.lr, **fused)


class _Trainer:
    """Holds the run's tensors and does one step / one epoch; `fit` drives it."""

    def __init__(self, config: Config, dataset: Dataset, dist: DistInfo, recorder: Recorder | None,
                 resume: dict | None):
        self.config, self.dataset, self.dist, self.recorder = config, dataset, dist, recorder
        self.schema = dataset.schema
        unknown = set(config.group_weights) - set(self.schema.names)
        for phase in config.phases:
            unknown |= set(phase.group_weights or {}) - set(self.schema.names)
        if unknown:
            raise ConfigError(f"config key 'group_weights': unknown group(s) {sorted(unknown)}; groups are {self.schema.names}")
        labeled = dataset.labeled
        if len(labeled) < 2:
            raise DataError(f"{labeled.source}: need at least 2 labelled images to train, found {len(labeled)}")
        self.device = resolve_device(config.device, dist)
        check_precision(config.precision, self.device)
        self.config = config = with_batch_size(config, self.device)
        self.train_index, self.val_index = split_validation(len(labeled), config.val_fraction, config.seed,
                                                            labeled.glyphs)
        self.train_x = torch.from_numpy(labeled.images[self.train_index])  # (N, H, W) uint8
        self.train_y = torch.from_numpy(labeled.labels[self.train_index])  # (N, G)
        self.val_x = labeled.images[self.val_index]
        self.val_y = labeled.labels[self.val_index]
        if config.unlabeled_test and config.use_unlabeled and (dataset.test is None or not len(dataset.test)):
            raise ConfigError(f"unlabeled_test (--unlabeled-test): {labeled.source} comes with no test images")
        self.unlabeled = (_unlabeled_pool(dataset, self.train_index, self.val_index, config.unlabeled_test)
                          if config.use_unlabeled else None)
        self.unl_x = torch.from_numpy(self.unlabeled.images) if self.unlabeled is not None else None
        self.pool_digest = pool_digest(self.unlabeled)
        self.train_x, self.train_y, self.unl_x = stage(self.device, self.train_x, self.train_y, self.unl_x)
        configure_for(self.device, config.cudnn_benchmark)
        self.phases = [p for p in config.phases if p.enabled]
        self.budgets = phase_seconds(config, self.phases)
        self.steps_per_epoch = max(1, math.ceil(len(self.train_x) / config.batch_size))

        torch.manual_seed(config.seed)
        self.model = build_model(config, self.schema, self.device).to(self.device)  # the layout of the run's device
        if config.weights:
            self.model.load_backbone_weights(config.weights)
        self.net: torch.nn.Module = self.model
        if dist.enabled:
            self.model = convert_sync_batchnorm(self.model, self.device.type)
            # the SESEMI head idles in a phase without pretext images, or on a rank without any
            idle = uses_pretext_head(config) and (config.pretext_batch_size < dist.world_size
                                                  or any("sesemi" not in phase_methods(config, p) for p in self.phases))
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=idle)
        self.optimizer = _make_optimizer(config, self.model)
        self.state = TrainState()
        # one instance per method name, shared by the phases that list it
        names = list(dict.fromkeys(n for p in self.phases for n in phase_methods(config, p)))
        self.methods: dict[str, Method] = {n: create_method(n, config) for n in names}
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.unl_hidden = (torch.from_numpy(self.unlabeled.labels)
                           if self.unlabeled is not None and self.unlabeled.labels is not None else None)
        (self.unl_hidden,) = stage(self.device, self.unl_hidden)  # the methods count right guesses there
        self.best_model_state = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}
        self.autocast = self._autocast_dtype()
        # fp16 needs loss scaling; disabled (bf16, fp32, CPU default) it passes straight through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16)
        if resume is not None:
            self._restore(resume)

    @property
    def eval_model(self) -> MultiHeadClassifier:
        """The weights that validate, teach and are kept as best: the EMA when there is one."""
        return self.ema.model if self.ema is not None else self.model

    # ---- checkpoint state ---------------------------------------------------------------
    def payload(self) -> dict:
        return {
            **checkpoint_meta(self.config, self.schema),
            "model": self.model.state_dict(),
            "best_model": self.best_model_state,
            "optimizer": self.optimizer.state_dict(),
            "state": self.state.to_dict(),
            "methods": {name: m.state_dict() for name, m in self.methods.items()},
            "unlabeled_pool": self.pool_digest,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }

    def _restore(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        self.best_model_state = payload.get("best_model") or self.best_model_state
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        methods = payload.get("methods") or {}
        if not self._same_pool(payload, methods):
            methods = {}  # made on another pool (a resume on other data): each method relabels this one
        for name, state in methods.items():
            if name in self.methods:
                self.methods[name].load_state_dict(state)
        if self.ema is not None and payload.get("ema"):
            self.ema.load_state_dict(payload["ema"])
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])

    def _same_pool(self, payload: dict, methods: dict) -> bool:
        """Whether the methods' saved state was made on this run's unlabelled pool. Checkpoints
        that do not record their pool: whether every saved position ("index") lies inside it."""
        if "unlabeled_pool" in payload:
            return payload["unlabeled_pool"] == self.pool_digest
        n = 0 if self.unlabeled is None else len(self.unlabeled)
        return all(int(state["index"].max()) < n for state in methods.values()
                   if isinstance(state, dict) and state.get("index") is not None and len(state["index"]))

    def _autocast_dtype(self) -> torch.dtype | None:
        return autocast_dtype(self.config.precision, self.device)

    # ---- one step -------------------------------------------------------------------------
    @property
    def rows(self) -> slice:
        """This rank's rows of every global batch: rank, rank + W, ..."""
        return slice(self.dist.rank, None, self.dist.world_size)

    def _augment(self, x: torch.Tensor, policy: str, gen: torch.Generator, batch: int) -> torch.Tensor:
        """`x`: this rank's rows of a global batch of `batch` images, augmented with that batch's draws."""
        if policy == "none":
            return x
        chosen = {"weak": self.config.weak_augment, "strong": self.config.strong_augment}.get(policy) or preset(policy)
        return apply_policy(x, chosen, generator=gen, batch=batch, rows=self.rows)

    @torch.no_grad()
    def _teacher(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-group probabilities (fp32) of the evaluation weights, in evaluation mode."""
        model = self.eval_model
        was = model.training
        model.eval()
        try:
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                features = model.forward_features(x)
            return combine_predictions(model.forward_head(features.float()))[1]  # heads and softmax in fp32
        finally:
            model.train(was)

    def step_context(self, phase: PhaseConfig, gen: torch.Generator) -> StepContext:
        return StepContext(self.config, phase, gen, self.device, self.config.batch_size, self.train_x, self.unl_x,
                           lambda x, policy, batch: self._augment(x, policy, gen, batch), self._teacher,
                           self.unl_hidden, self.rows)

    def step(self, phase: PhaseConfig, perm: np.ndarray, lr: float) -> dict[str, torch.Tensor]:
        """One optimiser step on global batch `state.step_in_epoch`; returns its loss parts.

        Every rank makes the whole global batch's draws (labelled rows, then each method's
        rows) from the same generator, but builds rows rank, rank + W, ... only; each loss
        divides by its global row count and DDP averages gradients, so the update is the
        global batch's. One forward pass serves all rows: label-head rows first, pretext
        rows last.
        """
        cfg, dist = self.config, self.dist
        gen = _seeded(cfg.seed, 1, self.state.step)
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)) + dist.rank)  # dropout, own masks per rank
        b = cfg.batch_size
        idx = torch.from_numpy(perm[self.state.step_in_epoch * b : (self.state.step_in_epoch + 1) * b])
        n_labeled = len(idx)
        idx = idx[self.rows]  # this rank's rows
        x = self._augment(to_input(gather(self.train_x, idx, self.device), self.device), phase.augment, gen, n_labeled)
        y = gather(self.train_y, idx, self.device)  # x: (b, 1, H, W)
        ctx = self.step_context(phase, gen)
        extra = []  # (method, this rank's rows) in forward order: label-head methods, then pretext ones
        for name in phase_methods(cfg, phase):
            rows = self.methods[name].rows(ctx)
            if rows is not None and rows.count:
                extra.append((self.methods[name], rows))
        extra.sort(key=lambda item: item[0].pretext)
        n_pre = sum(len(rows) for m, rows in extra if m.pretext)
        x = torch.cat([x] + [rows.images for _, rows in extra])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.net(x, pretext_rows=n_pre)
        weights_g = {**cfg.group_weights, **(phase.group_weights or {})}
        weights_g = {name: weights_g.get(name, 1.0) for name in self.schema.names}
        loss = supervised_loss(out.rows(0, len(y)), y, self.schema.names, weights_g, None, cfg.label_smoothing,
                               denominator=n_labeled)
        total, parts = loss.total, dict(loss.parts)
        start = len(y)
        for method, rows in extra:
            if method.pretext:
                sub = out
            else:
                sub = out.rows(start, start + len(rows))
                start += len(rows)
            if len(rows):
                term, logged = method.loss(sub, rows, rows.count, weights_g)
                total = total + term
                parts.update(logged)
            parts.update(rows.info)  # this rank's shares of the global figures
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total * dist.world_size if dist.enabled else total).backward()  # DDP divides by W
        # fp16: the loss scale, a device tensor; without loss scaling every step is taken
        scale = self.scaler._get_scale_async() if self.scaler.is_enabled() and self.ema is not None else None
        before = scale.clone() if scale is not None else None
        self.scaler.step(self.optimizer)  # skipped when the unscaled gradients hold inf or NaN ...
        self.scaler.update()  # ... which halves the scale (it never falls on a step taken)
        if self.ema is not None:
            self.ema.update(self.model, None if before is None else scale >= before)  # no host sync
        parts["loss"] = total.detach()
        self.state.images_seen += n_labeled + sum(rows.count for _, rows in extra)
        return _sum_over_ranks(parts, dist)

    # ---- evaluation and pseudo-labels ----------------------------------------------------------
    def _predict_shard(self, images: np.ndarray):
        """Predict this rank's contiguous shard of `images`; gather on every rank."""
        model = self.eval_model
        n = len(images)
        if not self.dist.enabled:
            return predict(model, images, self.config.eval_batch_size, self.device, autocast=self.autocast)
        bounds = np.linspace(0, n, self.dist.world_size + 1).astype(int)
        lo, hi = bounds[self.dist.rank], bounds[self.dist.rank + 1]
        part = predict(model, images[lo:hi], self.config.eval_batch_size, self.device, autocast=self.autocast)
        import torch.distributed as tdist

        gathered: list = [None] * self.dist.world_size
        tdist.all_gather_object(gathered, (part.indices, part.probs))
        return Predictions(np.concatenate([g[0] for g in gathered]),
                           [np.concatenate([g[1][k] for g in gathered]) for k in range(len(self.schema.groups))])

    def validate(self) -> dict[str, float]:
        if len(self.val_x) == 0:
            return {}
        pred = self._predict_shard(self.val_x)
        metrics = accuracy_metrics(pred.indices, self.val_y, self.schema.names)
        nll = 0.0
        for g in range(len(self.schema.groups)):
            p = pred.probs[g][np.arange(len(self.val_y)), self.val_y[:, g]]
            nll += float(-np.log(np.clip(p, 1e-8, 1)).mean())
        return {"val_exact": metrics["exact"], **{f"val_{n}": metrics[n] for n in self.schema.names}, "val_loss": nll}

    def watch_plateau(self, val: dict[str, float] | None = None) -> None:
        """Record `state.left_chance_step`: every `plateau_check_steps` steps until then,
        exact-match on the first PLATEAU_IMAGES validation images; at an epoch's end, `val`."""
        state, every = self.state, self.config.plateau_check_steps
        if state.left_chance_step is not None or len(self.val_x) == 0:
            return
        if val is None:
            if every <= 0 or state.step % every:
                return
            pred = self._predict_shard(self.val_x[:PLATEAU_IMAGES])
            exact = accuracy_metrics(pred.indices, self.val_y[:PLATEAU_IMAGES], self.schema.names)["exact"]
        else:
            exact = val.get("val_exact", 0.0)
        if exact > CHANCE_EXIT:
            state.left_chance_step = state.step

    def count_step(self, parts: dict[str, torch.Tensor], lr: float) -> None:
        """Add a finished step to the state and to its epoch's sums."""
        state = self.state
        for k, v in parts.items():
            state.epoch_sums[k] = state.epoch_sums.get(k, 0.0) + v
        state.epoch_steps += 1
        state.epoch_lr = lr
        state.step += 1
        state.step_in_epoch += 1

    def close_epoch(self, phase: PhaseConfig, val: dict[str, float]) -> tuple[dict | None, bool]:
        """The epoch's metrics row, added to the history (None without a step since the
        last row), and whether it is the best so far (its weights are then kept)."""
        state = self.state
        if not state.epoch_steps:
            return None, False
        n = state.epoch_steps
        row = {"epoch": state.epoch, "phase": phase.name, "step": state.step,
               "elapsed_s": round(state.train_seconds, 2), "lr": state.epoch_lr,
               "images_per_s": round(state.images_seen / max(state.train_seconds, 1e-9), 1),
               **{f"train_{k}": float(v) / n for k, v in state.epoch_sums.items()}, **val,
               **state.epoch_extra}
        if state.left_chance_step is not None:
            row["left_chance_step"] = state.left_chance_step
        state.history.append(row)
        exact = val.get("val_exact", -float(row.get("train_loss", 0.0)))
        is_best = exact > state.best_exact
        if is_best:
            state.best_exact = exact
            self.best_model_state = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}
        return row, is_best

    def hold(self, spans: list[float], used: float) -> bool:
        """Whether the current phase goes on past its span (`used` of it spent): it is held
        until off chance and validation is still at chance. Its span then grows past `used`,
        in steps of HOLD_STEP of the run, from the later phases, up to hold_max_fraction."""
        i, state = self.state.phase, self.state
        if not self.phases[i].hold_until_off_chance:
            return False
        total = sum(spans)
        if state.left_chance_step is None and len(self.val_x):
            while spans[i] <= used:
                if not lengthen_span(spans, i, HOLD_STEP * total, self.config.hold_max_fraction * total):
                    break
            else:
                return True
        lengthen_span(spans, i, used - spans[i], used)  # its last step's overrun: from the later phases too
        return False

    def phase_as_trained(self, spans: list[float]) -> PhaseConfig:
        """The current phase, its strong policy made weak in a run forecast to make fewer
        than `strong_min_steps` steps (decided once, as the first strong phase starts)."""
        phase, state, least = self.phases[self.state.phase], self.state, self.config.strong_min_steps
        if phase.augment != "strong" or least <= 0:
            return phase
        if state.short_run is None:
            state.forecast_steps = forecast_steps(state.step, spans, state.phase, state.phase_seconds,
                                                  self.budgets is not None)
            state.short_run = state.forecast_steps is not None and state.forecast_steps < least
        return dataclasses.replace(phase, augment="weak") if state.short_run else phase

    def start_epoch(self, phase: PhaseConfig, first_in_epoch: bool) -> dict[str, float]:
        """Let the phase's methods prepare (e.g. relabel the unlabelled set); their metrics."""
        ctx = EpochContext(self.config, phase, self._predict_shard, self.unlabeled,
                           None if self.unlabeled is None else self.unlabeled.labels)
        info: dict[str, float] = {}
        for name in phase_methods(self.config, phase):
            method = self.methods[name]
            if first_in_epoch or not method.ready():
                faults.reached("relabel")
                info.update(method.on_epoch_start(ctx))
        return info


def _sum_over_ranks(values: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
                    dist: DistInfo) -> dict[str, torch.Tensor]:
    """Each rank's share of a global-batch quantity -> the global value (same on every
    rank), as float64 device scalars: summed on the device, read only at log points.
    A (numerator, denominator) pair of shares gives the ratio of their sums (0 over 0: 0)."""
    flat = {(k, i): v.reshape(()).double() for k, pair in values.items()
            for i, v in enumerate(pair if isinstance(pair, tuple) else (pair,))}
    keys = sorted(flat)
    total = all_reduce_sum(torch.stack([flat[k] for k in keys]), dist)
    summed = dict(zip(keys, total.unbind()))
    return {k: summed[k, 0] / summed[k, 1].clamp(min=1) if isinstance(v, tuple) else summed[k, 0]
            for k, v in values.items()}  # the step's own key order


def _stopping(stop: Callable[[], bool] | None, dist: DistInfo) -> bool:
    """Whether any rank was asked to stop (all ranks agree, so they stop at the same step)."""
    if stop is None:
        return False
    if not dist.enabled:
        return bool(stop())
    flag = torch.tensor([1.0 if stop() else 0.0])
    return bool(all_reduce_sum(flag, dist).item() > 0)


def _next_phase(state: TrainState) -> None:
    state.phase += 1
    state.epoch_in_phase = 0
    state.step_in_epoch = 0
    state.phase_seconds = 0.0


def fit(config: Config, dataset: Dataset, recorder: Recorder | None = None, resume: dict | None = None,
        dist: DistInfo | None = None, stop: Callable[[], bool] | None = None) -> FitResult:
    """Train through every enabled phase; return the model (best by validation
    exact-match), the final state and the validation split.

    `stop` is polled after every step (give it on every rank or on none): when it
    returns True on any rank, last.pt is saved (through the recorder) and
    `Interrupted` is raised. The process's thread count is the caller's again on return
    (`run_settings`).
    """
    dist = dist or DistInfo()
    with run_settings(config, dist):
        return _fit(config, dataset, recorder, resume, dist, stop)


@contextmanager
def run_settings(config: Config, dist: DistInfo) -> Iterator[None]:
    """The run's CPU threads (`threads`; under torchrun by default the cores shared out
    among the processes) while inside; on the way out, however it ends, the caller's
    thread count and cuDNN autotuner setting (`configure_for`) as they were: training is
    a library call and leaves the process's settings as it found them."""
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        elif dist.enabled:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world_size))
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark


def _fit(config: Config, dataset: Dataset, recorder: Recorder | None, resume: dict | None, dist: DistInfo,
         stop: Callable[[], bool] | None) -> FitResult:
    t = _Trainer(config, dataset, dist, recorder, resume)
    state = t.state
    outputs = RecordingSchedule(recorder, dist.is_main, t.payload, config.checkpoint_minutes,
                                config.checkpoint_every_steps, clock=lambda: time.monotonic())

    def interrupted() -> Interrupted:
        return Interrupted(f"interrupted at epoch {state.epoch + 1}, step {state.step}", quiet=not dist.is_main)

    # each phase's planned length (seconds under a time budget, else steps), for a run-wide schedule
    if state.spans is None:
        state.spans = list(t.budgets) if t.budgets is not None else [
            max(1, round(p.epochs * t.steps_per_epoch)) if p.epochs > 0 else 0 for p in t.phases]
    spans = state.spans  # lengthened in place by a held phase (t.hold), saved with the state
    while state.phase < len(t.phases):
        phase = t.phase_as_trained(spans)
        budget = None if t.budgets is None else spans[state.phase]
        planned_steps = max(1, spans[state.phase]) if budget is None else None
        peak = phase.lr or config.lr
        # only an empty phase is skipped here. One already spent (a resume from the checkpoint of
        # the step that used up its time) ends in the loop below, as the uninterrupted run ended
        # it: the epoch's row and validation, the hold, the epoch count (later shuffles follow it)
        phase_done = (budget is not None and budget <= 0) or (planned_steps is not None and phase.epochs <= 0)
        if phase_done:
            _next_phase(state)
            continue
        mark = time.monotonic()
        while not phase_done:
            if budget is not None and state.step_in_epoch == 0 and state.phase_seconds >= budget:
                if not t.hold(spans, state.phase_seconds):
                    _next_phase(state)  # the budget ran out exactly at an epoch's end: no empty epoch
                    break
                budget = spans[state.phase]
            if state.step_in_epoch == 0:
                state.epoch_sums, state.epoch_steps, state.epoch_lr, state.epoch_extra = {}, 0, 0.0, {}
            extra = t.start_epoch(phase, state.step_in_epoch == 0)
            if extra:
                state.epoch_extra = extra
            perm = np.random.default_rng([config.seed, 2, state.epoch]).permutation(len(t.train_x))
            while state.step_in_epoch < t.steps_per_epoch:
                done_in_phase = state.epoch_in_phase * t.steps_per_epoch + state.step_in_epoch
                if budget is not None:
                    progress = from_main((state.phase_seconds + time.monotonic() - mark) / budget, dist)  # one clock
                else:
                    progress = done_in_phase / planned_steps
                if progress >= 1:
                    if t.hold(spans, progress * (budget if budget is not None else planned_steps)):
                        budget, planned_steps = (spans[state.phase], None) if budget is not None else (
                            None, max(1, spans[state.phase]))
                        continue
                    phase_done = True
                    break
                if config.schedule_scope == "run":
                    progress_on_curve = run_progress(state.phase, progress, spans)
                else:
                    progress_on_curve = progress
                lr = lr_at(progress_on_curve, peak, config.schedule, config.warmup_fraction)
                began = time.monotonic()
                parts = t.step(phase, perm, lr)
                t.count_step(parts, lr)
                now = time.monotonic()
                state.train_seconds += now - began
                state.phase_seconds += now - mark
                mark = now
                faults.reached("step")
                t.watch_plateau()
                stopping = _stopping(stop, dist)
                done, total = ((state.phase_seconds, budget) if budget is not None
                               else (done_in_phase + 1, planned_steps))
                outputs.after_step(state.step, state.step_in_epoch == t.steps_per_epoch, stopping, lambda: (
                    phase.name, done, total, state.images_seen / max(state.train_seconds, 1e-9),
                    f"loss {parts['loss']:.3f} lr {lr:.2e}"))  # read only when shown: it waits for a GPU
                if stopping:
                    raise interrupted()
            if state.step_in_epoch >= t.steps_per_epoch or (phase_done and state.step_in_epoch):
                state.step_in_epoch = 0  # a phase ending inside an epoch closes it: own row, next order fresh
                state.epoch_in_phase += 1
                state.epoch += 1
            if budget is None and not phase_done and state.epoch_in_phase * t.steps_per_epoch >= planned_steps:
                phase_done = not t.hold(spans, state.epoch_in_phase * t.steps_per_epoch)
                planned_steps = max(1, spans[state.phase])
            val = t.validate() if state.epoch_steps else {}  # no step since the last row: nothing new
            t.watch_plateau(val)
            state.phase_seconds = from_main(state.phase_seconds + time.monotonic() - mark, dist)
            mark = time.monotonic()  # the epoch's checkpoint writes count towards the next
            row, is_best = t.close_epoch(phase, val)
            if phase_done:
                _next_phase(state)  # before saving: a resume starts the next phase, not this one again
            stopping = _stopping(stop, dist)
            outputs.after_epoch(row, is_best, stopping)
            if phase_done:
                faults.reached("phase_end")
            if stopping:
                raise interrupted()
    t.model.load_state_dict(t.best_model_state)
    t.model.eval()
    return FitResult(t.model, state, t.val_index, t.best_model_state)
