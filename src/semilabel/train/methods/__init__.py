"""Semi-supervised methods by name: `create_method("fixmatch", config)`, `list_methods()`.

A method adds rows to each training step and a loss on their outputs (see
`base.Method`); a phase lists the methods it runs (`phases[i].methods` in the YAML).
The older recipe flags still work: `pseudo_labels: true` in a phase means the
`pseudo_label` method, and `sesemi: true` means `sesemi` in every phase whose
`pretext_source` is not `none`. A new method is one new module in this folder that
registers itself (`@register_method`): every module here is imported (`discover`).
"""

from __future__ import annotations

import importlib
import pkgutil

from semilabel.train.methods.base import (EpochContext, Method, Rows, StepContext, create_method, list_methods,
                                          method_class, register_method)

__all__ = ["EpochContext", "Method", "Rows", "StepContext", "check_methods", "create_method", "discover",
           "legacy_option_keys", "list_methods", "needed_heads", "phase_methods", "register_method"]


def discover() -> None:
    """Import every module of this package not imported yet; each registers its methods."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


discover()


def phase_methods(config, phase) -> list[str]:
    """The method names a phase runs, in a fixed order (its list, then the legacy flags)."""
    names = list(phase.methods)
    if phase.pseudo_labels and "pseudo_label" not in names:
        names.append("pseudo_label")
    if config.sesemi and phase.pretext_source != "none" and "sesemi" not in names:
        names.append("sesemi")
    return names


def needed_heads(config) -> set[str]:
    """The extra heads (`Method.head`) the model needs: those of the methods any phase
    lists, enabled or not, and with the legacy `sesemi` flag the pretext head, even
    where no phase draws pretext images (checkpoints so made hold it)."""
    names = {n for p in config.phases for n in p.methods} | ({"sesemi"} if config.sesemi else set())
    return {method_class(n).head for n in names if n in list_methods()} - {None}


def legacy_option_keys() -> dict[str, tuple[str, str]]:
    """Older top-level config keys that are now method options: key -> (method, option)."""
    return {key: (name, option) for name in list_methods() for key, option in method_class(name).legacy_keys.items()}


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
