"""`methods: auto`: whether a run trains on its unlabelled images, from the label curve.

The label curve (benchmarks/rows/labels.yaml, rows `labels-*`) trains the default recipe
with and without FixMatch-style consistency at 1,000 to 30,000 labels, 20 minutes on 2
cores; the numbers rows (benchmarks/rows/numbers.yaml) do the same for 3 minutes. What
tells the rows apart is how many passes over the labelled images the run can make: a
labelled set the budget passes over hundreds of times is learnt by heart early, and
consistency on the unlabelled images is what the rest of the budget can still teach; a
set passed over a few dozen times is still being learnt, and a consistency step (about
2.5 labelled steps' compute) costs more than it brings.

`auto` estimates those passes before training: under a time budget from the minutes and
the labelled images a step-bound run of the default recipe reads per minute on the device
kind (LABELLED_IMAGES_PER_MINUTE), else from the recipe's epochs (one pass each). It
chooses the method where the passes reach AUTO_MIN_PASSES and the unlabelled images are
at least as many as the labelled ones, none elsewhere. Its choice replaces `methods` in
the run's config (a resume keeps it).

The same passes settle a CPU run's batch size when the config leaves it unset: from
SMALL_BATCH_MIN_PASSES, 32 labelled images a step instead of 128, with or without the
method (semilabel.device). There the count of steps limits a run, not the rows in each: at
1,000 labels 32 + 32 rows a step beat 128 + 128, where 32 + 224 (as many steps, and more
unlabelled images a second) did not; the labelled images alone gained at 1,000 and 3,000
labels, the method at 1,000 and tied at 3,000.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

AUTO_METHOD = "fixmatch"
# passes over the labelled images from which the method pays: between the rows labels-10k-*
# (a loss) and labels-3k-* (the smallest gain), with numbers-fixmatch a loss too:
# benchmarks/notes/2026-12-07-label-curve-passes.md
AUTO_MIN_PASSES = 150
# labelled images a minute of the default recipe's supervised steps: 2 CPU cores (the label
# curve's -without rows: 6,000-6,700 steps of 128 in 20 minutes); one H200 (the `default` GPU row,
# 13,743 images/s at batch 512). A faster machine makes more passes than estimated, so `auto`
# errs toward none there.
LABELLED_IMAGES_PER_MINUTE = {"cpu": 40_000, "cuda": 800_000}
# passes from which a CPU run takes batches of 32, not 128, as many as the method's: the rows
# labels-{1k,3k}-*-batch-32 gained without the method and gained (1k) or tied (3k) with it; no
# row has measured batch 32 below: benchmarks/notes/2026-12-08-few-labels-small-batches.md
SMALL_BATCH_MIN_PASSES = AUTO_MIN_PASSES


@dataclass(frozen=True)
class MethodChoice:
    method: str | None  # the method the strong phases train, None: no method
    reason: str  # one line: what was chosen and why
    passes: float = 0.0  # the estimated passes over the labelled images it rests on

    @property
    def many_passes(self) -> bool:
        """Whether the budget passes over the labelled images often enough for a CPU run's
        smaller batch (semilabel.device)."""
        return self.passes >= SMALL_BATCH_MIN_PASSES


def labelled_passes(config, n_labeled: int, device_type: str = "cpu", world_size: int = 1) -> float:
    """About how many passes over its n_labeled labelled images a run of `config` makes
    without a method: under a time budget, the minutes x LABELLED_IMAGES_PER_MINUTE of
    the device kind (x the processes on GPUs); else the phases' epochs."""
    if config.time_budget is None:
        return float(sum(phase.epochs for phase in config.phases))
    rate = LABELLED_IMAGES_PER_MINUTE.get(device_type, LABELLED_IMAGES_PER_MINUTE["cpu"])
    if device_type == "cuda":
        rate *= world_size  # CPU processes share one machine's cores
    return config.time_budget * rate / max(1, n_labeled)


def choose_method(methods: str, n_labeled: int, n_unlabeled: int, passes: float) -> MethodChoice:
    """What `methods` means for a run training on n_labeled labelled and n_unlabeled
    unlabelled images, which can pass over its labelled ones about `passes` times."""
    if methods == "none":
        return MethodChoice(None, "methods: none (the unlabelled images are not trained on)", passes)
    if methods != "auto":
        return MethodChoice(methods, f"methods: {methods}, as set", passes)
    counts = f"{n_labeled:,} labelled and {n_unlabeled:,} unlabelled images"
    if n_unlabeled < max(1, n_labeled):
        return MethodChoice(None, f"methods: auto chose none: {counts}, fewer unlabelled than labelled "
                                  f"(--methods {AUTO_METHOD} trains on them anyway)", passes)
    budget = f"about {passes:,.0f} passes over the labelled images in the budget"
    if passes < AUTO_MIN_PASSES:
        return MethodChoice(None, f"methods: auto chose none: {counts}, {budget}; below {AUTO_MIN_PASSES} the "
                                  f"labelled steps pay more (--methods {AUTO_METHOD} trains on them anyway)", passes)
    return MethodChoice(AUTO_METHOD, f"methods: auto chose {AUTO_METHOD}: {counts}, {budget}; from "
                                     f"{AUTO_MIN_PASSES} the unlabelled ones pay (--methods none trains without them)",
                        passes)


def batch_note(choice: MethodChoice, batch_size: int) -> str:
    """The line that says why a CPU run left at `batch_size: null` takes small batches."""
    return (f"batch {batch_size}: about {choice.passes:,.0f} passes over the labelled images in the budget; from "
            f"{SMALL_BATCH_MIN_PASSES} the count of steps limits a CPU run, not their size (--batch-size overrides)")


def run_counts(config, n_labeled: int, n_unlabeled: int, n_test: int) -> tuple[int, int]:
    """(labelled, unlabelled) images a run trains on, before its validation split: the
    labels `labeled_limit` leaves join the unlabelled pool, as the test images do with
    `unlabeled_test`."""
    kept = n_labeled if config.labeled_limit is None else min(config.labeled_limit, n_labeled)
    if not config.use_unlabeled:
        return kept, 0
    return kept, n_unlabeled + n_labeled - kept + (n_test if config.unlabeled_test else 0)


def resolve_methods(config, n_labeled: int, n_unlabeled: int, device_type: str = "cpu", world_size: int = 1):
    """(the config with `methods` decided, the choice): the chosen method added to every
    strong phase that lists none and the `with_method` settings applied; `methods` then
    names the method or none, so resolving again changes nothing."""
    from semilabel.config import apply_overrides

    passes = labelled_passes(config, n_labeled, device_type, world_size)
    choice = choose_method(config.methods, n_labeled, n_unlabeled, passes)
    if choice.method is None:
        return dataclasses.replace(config, methods="none"), choice
    phases = tuple(dataclasses.replace(p, methods=(choice.method,)) if p.augment == "strong" and not p.methods else p
                   for p in config.phases)
    config = apply_overrides(dataclasses.replace(config, phases=phases, methods=choice.method), dict(config.with_method))
    return config, choice
