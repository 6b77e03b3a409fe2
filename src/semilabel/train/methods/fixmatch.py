"""FixMatch-style consistency (Sohn et al. 2020), with a confidence mask per label group.

Each step draws `ratio` x batch unlabelled images; the teacher (the EMA of the
weights when `ema_decay` > 0, else the model itself, in evaluation mode) labels their
weak view, and the model learns those labels on their strong view. A group's label
counts only where the teacher's probability for it exceeds `threshold`, so an image's
digit can be learnt while its letter is not; the joint head learns only images whose
every group was admitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.train.losses import supervised_loss
from semilabel.train.staging import gather
from semilabel.train.methods.base import (ConsistencyOptions, Method, Rows, StepContext, draw_with_teacher,
                                          register_method)


@register_method("fixmatch")
class FixMatch(Method):
    @dataclass(frozen=True)
    class Options(ConsistencyOptions):  # defaults: configs/default.yaml, method_options.fixmatch
        threshold: float  # teacher probability a group's label must exceed

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold < 1:
                return "threshold", "in [0, 1)"
            return super().check()

    def rows(self, ctx: StepContext) -> Rows | None:
        drawn = draw_with_teacher(ctx, self.options.ratio)
        if drawn is None:
            return None
        n = drawn.total
        top = [p.max(dim=1) for p in drawn.probs]
        targets = torch.stack([t.indices for t in top], dim=1)  # (b, G)
        mask = (torch.stack([t.values for t in top], dim=1) > self.options.threshold).float()  # (b, G)
        info = {f"fixmatch_admit_{g}": mask[:, g].sum() / n for g in range(mask.shape[1])}  # shares of the mean
        if ctx.unlabeled_hidden is not None:  # counted on the device, read with the epoch's sums
            right = (targets == gather(ctx.unlabeled_hidden, drawn.pick, ctx.device)).float() * mask
            info["fixmatch_correct"] = (right.sum(), mask.sum())  # right / admitted, over all ranks
        return Rows(ctx.augment(drawn.images, "strong", n), targets, mask, info, total=n)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_fixmatch": loss.total.detach()}
