"""Typed, validated training configuration.

A recipe is a YAML file (`default`, `fixmatch`, `pseudo` and `report` in `configs/` ship
with the package). `default` gives every key and is where defaults are written (`Config()`
is that recipe); the others name their `base` and give only the keys they change.
Command-line flags override single keys; the resolved config (every method's every option
included) is saved in the run folder and inside every checkpoint. Mappings older versions
wrote pass through `migrate_config`. An unknown key or a value of the wrong type is a
ConfigError naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from semilabel.data.augment_policy import PRESETS, AugmentPolicy, policy_errors
from semilabel.errors import ConfigError


@dataclass(frozen=True)
class PhaseConfig:
    """One training phase. Phases run in order; a disabled one is skipped."""

    name: str  # supervised | augmented | pseudo (free text, shown in logs)
    enabled: bool = True
    epochs: float = 5  # length without a time budget (fractions allowed)
    time_fraction: float = 0.33  # share of --time-budget (renormalised over enabled phases)
    augment: str = "none"  # policy for labelled (and pseudo-labelled) rows: none | weak | strong (true = weak)
    pseudo_augment: str | None = None  # policy for the pseudo-labelled rows; None: as `augment`
    pretext_source: str = "labeled"  # SESEMI images: labeled | unlabeled | none
    pseudo_labels: bool = False  # admit confident unlabelled images, re-labelled every epoch
    group_weights: dict[str, float] | None = None  # per-group loss weights in this phase
    lr: float | None = None  # peak learning rate in this phase (default: Config.lr)
    methods: tuple[str, ...] = ()  # semi-supervised methods in this phase (semilabel.train.methods), e.g. [fixmatch]
    # stay in this phase past its share while validation is at chance (left_chance_step unset),
    # taking time from the later phases, up to Config.hold_max_fraction of the run (with
    # schedule_scope: phase, the phase's own curve stretches as it grows)
    hold_until_off_chance: bool = False


def _defaults_from_recipe(cls):
    """Give every field of `cls` its value in the `default` recipe as its default, so that
    configs/default.yaml is the one place where defaults are written."""
    for name in cls.__annotations__:
        setattr(cls, name, field(default_factory=lambda name=name: _default_value(name)))
    return cls


@dataclass(frozen=True)
@_defaults_from_recipe
class Config:
    """Every option of `semilabel train`; `Config()` is the `default` recipe (configs/default.yaml
    gives every key its value and says why)."""

    # model
    backbone: str  # see semilabel.models.list_backbones()
    width: int  # compact backbone: channels of its first stage
    blocks: tuple[int, ...]  # compact backbone: residual blocks in its stages at 28, 14 and 7 px
    input_size: int | tuple[int, ...]  # side the network sees, or [H, W]; 224 resizes like the original report (models.geometry)
    pooling: str | None  # over the last map: avg | max | avgmax | attention; None: the backbone's own
    weights: str | None  # local file to start the backbone from (nothing downloads)
    joint_head: bool  # extra head over every digit-letter pair, combined with the group heads
    dropout: float  # before the heads
    # losses
    group_weights: dict[str, float]  # loss weight per label group
    sesemi: bool  # train the rotation/flip pretext head (SESEMI) in every phase that draws pretext images
    # optimisation
    batch_size: int | None  # labelled images per step (plus as many pseudo-labelled); None: 128 on a CPU (32 where the budget passes over the labelled images 150 times or more), 512 on a GPU
    optimizer: str  # adamw | adam | sgd
    lr: float  # peak learning rate
    weight_decay: float  # on weights, not biases or norms
    schedule: str  # cosine (with warm-up) | onecycle | constant
    schedule_scope: str  # run: one curve across all phases | phase: restart in each phase
    warmup_fraction: float  # of the curve (the run, or each phase)
    label_smoothing: float  # on every group and the joint head
    # augmentation (semilabel.data.augment_policy): the two policies phases and methods name
    weak_augment: AugmentPolicy
    strong_augment: AugmentPolicy
    # a run forecast to make fewer optimiser steps than this trains its strong phases with the
    # weak policy; forecast when the first strong phase starts: the planned steps, or under a
    # time budget the steps so far plus the time left at the speed so far. 0: always strong
    strong_min_steps: int
    # semi-supervised methods' options per method name, e.g. {fixmatch: {threshold: 0.95}}
    # (semilabel.train.methods, each checks its own); every option of every method the
    # `default` recipe lists: a mapping that gives a few takes the rest from it (`__post_init__`)
    method_options: dict[str, dict[str, typing.Any]]
    # what the strong phases that list no method train on the unlabelled images: a method's
    # name, none, or auto: a method where the label curve says the unlabelled images pay
    # (semilabel.train.method_choice); `train` resolves it and says why in its first lines
    methods: str
    # config keys (dotted, as --set) a run takes when `methods` gives its strong phases a method
    with_method: dict[str, typing.Any]
    ema_decay: float  # >0: keep an EMA of the weights; it validates, is saved as best, and teaches
    use_unlabeled: bool  # false: ignore the unlabelled images (the ablation without them)
    # true: the test images (the ones to predict) join the unlabelled pool, transductive training;
    # their labels, where the data has them, are never learnt from (they only score pseudo-labels)
    unlabeled_test: bool
    # phases and time
    phases: tuple[PhaseConfig, ...]
    time_budget: float | None  # minutes for the whole run; phases scale to fit
    hold_max_fraction: float  # a phase with hold_until_off_chance ends by this share of the run
    # under a time budget an epoch passes over the labelled images as often as it takes to
    # reach this many images (a small set's epochs, each validated and saved, stay long)
    epoch_min_images: int
    # data and run
    val_fraction: float  # held out of the labelled data, seeded
    val_min: int  # validation images at least (a floor for small labelled sets, at most 20% of them)
    # keep this many labelled images (seeded by `seed`); the others join the unlabelled pool
    # without their labels, which stay only to score pseudo-labels (the label curve). None: all
    labeled_limit: int | None
    seed: int
    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto (GPU: bf16 at compute capability >= 8.0, else fp16; CPU: bf16 where native, else fp32) | fp32 | bf16 | fp16
    eval_batch_size: int
    # test-time augmentation of predict, evaluate and the run's test score: average every
    # digit-letter pair's probability over the image and this many copies under the weak
    # policy (0 = plain prediction). Validation and pseudo-labels stay plain.
    tta: int
    channels_last: bool | None  # convolution layout; None: channels-last where measured faster (see device.py)
    cudnn_benchmark: bool  # cuDNN's autotuner: time every algorithm for each new batch shape
    checkpoint_minutes: float  # also save `last` this often within an epoch
    checkpoint_every_steps: int  # and every this many steps (0 = off)
    # until validation exact-match first passes 10%, score PLATEAU_IMAGES validation images every
    # this many steps and record that step as `left_chance_step` (0 = off; per-epoch validation only)
    plateau_check_steps: int
    threads: int  # CPU threads; 0 = all cores

    def __post_init__(self):
        object.__setattr__(self, "method_options", _with_method_defaults(self.method_options))


def _with_method_defaults(given: dict) -> dict:
    """`given` method options over the `default` recipe's, per method and option (a new
    mapping): the recipe's methods in its order, then any it does not list (check_methods
    names an unknown one)."""
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        return given  # _check_value names the problem
    defaults = _recipe_defaults()["method_options"]
    return {**{name: {**options, **given.get(name, {})} for name, options in defaults.items()},
            **{name: dict(options) for name, options in given.items() if name not in defaults}}


def _default_value(name: str):
    """Config's default for `name`: its value in the `default` recipe (a fresh copy)."""
    return copy.deepcopy(_recipe_defaults()[name])


