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

from semilabel.models.inference import to_input
from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import Method, Rows, StepContext, register_method


@register_method("fixmatch")
class FixMatch(Method):
    @dataclass(frozen=True)
    class Options:
        threshold: float = 0.95  # teacher probability a group's label must exceed
        ratio: float = 1.0  # unlabelled rows per labelled row
        weight: float = 1.0  # loss weight relative to the labelled loss

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold < 1:
                return "threshold", "in [0, 1)"
            if self.ratio <= 0:
                return "ratio", "positive"
            if self.weight < 0:
                return "weight", "0 or more"
            return None

    def rows(self, ctx: StepContext) -> Rows | None:
        if ctx.unlabeled_x is None or len(ctx.unlabeled_x) == 0:
            return None
        n = max(1, round(self.options.ratio * ctx.batch_size))
        pick = torch.randint(len(ctx.unlabeled_x), (n,), generator=ctx.generator)
        x = to_input(ctx.unlabeled_x[pick], ctx.device)
        probs = ctx.teacher(ctx.augment(x, "weak"))  # per group (n, C_g), fp32
        top = [p.max(dim=1) for p in probs]
        targets = torch.stack([t.indices for t in top], dim=1)  # (n, G)
        mask = (torch.stack([t.values for t in top], dim=1) > self.options.threshold).float()  # (n, G)
        info = {f"fixmatch_admit_{g}": mask[:, g].mean() for g in range(mask.shape[1])}
        if ctx.unlabeled_hidden is not None:
            right = (targets.cpu() == ctx.unlabeled_hidden[pick]).float() * mask.cpu()
            info["fixmatch_correct"] = right.sum() / mask.sum().clamp(min=1).cpu()
        return Rows(ctx.augment(x, "strong"), targets, mask, info)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_fixmatch": loss.total.detach()}
