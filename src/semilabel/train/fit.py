"""The training loop: phases, semi-supervised methods, augmentation, EMA, time budget.

`fit` is a plain loop: for each phase, while its clock runs (steps or seconds, see
`semilabel.train.clock`): learning rate, step, record; at each epoch's end, validate,
the metrics row and its checkpoint. The recipe's policies (a phase held until off
chance, the weak policy for a short run, the start-up plateau watch) and the
fault-injection points act at named moments as callbacks (`semilabel.train.callbacks`).
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

from semilabel.config import Config, PhaseConfig
from semilabel.data.augment_policy import apply_policy, preset
from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.splits import split_validation
from semilabel.device import autocast_dtype, check_precision, configure_for, optimizer_options, resolve_device, with_batch_size
from semilabel.distributed import DistInfo, all_reduce_sum, from_main
from semilabel.errors import ConfigError, DataError, Interrupted
from semilabel.metrics import accuracy_metrics
from semilabel.models.checkpoint import build_model, checkpoint_meta
from semilabel.models.classifier import MultiHeadClassifier, combine_predictions
from semilabel.models.inference import Predictions, predict, to_input
from semilabel.train.callbacks import Callbacks, FaultPoints, HoldUntilOffChance, PlateauWatch, ShortRunSwitch
from semilabel.train.clock import PhaseClock, phase_seconds, plan_spans
from semilabel.train.ema import WeightEMA
from semilabel.train.losses import supervised_loss
from semilabel.train.recording import Recorder, RecordingSchedule
from semilabel.train.methods import (EpochContext, Method, Rows, StepContext, create_method, needed_heads,
                                     phase_methods)
from semilabel.train.schedule import lr_at
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


def epoch_passes(n_train: int, config: Config) -> int:
    """Passes over the n_train labelled training images an epoch makes: one, or under a
    time budget as many as reach `epoch_min_images`, so that a small set's epochs (each
    ending in validation, a checkpoint and a metrics row) stay long enough to leave the
    budget to training."""
    if config.time_budget is None or n_train == 0:
        return 1
    return max(1, math.ceil(config.epoch_min_images / n_train))


def _check_inputs(config: Config, dataset: Dataset) -> None:
    """ConfigError for a group weight of no group, DataError for fewer than 2 labelled images."""
    names = dataset.schema.names
    unknown = set(config.group_weights) - set(names)
    for phase in config.phases:
        unknown |= set(phase.group_weights or {}) - set(names)
    if unknown:
        raise ConfigError(f"config key 'group_weights': unknown group(s) {sorted(unknown)}; groups are {names}")
    if len(dataset.labeled) < 2:
        raise DataError(f"{dataset.labeled.source}: need at least 2 labelled images to train, found {len(dataset.labeled)}")


class _Trainer:
    """Holds the run's tensors and does one step / one epoch; `fit` drives it."""

    def __init__(self, config: Config, dataset: Dataset, dist: DistInfo, recorder: Recorder | None,
                 resume: dict | None):
        self.config, self.dataset, self.dist, self.recorder = config, dataset, dist, recorder
        self.schema = dataset.schema
        _check_inputs(config, dataset)
        self.device = resolve_device(config.device, dist)
        check_precision(config.precision, self.device)
        self.config = config = with_batch_size(config, self.device)
        self._build_data(dataset)
        configure_for(self.device, config.cudnn_benchmark)
        self.phases = [p for p in config.phases if p.enabled]
        self.budgets = phase_seconds(config, self.phases)
        self.passes = epoch_passes(len(self.train_x), config)
        self.steps_per_epoch = max(1, math.ceil(self.passes * len(self.train_x) / config.batch_size))
        # one instance per method name, shared by the phases that list it
        names = list(dict.fromkeys(n for p in self.phases for n in phase_methods(config, p)))
        self.methods: dict[str, Method] = {n: create_method(n, config) for n in names}
        self._build_model()
        self._build_optimiser()
        self.state = TrainState()
        if resume is not None:
            self._restore(resume)

    def _build_data(self, dataset: Dataset) -> None:
        """The seeded training / validation split of the labelled images and the unlabelled
        pool, the training tensors staged on the device."""
        config, labeled = self.config, dataset.labeled
        self.train_index, self.val_index = split_validation(len(labeled), config.val_fraction, config.seed,
                                                            labeled.glyphs, keep=config.labeled_limit,
                                                            val_min=config.val_min)
        train_x = torch.from_numpy(labeled.images[self.train_index])  # (N, H, W) or (N, H, W, C) uint8
        train_y = torch.from_numpy(labeled.labels[self.train_index])  # (N, G)
        self.val_x = labeled.images[self.val_index]
        self.val_y = labeled.labels[self.val_index]
        if config.unlabeled_test and config.use_unlabeled and (dataset.test is None or not len(dataset.test)):
            raise ConfigError(f"unlabeled_test (--unlabeled-test): {labeled.source} comes with no test images")
        self.unlabeled = (_unlabeled_pool(dataset, self.train_index, self.val_index, config.unlabeled_test)
                          if config.use_unlabeled else None)
        unl_x = torch.from_numpy(self.unlabeled.images) if self.unlabeled is not None else None
        self.pool_digest = pool_digest(self.unlabeled)
        self.train_x, self.train_y, self.unl_x = stage(self.device, train_x, train_y, unl_x)
        self.unl_hidden = (torch.from_numpy(self.unlabeled.labels)
                           if self.unlabeled is not None and self.unlabeled.labels is not None else None)
        (self.unl_hidden,) = stage(self.device, self.unl_hidden)  # the methods count right guesses there

    def _build_model(self) -> None:
        """The seeded network, with several processes its DDP wrapper (`net`), its EMA, and
        the weights kept as best so far."""
        config, dist = self.config, self.dist
        torch.manual_seed(config.seed)
        self.model = build_model(config, self.schema, self.device, needed_heads(config), self.dataset.image_shape,
                                 self.dataset.channels).to(self.device)  # the run's device's layout
        if config.weights:
            self.model.load_backbone_weights(config.weights)
        self.net: torch.nn.Module = self.model
        if dist.enabled:
            self.model = convert_sync_batchnorm(self.model, self.device.type)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self._heads_may_idle())
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.best_model_state = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}

    def _heads_may_idle(self) -> bool:
        """Whether an extra head the methods declare gets no rows in some step: in a phase
        none of whose methods feeds it, or on a rank a method's rows do not reach."""
        heads = needed_heads(self.config)
        fed = [{self.methods[n].head for n in phase_methods(self.config, p)} for p in self.phases]
        starved = any(m.head is not None and m.may_idle(self.dist.world_size) for m in self.methods.values())
        return bool(heads) and (starved or any(not heads <= f for f in fed))

    def _build_optimiser(self) -> None:
        """The optimiser, the autocast precision and the loss scaler."""
        self.optimizer = _make_optimizer(self.config, self.model)
        self.autocast = self._autocast_dtype()
        # fp16 needs loss scaling; disabled (bf16, fp32, CPU default) it passes straight through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16)

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
                           self.unl_hidden, self.rows, labeled_y=self.train_y)

    def step(self, phase: PhaseConfig, perm: np.ndarray, lr: float) -> dict[str, torch.Tensor]:
        """One optimiser step on global batch `state.step_in_epoch`; returns its loss parts.

        Every rank makes the whole global batch's draws (labelled rows, then each method's
        rows) from the same generator, but builds rows rank, rank + W, ... only; each loss
        divides by its global row count and DDP averages gradients, so the update is the
        global batch's. One forward pass serves all rows: label-head rows first, extra-head
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
        y = gather(self.train_y, idx, self.device)  # x: (b, C, H, W)
        extra = self._method_rows(phase, gen)
        n_head = sum(len(rows) for m, rows in extra if m.head is not None)
        x = torch.cat([x] + [rows.images for _, rows in extra])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.net(x, pretext_rows=n_head)  # the model's one extra head: the pretext head
        total, parts = self._losses(phase, out, y, n_labeled, extra)
        self._update(total)
        parts["loss"] = total.detach()
        self.state.images_seen += n_labeled + sum(rows.count for _, rows in extra)
        return _sum_over_ranks(parts, dist)

    def _update(self, total: torch.Tensor) -> None:
        """Back-propagate `total`, step the optimiser through the loss scaler, and the EMA."""
        dist = self.dist
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total * dist.world_size if dist.enabled else total).backward()  # DDP divides by W
        # fp16: the loss scale, a device tensor; without loss scaling every step is taken
        scale = self.scaler._get_scale_async() if self.scaler.is_enabled() and self.ema is not None else None
        before = scale.clone() if scale is not None else None
        self.scaler.step(self.optimizer)  # skipped when the unscaled gradients hold inf or NaN ...
        self.scaler.update()  # ... which halves the scale (it never falls on a step taken)
        if self.ema is not None:
            self.ema.update(self.model, None if before is None else scale >= before)  # no host sync

    def _method_rows(self, phase: PhaseConfig, gen: torch.Generator) -> list[tuple[Method, Rows]]:
        """The phase's methods' rows of this step on this rank, in forward order: those of
        the label heads first, then those of an extra head (the last rows of the batch)."""
        ctx = self.step_context(phase, gen)
        extra = []
        for name in phase_methods(self.config, phase):
            rows = self.methods[name].rows(ctx)
            if rows is not None and rows.count:
                extra.append((self.methods[name], rows))
        extra.sort(key=lambda item: item[0].head is not None)
        return extra

    def _losses(self, phase: PhaseConfig, out, y: torch.Tensor, n_labeled: int,
                extra: list[tuple[Method, Rows]]) -> tuple[torch.Tensor, dict]:
        """(the loss to back-propagate, its parts to log) of this rank's labelled rows (of
        `n_labeled` in the global batch) and each method's rows on this rank."""
        cfg = self.config
        weights_g = {**cfg.group_weights, **(phase.group_weights or {})}
        weights_g = {name: weights_g.get(name, 1.0) for name in self.schema.names}
        loss = supervised_loss(out.rows(0, len(y)), y, self.schema.names, weights_g, None, cfg.label_smoothing,
                               denominator=n_labeled)
        total, parts = loss.total, dict(loss.parts)
        start = len(y)
        for method, rows in extra:
            if method.head is not None:  # the extra head's logits cover its rows only
                sub = out
            else:
                sub = out.rows(start, start + len(rows))
                start += len(rows)
            if len(rows):
                term, logged = method.loss(sub, rows, rows.count, weights_g)
                total = total + term
                parts.update(logged)
            parts.update(rows.info)  # this rank's shares of the global figures
        return total, parts

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

    def val_exact(self, n: int) -> float:
        """Exact-match on the first `n` validation images."""
        pred = self._predict_shard(self.val_x[:n])
        return accuracy_metrics(pred.indices, self.val_y[:n], self.schema.names)["exact"]

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

    def open_epoch(self, phase: PhaseConfig, relabel: Callable[[], None]) -> np.ndarray:
        """Start the epoch, or go on with one a resume stopped inside: its sums, what the
        phase's methods report (`relabel()` is called before each prepares), and its order
        of the training images, drawn from (seed, epoch)."""
        state = self.state
        if state.step_in_epoch == 0:
            state.epoch_sums, state.epoch_steps, state.epoch_lr, state.epoch_extra = {}, 0, 0.0, {}
        extra = self.start_epoch(phase, state.step_in_epoch == 0, relabel)
        if extra:
            state.epoch_extra = extra
        rng = np.random.default_rng([self.config.seed, 2, state.epoch])
        return np.concatenate([rng.permutation(len(self.train_x)) for _ in range(self.passes)])

    def start_epoch(self, phase: PhaseConfig, first_in_epoch: bool,
                    relabel: Callable[[], None] = lambda: None) -> dict[str, float]:
        """Let the phase's methods prepare (e.g. relabel the unlabelled set); their metrics."""
        ctx = EpochContext(self.config, phase, self._predict_shard, self.unlabeled,
                           None if self.unlabeled is None else self.unlabeled.labels)
        info: dict[str, float] = {}
        for name in phase_methods(self.config, phase):
            method = self.methods[name]
            if first_in_epoch or not method.ready():
                relabel()
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


