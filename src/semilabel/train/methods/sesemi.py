"""SESEMI: a self-supervised head predicts which of 6 rotations/flips was applied.

Each step adds `batch_size` rows from the phase's `pretext_source` (labelled or
unlabelled images), augmented like the phase's labelled rows, then transformed; they
train the model's pretext head, and the loss is the cross-entropy of the transform,
weighted by `weight`. Older recipes give the options as `pretext_batch_size` and
`pretext_weight`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.data.augment import pretext_batch
from semilabel.models.inference import to_input
from semilabel.train.losses import pretext_loss
from semilabel.train.methods.base import Method, Rows, StepContext, register_method
from semilabel.train.staging import gather


@register_method("sesemi")
class Sesemi(Method):
    head = "pretext"
    legacy_keys = {"pretext_batch_size": "batch_size", "pretext_weight": "weight"}

    @dataclass(frozen=True)
    class Options:
        batch_size: int = 32  # pretext images per step
        weight: float = 0.5  # loss weight relative to the labelled loss

        def check(self) -> tuple[str, str] | None:
            return ("batch_size", "at least 1") if self.batch_size < 1 else None

    def may_idle(self, world_size: int) -> bool:
        return self.options.batch_size < world_size

    def rows(self, ctx: StepContext) -> Rows | None:
        use_unlabeled = ctx.phase.pretext_source == "unlabeled" and ctx.unlabeled_x is not None
        source = ctx.unlabeled_x if use_unlabeled else ctx.labeled_x
        n = self.options.batch_size
        pick = torch.randint(len(source), (n,), generator=ctx.generator)[ctx.rows]  # this rank's rows
        x = ctx.augment(to_input(gather(source, pick, ctx.device), ctx.device), ctx.phase.augment, n)
        x, targets = pretext_batch(x, generator=ctx.generator, batch=n, rows=ctx.rows)
        return Rows(x, targets, total=n)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = pretext_loss(output.pretext, rows.targets, denominator=denominator)
        return self.options.weight * loss, {"loss_pretext": loss.detach()}
