"""SESEMI: a self-supervised head predicts which of 6 rotations/flips was applied.

Each step adds `pretext_batch_size` rows from the phase's `pretext_source` (labelled
or unlabelled images), augmented like the phase's labelled rows, then transformed;
the loss is the cross-entropy of the transform, weighted by `pretext_weight`.
"""

from __future__ import annotations

import torch

from semilabel.data.augment import pretext_batch
from semilabel.models.inference import to_input
from semilabel.train.losses import pretext_loss
from semilabel.train.methods.base import Method, Rows, StepContext, register_method
from semilabel.train.staging import gather


@register_method("sesemi")
class Sesemi(Method):
    pretext = True

    def rows(self, ctx: StepContext) -> Rows | None:
        use_unlabeled = ctx.phase.pretext_source == "unlabeled" and ctx.unlabeled_x is not None
        source = ctx.unlabeled_x if use_unlabeled else ctx.labeled_x
        n = self.config.pretext_batch_size
        pick = torch.randint(len(source), (n,), generator=ctx.generator)[ctx.rows]  # this rank's rows
        x = ctx.augment(to_input(gather(source, pick, ctx.device), ctx.device), ctx.phase.augment, n)
        x, targets = pretext_batch(x, generator=ctx.generator, batch=n, rows=ctx.rows)
        return Rows(x, targets, total=n)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = pretext_loss(output.pretext, rows.targets, denominator=denominator)
        return self.config.pretext_weight * loss, {"loss_pretext": loss.detach()}
