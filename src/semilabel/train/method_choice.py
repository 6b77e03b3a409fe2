"""`methods: auto`: whether a run trains on its unlabelled images, from the label curve.

The label curve (benchmarks/rows/labels.yaml, rows `labels-*`) trains the default recipe
with and without FixMatch-style consistency at 1,000 to 30,000 labels, 20 minutes on 2
cores. Consistency pays where the labelled images are few against the unlabelled ones;
with many labels a consistency step (about three labelled steps' compute) buys less than
the labelled steps it displaces. `auto` follows that: the method where the run trains on
at most AUTO_MAX_LABELS labelled images and has at least as many unlabelled ones, none
elsewhere. Its choice replaces `methods` in the run's config (a resume keeps it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

AUTO_METHOD = "fixmatch"
AUTO_MAX_LABELS = 2000  # they paid at 1,000 labels and not at 3,000: benchmarks/notes/2026-12-07-label-curve.md


@dataclass(frozen=True)
class MethodChoice:
    method: str | None  # the method the strong phases train, None: no method
    reason: str  # one line: what was chosen and why


def choose_method(methods: str, n_labeled: int, n_unlabeled: int) -> MethodChoice:
    """What `methods` means for a run training on n_labeled labelled and n_unlabeled unlabelled images."""
    if methods == "none":
        return MethodChoice(None, "methods: none (the unlabelled images are not trained on)")
    if methods != "auto":
        return MethodChoice(methods, f"methods: {methods}, as set")
    counts = f"{n_labeled:,} labelled and {n_unlabeled:,} unlabelled images"
    if n_unlabeled < max(1, n_labeled):
        return MethodChoice(None, f"methods: auto chose none: {counts}, fewer unlabelled than labelled "
                                  f"(--methods {AUTO_METHOD} trains on them anyway)")
    if n_labeled > AUTO_MAX_LABELS:
        return MethodChoice(None, f"methods: auto chose none: {counts}; above {AUTO_MAX_LABELS:,} labels the "
                                  f"labelled steps pay more (--methods {AUTO_METHOD} trains on them anyway)")
    return MethodChoice(AUTO_METHOD, f"methods: auto chose {AUTO_METHOD}: {counts}; at most {AUTO_MAX_LABELS:,} "
                                     f"labels, the unlabelled ones pay (--methods none trains without them)")


def run_counts(config, n_labeled: int, n_unlabeled: int, n_test: int) -> tuple[int, int]:
    """(labelled, unlabelled) images a run trains on, before its validation split: the
    labels `labeled_limit` leaves join the unlabelled pool, as the test images do with
    `unlabeled_test`."""
    kept = n_labeled if config.labeled_limit is None else min(config.labeled_limit, n_labeled)
    if not config.use_unlabeled:
        return kept, 0
    return kept, n_unlabeled + n_labeled - kept + (n_test if config.unlabeled_test else 0)


def resolve_methods(config, n_labeled: int, n_unlabeled: int):
    """(the config with `methods` decided, the choice): the chosen method added to every
    strong phase that lists none and the `with_method` settings applied; `methods` then
    names the method or none, so resolving again changes nothing."""
    from semilabel.config import apply_overrides

    choice = choose_method(config.methods, n_labeled, n_unlabeled)
    if choice.method is None:
        return dataclasses.replace(config, methods="none"), choice
    phases = tuple(dataclasses.replace(p, methods=(choice.method,)) if p.augment == "strong" and not p.methods else p
                   for p in config.phases)
    config = apply_overrides(dataclasses.replace(config, phases=phases, methods=choice.method), dict(config.with_method))
    return config, choice
