"""Mean Teacher (Tarvainen & Valpola 2017): consistency with the EMA of the weights, no threshold.

Each step draws `ratio` x batch unlabelled images; the teacher (the EMA of the weights
when `ema_decay` > 0, else the model itself, in evaluation mode) gives every group's
probabilities on a weak view, and the model's probabilities on a strong view are
pulled towards them by the squared error, averaged over each group's classes, weighted
by the phase's group weights and by `weight`. Unlike FixMatch every image counts,
confident or not, and the target stays soft. Both sides read the probabilities as prediction does (the joint head's scores
combined with the group heads', marginalised per group), so the joint head learns too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.models.classifier import combined_distribution, marginals
from semilabel.train.staging import gather
from semilabel.train.methods.base import (ConsistencyOptions, Method, Rows, StepContext, draw_with_teacher,
                                          register_method)


@register_method("mean_teacher")
class MeanTeacher(Method):
    @dataclass(frozen=True)
    class Options(ConsistencyOptions):  # defaults: configs/default.yaml, method_options.mean_teacher
        pass  # `weight` weighs the class-averaged squared error

    def rows(self, ctx: StepContext) -> Rows | None:
        drawn = draw_with_teacher(ctx, self.options.ratio)
        if drawn is None:
            return None
        probs, n = drawn.probs, drawn.total
        targets = torch.cat(probs, dim=1)  # (b, sum C_g): soft targets, groups side by side
        cells = len(probs) * n  # figures are means over every (image, group) of the global draw
        info = {"mean_teacher_confidence": torch.stack([p.max(dim=1).values for p in probs]).sum() / cells}
        if ctx.unlabeled_hidden is not None:  # counted on the device, read with the epoch's sums
            top = torch.stack([p.argmax(dim=1) for p in probs], dim=1)
            right = top == gather(ctx.unlabeled_hidden, drawn.pick, ctx.device)
            info["mean_teacher_correct"] = right.float().sum() / cells
        return Rows(ctx.augment(drawn.images, "strong", n), targets, None, info, total=n)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        student = marginals(combined_distribution(output))  # per group (n, C_g), fp32, differentiable
        teacher = torch.split(rows.targets, [p.shape[1] for p in student], dim=1)
        total = rows.targets.new_zeros(())
        for weight, s, t in zip(group_weights.values(), student, teacher):
            total = total + weight * ((s - t) ** 2).mean(dim=1).sum() / denominator
        return self.options.weight * total, {"loss_mean_teacher": total.detach()}
