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
    class Options(ConsistencyOptions):
        threshold: float = 0.95  # teacher probability a group's label must exceed

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold < 1:
                return "threshold", "in [0, 1)"
            return super().check()

    def rows(self, ctx: StepContext) -> Rows | None:
        drawn = draw_with_teacher(ctx, self.options.ratio)
        if drawn is None:
            return None
        pick, x, probs = drawn  # probs: the teacher's, per group (n, C_g), fp32
        top = [p.max(dim=1) for p in probs]
        targets = torch.stack([t.indices for t in top], dim=1)  # (n, G)
        mask = (torch.stack([t.values for t in top], dim=1) > self.options.threshold).float()  # (n, G)
        info = {f"fixmatch_admit_{g}": mask[:, g].mean() for g in range(mask.shape[1])}
        if ctx.unlabeled_hidden is not None:  # counted on the device, read with the epoch's sums
            right = (targets == gather(ctx.unlabeled_hidden, pick, ctx.device)).float() * mask
            info["fixmatch_correct"] = right.sum() / mask.sum().clamp(min=1)
        return Rows(ctx.augment(x, "strong"), targets, mask, info)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_fixmatch": loss.total.detach()}
