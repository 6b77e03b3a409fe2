"""Semi-supervised methods by name: `create_method("fixmatch", config)`, `list_methods()`.

A method adds rows to each training step and a loss on their outputs (see
`base.Method`); a phase lists the methods it runs (`phases[i].methods` in the YAML).
The older recipe flags still work: `pseudo_labels: true` in a phase means the
`pseudo_label` method, and `sesemi: true` means `sesemi` in every phase whose
`pretext_source` is not `none`. A new method is one new module here that registers
itself, imported below.
"""

from __future__ import annotations

from semilabel.train.methods.base import (EpochContext, Method, Rows, StepContext, list_methods, register_method,
                                          create_method)
from semilabel.train.methods import fixmatch, mean_teacher, pseudo_label, sesemi  # noqa: F401  (they register themselves)

__all__ = ["EpochContext", "Method", "Rows", "StepContext", "check_methods", "create_method", "list_methods",
           "phase_methods", "register_method"]


def phase_methods(config, phase) -> list[str]:
    """The method names a phase runs, in a fixed order (its list, then the legacy flags)."""
    names = list(phase.methods)
    if phase.pseudo_labels and "pseudo_label" not in names:
        names.append("pseudo_label")
    if config.sesemi and phase.pretext_source != "none" and "sesemi" not in names:
        names.append("sesemi")
    return names


def check_methods(config) -> None:
    """ConfigError naming the key for an unknown method or method option."""
    from semilabel.errors import ConfigError

    known = list_methods()
    for i, phase in enumerate(config.phases):
        for name in phase.methods:
            if name not in known:
                raise ConfigError(f"config key 'phases[{i}].methods': unknown method {name!r} "
                                  f"(choose from {', '.join(known)})")
    for name in config.method_options:
        if name not in known:
            raise ConfigError(f"config key 'method_options.{name}': unknown method (choose from {', '.join(known)})")
        create_method(name, config)  # validates its options