def recipe_callbacks(config: Config) -> Callbacks:
    """The policies every recipe trains under (each acts only where its config keys ask),
    and the fault-injection points, in the order they act at each moment."""
    return Callbacks(FaultPoints(), ShortRunSwitch(config.strong_min_steps),
                     HoldUntilOffChance(HOLD_STEP, config.hold_max_fraction),
                     PlateauWatch(config.plateau_check_steps, PLATEAU_IMAGES, CHANCE_EXIT))


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
    """`fit` inside its run settings: build, the loop, the best weights back in the model."""
    t = _Trainer(config, dataset, dist, recorder, resume)
    if t.state.spans is None:  # saved with the state: a held phase grows in it
        t.state.spans = plan_spans(t.phases, t.budgets, t.steps_per_epoch)
    recording = RecordingSchedule(recorder, dist.is_main, t.payload, config.checkpoint_minutes,
                                  config.checkpoint_every_steps, clock=lambda: time.monotonic())
    _Loop(t, recipe_callbacks(t.config), recording, stop).run()
    t.model.load_state_dict(t.best_model_state)
    t.model.eval()
    return FitResult(t.model, t.state, t.val_index, t.best_model_state)


class _Loop:
    """For each phase, while its clock runs: learning rate, step, record; at each
    epoch's end: validate, the metrics row, its checkpoint. The recipe's policies and the
    fault points act through `callbacks` (semilabel.train.callbacks)."""

    def __init__(self, trainer: _Trainer, callbacks: Callbacks, recording: RecordingSchedule,
                 stop: Callable[[], bool] | None):
        self.t, self.state, self.callbacks, self.recording, self.stop = trainer, trainer.state, callbacks, recording, stop

    def run(self) -> None:
        while self.state.phase < len(self.t.phases):
            self.phase()

    def phase(self) -> None:
        t, state = self.t, self.state
        phase = self.callbacks.phase_start(t, t.phases[state.phase])
        clock = PhaseClock(state, t.budgets is not None, t.steps_per_epoch, now=lambda: time.monotonic(),
                           agree=lambda value: from_main(value, t.dist),  # one clock: rank 0's
                           hold=lambda clock, used: self.callbacks.phase_spent(t, clock, used))
        if clock.empty(phase):
            return _next_phase(state)
        clock.start()
        while not clock.ended:
            if clock.ends_before_epoch():
                return _next_phase(state)  # the time ran out as the last epoch closed: no empty epoch
            perm = t.open_epoch(phase, relabel=lambda: self.callbacks.relabel(t))
            while state.step_in_epoch < t.steps_per_epoch and not clock.ends_before_step():
                self.step(phase, perm, clock)
            self.close_epoch(phase, clock)

    def step(self, phase: PhaseConfig, perm: np.ndarray, clock: PhaseClock) -> None:
        t, state, config = self.t, self.state, self.t.config
        lr = lr_at(clock.curve(config.schedule_scope), phase.lr or config.lr, config.schedule, config.warmup_fraction)
        began = clock.now()
        parts = t.step(phase, perm, lr)
        t.count_step(parts, lr)
        clock.charge_step(began)
        self.callbacks.step_end(t)
        stopping = _stopping(self.stop, t.dist)
        self.recording.after_step(state.step, state.step_in_epoch == t.steps_per_epoch, stopping, lambda: (
            phase.name, clock.used(), clock.span, state.images_seen / max(state.train_seconds, 1e-9),
            f"loss {parts['loss']:.3f} lr {lr:.2e}"))  # read only when shown: it waits for a GPU
        if stopping:
            raise self.interrupted()

    def close_epoch(self, phase: PhaseConfig, clock: PhaseClock) -> None:
        t, state = self.t, self.state
        if state.step_in_epoch:  # a phase ending inside an epoch closes it: own row, next order fresh
            state.step_in_epoch = 0
            state.epoch_in_phase += 1
            state.epoch += 1
        clock.ends_with_epoch()
        val = t.validate() if state.epoch_steps else {}  # no step since the last row: nothing new
        self.callbacks.epoch_end(t, val)
        clock.settle()
        row, is_best = t.close_epoch(phase, val)
        if clock.ended:
            _next_phase(state)  # before saving: a resume starts the next phase, not this one again
        stopping = _stopping(self.stop, t.dist)
        self.recording.after_epoch(row, is_best, stopping)
        if clock.ended:
            self.callbacks.phase_end(t)
        if stopping:
            raise self.interrupted()

    def interrupted(self) -> Interrupted:
        state = self.state
        return Interrupted(f"interrupted at epoch {state.epoch + 1}, step {state.step}", quiet=not self.t.dist.is_main)
