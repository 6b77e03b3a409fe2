"""The interface every semi-supervised method implements, and the registry.

One training step reads: labelled rows + each method's rows -> one forward pass ->
the labelled loss + each method's loss on its own rows. A method never sees the
optimiser, the schedule or the run folder.

Under torchrun each rank builds only its share of a step's rows (`StepContext.rows`
of every global batch) but makes the whole batch's random draws, so every rank's
generator stays in step and each row gets the draws it gets in one process.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from semilabel.errors import ConfigError
from semilabel.models.inference import to_input
from semilabel.train.staging import gather

_REGISTRY: dict[str, type["Method"]] = {}


@dataclass(frozen=True)
class StepContext:
    """What a method may use to build its rows for one step."""

    config: object  # semilabel.config.Config
    phase: object  # semilabel.config.PhaseConfig
    generator: torch.Generator  # seeded by (seed, step): the same draws on every rank and after a resume
    device: torch.device
    batch_size: int  # labelled rows in this global step
    labeled_x: torch.Tensor  # (N, H, W) uint8 training images
    unlabeled_x: torch.Tensor | None  # (M, H, W) uint8
    # (b, 1, H, W) rows `rows` of a global batch, policy name, the global batch's size -> augmented rows
    augment: Callable[[torch.Tensor, str, int], torch.Tensor]
    teacher: Callable[[torch.Tensor], list[torch.Tensor]]  # (B, 1, H, W) -> per-group probabilities, fp32, no grad
    unlabeled_hidden: torch.Tensor | None = None  # (M, G) hidden labels, on the device if they fit: reporting only
    # this rank's rows of every global batch: rank, rank + W, ... (all in one process)
    rows: slice = dataclasses.field(default_factory=lambda: slice(None))
    labeled_y: torch.Tensor | None = None  # (N, G) the training images' labels (their class shares)


@dataclass(frozen=True)
class EpochContext:
    """What a method may use at the start of an epoch (e.g. to relabel the unlabelled set)."""

    config: object
    phase: object
    predict: Callable[[np.ndarray], object]  # (N, H, W) uint8 -> Predictions (fp32 probabilities), all ranks
    unlabeled: object | None  # ImageSet
    hidden_labels: np.ndarray | None  # (M, G) hidden labels of the unlabelled part, reporting only


@dataclass
class Rows:
    """A method's rows of one step on this rank: its share (`StepContext.rows`) of the
    step's `total` global rows.

    `info` holds per-step figures to log, each as this rank's share of the global
    figure (the ranks' shares add up to it, e.g. a sum over these rows / `total`), or as
    a (numerator, denominator) pair of shares, logged as the ratio of their global sums.
    """

    images: torch.Tensor  # (n, 1, H, W) in 0-1, on the device
    targets: torch.Tensor  # (n, G) class indices; pretext methods: (n,) transform indices; or soft targets
    weights: torch.Tensor | None = None  # (n, G) per-group weights (confidence masks), (n,) per row, or None
    info: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]] = dataclasses.field(default_factory=dict)
    total: int | None = None  # the step's rows over all ranks; None: these rows (one process)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def count(self) -> int:
        """The step's rows over all ranks."""
        return len(self.images) if self.total is None else self.total


class Method:
    """Base class: override `rows` and `loss`; the rest is optional.

    `Options` is a frozen dataclass of the method's options, read from
    `method_options.<name>` in the config (unknown keys are refused). A built-in method's
    defaults are written in the `default` recipe (configs/default.yaml), which every config
    takes the options it does not give from, so its fields have none; a method the recipe
    does not list gives its fields defaults.
    """

    name: ClassVar[str] = ""
    # the model's extra head the rows train (they go last in the batch): "pretext", the
    # rotation/flip head; None: the label heads. The model is built with every head
    # its recipe's methods declare.
    head: ClassVar[str | None] = None

    @dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, config, options: "Method.Options"):
        self.config = config
        self.options = options

    def ready(self) -> bool:
        """False while the method needs `on_epoch_start` before it can make rows."""
        return True

    def may_idle(self, world_size: int) -> bool:
        """Whether, split over `world_size` processes, a step may leave a process none of
        the rows (its `head` then gets no gradient there)."""
        return False

    def on_epoch_start(self, ctx: EpochContext) -> dict[str, float]:
        """Called at each epoch start of a phase that runs the method; returns metrics for the row."""
        return {}

    def rows(self, ctx: StepContext) -> Rows | None:
        raise NotImplementedError

    def loss(self, output, rows: Rows, denominator: int,
             group_weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted loss, detached parts to log) on this rank's rows. `output` holds only
        these rows; sums divide by `denominator` (the method's global row count) so that
        ranks add up to the global mean; `group_weights` is the phase's weight per label
        group, in schema order."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass(frozen=True)
class ConsistencyOptions:
    """Options shared by the methods that draw unlabelled rows each step."""

    ratio: float  # unlabelled rows per labelled row
    weight: float  # loss weight relative to the labelled loss

    def check(self) -> tuple[str, str] | None:
        if self.ratio <= 0:
            return "ratio", "positive"
        if self.weight < 0:
            return "weight", "0 or more"
        return None


class Drawn(NamedTuple):
    """Unlabelled images drawn for a step, this rank's share of them, and their teacher labels."""

    total: int  # images drawn over all ranks
    pick: torch.Tensor  # (b,) this rank's: positions in the unlabelled set, on the host
    images: torch.Tensor  # (b, 1, H, W) in 0-1 on the device
    probs: list[torch.Tensor]  # per group (b, C_g): the teacher's probabilities on a weak view, fp32


def draw_with_teacher(ctx: StepContext, ratio: float) -> Drawn | None:
    """`ratio` x batch unlabelled images drawn with replacement from the step's generator,
    of which this rank loads, augments and labels its rows only; None without any."""
    if ctx.unlabeled_x is None or len(ctx.unlabeled_x) == 0:
        return None
    n = max(1, round(ratio * ctx.batch_size))
    pick = torch.randint(len(ctx.unlabeled_x), (n,), generator=ctx.generator)[ctx.rows]
    x = to_input(gather(ctx.unlabeled_x, pick, ctx.device), ctx.device)
    return Drawn(n, pick, x, ctx.teacher(ctx.augment(x, "weak", n)))


def register_method(name: str):
    def wrap(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_methods() -> list[str]:
    return sorted(_REGISTRY)


def method_class(name: str) -> type[Method]:
    if name not in _REGISTRY:
        raise ConfigError(f"method: unknown name {name!r} (choose from {', '.join(list_methods())})")
    return _REGISTRY[name]


def create_method(name: str, config) -> Method:
    """The method `name` with its options from `config.method_options[name]` (a Config
    holds every option of the methods the `default` recipe lists)."""
    cls = method_class(name)
    given = dict(config.method_options.get(name, {}))
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    hints = typing.get_type_hints(cls.Options)
    for key in given:
        if key not in fields:
            raise ConfigError(f"config key 'method_options.{name}.{key}' is unknown "
                              f"(options: {', '.join(fields) or 'none'})")
    missing = [k for k, f in fields.items() if k not in given and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"config key 'method_options.{name}.{missing[0]}': not given, and the method has no default")
    options = cls.Options(**{key: _option_value(f"method_options.{name}.{key}", value, hints[key])
                             for key, value in given.items()})
    check = getattr(options, "check", None)
    if check is not None:
        problem = check()
        if problem:
            raise ConfigError(f"config key 'method_options.{name}.{problem[0]}': must be {problem[1]}")
    return cls(config, options)


def _option_value(key: str, value, hint):
    """`value` as the option's type (true/false, an integer, a number; another type as it is,
    for the method's `check`), or ConfigError naming `key`."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if hint not in (int, float):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
    if hint is int:
        if float(value) != int(value):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(value)
    return float(value)