@functools.cache
def _recipe_defaults() -> dict:
    """Every key of the `default` recipe, checked and converted; it must give them all."""
    text = resources.files("semilabel.configs").joinpath("default.yaml").read_text()
    data = yaml.safe_load(text)
    names = [f.name for f in dataclasses.fields(Config)]
    if not isinstance(data, dict) or "base" in data:
        raise ConfigError("config 'default': must be a mapping of every config key, with no base")
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"config 'default': must give every config key; missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"config 'default': config key {unknown[0]!r} is unknown")
    hints = typing.get_type_hints(Config)
    return {n: _check_value(n, data[n], hints[n]) for n in names}


def _check_value(name: str, value, hint):
    """Return `value` converted to `hint`, or raise ConfigError naming `name`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for hint in inner[:-1]:  # e.g. int | tuple[int, ...]: the first that takes the value
            try:
                return _check_value(name, value, hint)
            except ConfigError:
                pass
        return _check_value(name, value, inner[-1])
    if hint is typing.Any:
        return value  # a method's option: the method checks it (semilabel.train.methods.create_method)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {name!r}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {name!r}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key {name!r}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {name!r}: expected text, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {name!r}: expected a mapping, got {value!r}")
        return {str(k): _check_value(f"{name}.{k}", v, args[1]) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, name)
    if origin is tuple and args[0] in (str, int):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            what = "names" if args[0] is str else "integers"
            raise ConfigError(f"config key {name!r}: expected a list of {what}, got {value!r}")
        return tuple(_check_value(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is tuple and args[0] is PhaseConfig:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {name!r}: expected a list of phases, got {value!r}")
        return tuple(v if isinstance(v, PhaseConfig) else _build(PhaseConfig, v, f"{name}[{i}]")
                     for i, v in enumerate(value))
    raise ConfigError(f"config key {name!r}: unsupported type {hint}")


# Top-level keys of the weak policy's ranges until 78133cc (2026-12-01), now `weak_augment.<key>`.
_MOVED_TO_WEAK_AUGMENT = ("rotate_deg", "translate", "scale_min", "scale_max")
# Top-level keys until 2026-12-07 (9197d56), now options of the methods that read them.
_MOVED_TO_METHOD_OPTIONS = {
    "pseudo_threshold": ("pseudo_label", "threshold"), "pseudo_weight": ("pseudo_label", "weight"),
    "pseudo_max_fraction": ("pseudo_label", "max_fraction"), "pseudo_per_group": ("pseudo_label", "per_group"),
    "pretext_batch_size": ("sesemi", "batch_size"), "pretext_weight": ("sesemi", "weight"),
}
# A mapping leaves a key out when it predates the key (a checkpoint, a run's config.yaml) or
# starts from no `base` (a recipe file). Until cd60e6d such a key took Config's own default,
# which for these keys was not the `default` recipe's value; they keep that meaning.
_BEFORE_RECIPE_DEFAULTS = {
    "pooling": None, "weight_decay": 0.0005, "label_smoothing": 0.0, "strong_min_steps": 0, "ema_decay": 0.0,
    "val_fraction": 0.1, "val_min": 0, "methods": "none", "epoch_min_images": 0,
    "phases": [{"name": "supervised", "epochs": 1, "time_fraction": 0.1},
               {"name": "augmented", "epochs": 6, "time_fraction": 0.4, "augment": "weak", "pretext_source": "unlabeled"},
               {"name": "pseudo", "epochs": 6, "time_fraction": 0.5, "augment": "weak", "pretext_source": "unlabeled",
                "pseudo_labels": True}],
}


def migrate_config(data: dict) -> dict:
    """A config mapping as an older version wrote it -> one in today's keys (a new mapping).

    Older mappings come from checkpoints (`payload["config"]`), run folders' config.yaml
    and recipe files. Today's mappings pass unchanged. What changed:
    - `rotate_deg`, `translate`, `scale_min`, `scale_max` (top level until 78133cc) ->
      `weak_augment.<key>`, over the policy the mapping gives, if any;
    - a phase's `augment: true / false` (until 78133cc) -> `weak` / `none`;
    - `pseudo_threshold`, `pseudo_weight`, `pseudo_max_fraction`, `pseudo_per_group`,
      `pretext_batch_size`, `pretext_weight` (top level until 9197d56) ->
      `method_options.pseudo_label.<option>` / `method_options.sesemi.<option>`
      (`_MOVED_TO_METHOD_OPTIONS`), where the mapping's `method_options` does not give the option;
    - `method_options.fixmatch.adaptive: true / false` (until 3873123) -> `mask: flexmatch / fixed`;
    - a key left out that Config defaulted otherwise than the `default` recipe until cd60e6d
      (`_BEFORE_RECIPE_DEFAULTS`) -> that old default.
    """
    if not isinstance(data, dict):
        return data  # _build names the problem
    data = {**copy.deepcopy(_BEFORE_RECIPE_DEFAULTS), **data}
    moved = {k: data.pop(k) for k in _MOVED_TO_WEAK_AUGMENT if k in data}
    if moved:
        weak = data.get("weak_augment")
        weak = dataclasses.asdict(weak) if isinstance(weak, AugmentPolicy) else dict(weak or {})
        data["weak_augment"] = {**weak, **moved}
    data = _move_method_keys(data)
    phases = data.get("phases")
    if isinstance(phases, (list, tuple)) and any(isinstance(p, dict) and isinstance(p.get("augment"), bool)
                                                 for p in phases):
        data["phases"] = [{**p, "augment": "weak" if p["augment"] else "none"}
                          if isinstance(p, dict) and isinstance(p.get("augment"), bool) else p for p in phases]
    return data


def _move_method_keys(data: dict) -> dict:
    """`data` with its older top-level method keys (`_MOVED_TO_METHOD_OPTIONS`) moved into its
    `method_options`; where that gives the option too, its value wins, as it did over the older key.
    FixMatch's `adaptive: true / false` (until 3873123) becomes `mask: flexmatch / fixed`."""
    moved = [k for k in _MOVED_TO_METHOD_OPTIONS if k in data]
    options = data.get("method_options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        return data  # _build names the problem
    if not moved and "adaptive" not in options.get("fixmatch", {}):
        return data
    data, options = dict(data), {name: dict(given) for name, given in options.items()}
    for key in moved:
        method, option = _MOVED_TO_METHOD_OPTIONS[key]
        value = data.pop(key)
        options.setdefault(method, {}).setdefault(option, value)
    fixmatch = options.get("fixmatch", {})
    if isinstance(fixmatch.get("adaptive"), bool):
        fixmatch.setdefault("mask", "flexmatch" if fixmatch.pop("adaptive") else "fixed")
    data["method_options"] = options
    return data


def _build(cls, data: dict, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"config {prefix or 'file'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"config key {(prefix + '.' if prefix else '') + unknown[0]!r} is unknown")
    values = {k: _check_value(f"{prefix + '.' if prefix else ''}{k}", v, hints[k]) for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"config {prefix or 'file'}: {exc}") from None


def _validate(config: Config) -> Config:
    from semilabel.models.backbones import POOLINGS, list_backbones
    from semilabel.models.geometry import input_size_ok

    rules = [
        ("backbone", config.backbone in list_backbones(), f"one of {', '.join(list_backbones())}"),
        ("optimizer", config.optimizer in ("adamw", "adam", "sgd"), "adamw, adam or sgd"),
        ("schedule", config.schedule in ("cosine", "onecycle", "constant"), "cosine, onecycle or constant"),
        ("schedule_scope", config.schedule_scope in ("run", "phase"), "run or phase"),
        ("precision", config.precision in ("auto", "fp32", "bf16", "fp16"), "auto, fp32, bf16 or fp16"),
        ("batch_size", config.batch_size is None or config.batch_size >= 1, "at least 1 (or null: by device)"),
        ("lr", config.lr > 0, "positive"),
        ("width", config.width >= 4 and config.width % 2 == 0, "an even number >= 4"),
        ("input_size", input_size_ok(config.input_size), "a side of at least 16, or [H, W] each at least 16"),
        ("blocks", len(config.blocks) == 3 and all(b >= 0 for b in config.blocks), "three counts >= 0, e.g. [1, 2, 2]"),
        ("pooling", config.pooling is None or config.pooling in POOLINGS, f"one of {', '.join(POOLINGS)} (or null)"),
        ("val_fraction", 0 <= config.val_fraction < 1, "in [0, 1)"),
        ("val_min", config.val_min >= 0, "0 (no floor) or more images"),
        ("labeled_limit", config.labeled_limit is None or config.labeled_limit >= 2, "at least 2 images (or null: all)"),
        ("warmup_fraction", 0 <= config.warmup_fraction < 1, "in [0, 1)"),
        ("checkpoint_minutes", config.checkpoint_minutes > 0, "positive minutes"),
        ("checkpoint_every_steps", config.checkpoint_every_steps >= 0, "0 (off) or more steps"),
        ("plateau_check_steps", config.plateau_check_steps >= 0, "0 (off) or more steps"),
        ("tta", config.tta >= 0, "0 (plain prediction) or more copies"),
        ("strong_min_steps", config.strong_min_steps >= 0, "0 (always strong) or more steps"),
        ("ema_decay", 0 <= config.ema_decay < 1, "in [0, 1)"),
        ("hold_max_fraction", 0 < config.hold_max_fraction <= 1, "in (0, 1]"),
        ("epoch_min_images", config.epoch_min_images >= 0, "0 (one pass an epoch) or more images"),
        ("time_budget", config.time_budget is None or config.time_budget > 0, "positive minutes"),
        ("phases", any(p.enabled for p in config.phases), "at least one enabled phase"),
    ]
    for key, ok, expected in rules:
        if not ok:
            raise ConfigError(f"config key {key!r}: must be {expected}, got {getattr(config, key)!r}")
    for key in ("weak_augment", "strong_augment"):
        policy = getattr(config, key)
        if errors := policy_errors(policy):
            name, expected = errors[0]
            raise ConfigError(f"config key '{key}.{name}': must be {expected}, got {getattr(policy, name)!r}")
    from semilabel.train.methods import check_methods

    config = dataclasses.replace(config, method_options=check_methods(config))  # each option as its type
    _check_method_choice(config)
    for i, phase in enumerate(config.phases):
        if phase.pretext_source not in ("labeled", "unlabeled", "none"):
            raise ConfigError(f"config key 'phases[{i}].pretext_source': must be labeled, unlabeled or none")
        for key in ("augment", "pseudo_augment"):
            policy = getattr(phase, key)
            if policy is not None and policy not in PRESETS:
                raise ConfigError(f"config key 'phases[{i}].{key}': must be one of {', '.join(PRESETS)}, got {policy!r}")
        if phase.epochs < 0 or phase.time_fraction < 0:
            raise ConfigError(f"config key 'phases[{i}]': epochs and time_fraction must be >= 0")
    return config


def _check_method_choice(config: Config) -> None:
    """ConfigError for a `methods` that names no method (semilabel.train.method_choice
    decides `auto`), or a `with_method` key of no setting."""
    from semilabel.train.methods import list_methods

    if config.methods not in ("auto", "none") and config.methods not in list_methods():
        raise ConfigError(f"config key 'methods': must be auto, none or a method ({', '.join(list_methods())}), "
                          f"got {config.methods!r}")
    names = {f.name for f in dataclasses.fields(Config)} - {"methods", "with_method", "phases"}
    for key in config.with_method:
        if key.split(".")[0] not in names:
            raise ConfigError(f"config key 'with_method.{key}': not a setting a run can take")


def config_from_dict(data: dict) -> Config:
    """A validated Config from a mapping of keys, old ones migrated (`migrate_config`)."""
    return _validate(_build(Config, migrate_config(data)))


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def builtin_configs() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("semilabel.configs").iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | Path = "default") -> Config:
    """A built-in recipe by name (`default`, `fixmatch`, `pseudo`, `report`) or a YAML file by path.

    A file may start from another recipe with `base: NAME_OR_PATH` (a built-in name, or a
    path relative to the file) and give only the keys it changes; each key it gives
    replaces the base's value whole (a `phases` list, a policy), but `method_options`,
    given per method and option. A file without `base` means what it did before recipes
    named one (`migrate_config`)."""
    data, source = _read_recipe(name_or_path, Path.cwd(), ())
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _read_recipe(name_or_path: str | Path, relative_to: Path, seen: tuple[str, ...]) -> tuple[dict, str]:
    """A recipe's keys with its `base` chain resolved, and the name of its source."""
    path = relative_to / Path(name_or_path)
    if str(name_or_path) in builtin_configs():
        text = resources.files("semilabel.configs").joinpath(f"{name_or_path}.yaml").read_text()
        source, here = f"config {name_or_path!r}", relative_to
    elif path.is_file():
        text, source, here = path.read_text(), str(path), path.parent
    else:
        where = f" (from {seen[-1]})" if seen else ""
        raise ConfigError(f"config {str(name_or_path)!r}{where}: not a built-in ({', '.join(builtin_configs())}) "
                          "nor a file")
    if source in seen:
        raise ConfigError(f"{source}: its base chain comes back to itself ({' -> '.join((*seen, source))})")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    base = data.pop("base", None)
    data = _move_method_keys(data)  # this file's older keys are its own method options
    if base is None:
        return data, source
    if not isinstance(base, str):
        raise ConfigError(f"{source}: config key 'base': expected a recipe name or a path, got {base!r}")
    base_data, _ = _read_recipe(base, here, (*seen, source))
    return _over_base(base_data, data), source


def _over_base(base: dict, data: dict) -> dict:
    """A recipe's keys over its base's: each replaces the base's value whole, but for
    `method_options`, which replace the base's per method and option."""
    merged = {**base, **data}
    ours, theirs = data.get("method_options"), base.get("method_options")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        merged["method_options"] = {**theirs, **ours}
        for name, options in ours.items():
            if isinstance(options, dict) and isinstance(theirs.get(name), dict):
                merged["method_options"][name] = {**theirs[name], **options}
    return merged


def apply_overrides(config: Config, overrides: dict[str, object]) -> Config:
    """Set dotted keys: `lr`, `group_weights.letter`, `phases.pseudo.enabled` (a phase by
    name or index). Values are checked like the file's."""
    data = config_to_dict(config)
    data["phases"] = [dict(p) for p in data["phases"]]
    for key, value in overrides.items():
        if key in _MOVED_TO_METHOD_OPTIONS:
            method, option = _MOVED_TO_METHOD_OPTIONS[key]
            raise ConfigError(f"config key {key!r} is now 'method_options.{method}.{option}'")
        *path, last = key.split(".")
        node = data
        for part in path:
            if isinstance(node, list):
                found = [p for i, p in enumerate(node) if p["name"] == part or str(i) == part]
                if not found:
                    raise ConfigError(f"config key {key!r}: no phase named {part!r}")
                node = found[0]
            elif isinstance(node, dict) and part in node:
                if node[part] is None:
                    node[part] = {}  # e.g. a phase's group_weights, unset until now
                node = node[part]
            elif isinstance(node, dict) and node is data.get("method_options"):
                node = node.setdefault(part, {})  # a method's options, none given until now
            else:
                raise ConfigError(f"config key {key!r} is unknown")
        if not isinstance(node, dict):
            raise ConfigError(f"config key {key!r}: name a phase, then its key")
        node[last] = value
    return config_from_dict(data)


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` with a YAML value (`lr=1e-3`, `sesemi=false`)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads `1e-3` as text
        except ValueError:
            pass
    return key.strip(), value


def save_config(config: Config, path: str | Path) -> None:
    from semilabel.io_utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
