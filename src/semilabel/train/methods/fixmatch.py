"""FixMatch-style consistency (Sohn et al. 2020), with a confidence mask per label group.

Each step draws `ratio` x batch unlabelled images; the teacher (the EMA of the
weights when `ema_decay` > 0, else the model itself, in evaluation mode) labels their
weak view, and the model learns those labels on their strong view. A group's label
counts only where the teacher's probability for it exceeds `threshold`, so an image's
digit can be learnt while its letter is not; the joint head learns only images whose
every group was admitted.

With `adaptive`, each class of each group gets its own threshold (FlexMatch, Zhang et
al. 2021): `threshold` x b/(2-b), where b is the class's learning status: how many
unlabelled images the teacher last labelled as that class above `threshold`, over the
largest such count (or, while most images are still unlabelled, over their count: the
warm-up, when every threshold starts low). Classes learnt slowly (letters against digits,
rare or hard classes) admit their images sooner. The status is kept per unlabelled image
on the device; under torchrun each process counts the images it labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import (ConsistencyOptions, Method, Rows, StepContext, draw_with_teacher,
                                          register_method)
from semilabel.train.staging import gather
from semilabel.transfer import to_device


@register_method("fixmatch")
class FixMatch(Method):
    @dataclass(frozen=True)
    class Options(ConsistencyOptions):  # defaults: configs/default.yaml, method_options.fixmatch
        threshold: float  # teacher probability a group's label must exceed
        adaptive: bool  # per-class thresholds from each class's learning status (FlexMatch)

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold < 1:
                return "threshold", "in [0, 1)"
            return super().check()

    def __init__(self, config, options):
        super().__init__(config, options)
        self.status: torch.Tensor | None = None  # (M, G) the class each unlabelled image was last admitted as; -1: none

    def rows(self, ctx: StepContext) -> Rows | None:
        drawn = draw_with_teacher(ctx, self.options.ratio)
        if drawn is None:
            return None
        n = drawn.total
        top = [p.max(dim=1) for p in drawn.probs]
        targets = torch.stack([t.indices for t in top], dim=1)  # (b, G)
        confidence = torch.stack([t.values for t in top], dim=1)  # (b, G)
        info = {}
        if self.options.adaptive:
            thresholds = self._class_thresholds(ctx, drawn, targets, confidence, [p.shape[1] for p in drawn.probs])
            info.update({f"fixmatch_threshold_{g}": thresholds[:, g].sum() / n for g in range(thresholds.shape[1])})
            mask = (confidence > thresholds).float()
        else:
            mask = (confidence > self.options.threshold).float()  # (b, G)
        info.update({f"fixmatch_admit_{g}": mask[:, g].sum() / n for g in range(mask.shape[1])})  # shares of the mean
        if ctx.unlabeled_hidden is not None:  # counted on the device, read with the epoch's sums
            right = (targets == gather(ctx.unlabeled_hidden, drawn.pick, ctx.device)).float() * mask
            info["fixmatch_correct"] = (right.sum(), mask.sum())  # right / admitted, over all ranks
            info.update({f"fixmatch_correct_{g}": (right[:, g].sum(), mask[:, g].sum()) for g in range(mask.shape[1])})
        return Rows(ctx.augment(drawn.images, "strong", n), targets, mask, info, total=n)

    def _class_thresholds(self, ctx: StepContext, drawn, targets: torch.Tensor, confidence: torch.Tensor,
                          sizes: list[int]) -> torch.Tensor:
        """(b, G) each drawn image's threshold per group, from the learning status before
        this step; then the status takes this step's labels above `threshold`."""
        if self.status is None or len(self.status) != len(ctx.unlabeled_x):
            self.status = torch.full((len(ctx.unlabeled_x), len(sizes)), -1, dtype=torch.long, device=ctx.device)
        if self.status.device != ctx.device:
            self.status = to_device(self.status, ctx.device)  # restored from a checkpoint on the host
        pick = to_device(drawn.pick, ctx.device)
        out = torch.empty_like(confidence)
        for g, size in enumerate(sizes):
            counts = torch.zeros(size + 1, device=ctx.device).scatter_add_(
                0, self.status[:, g] + 1, torch.ones(len(self.status), device=ctx.device))  # [unused, class 0, ...]
            learnt = counts[1:]
            status = learnt / torch.maximum(learnt.max(), counts[0]).clamp_min(1)  # warm-up: over the unused count
            out[:, g] = self.options.threshold * (status / (2 - status))[targets[:, g]]
        over = confidence > self.options.threshold
        self.status[pick] = torch.where(over, targets, self.status[pick])
        return out

    def state_dict(self) -> dict:
        return {} if self.status is None else {"status": self.status.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.status = state.get("status")

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_fixmatch": loss.total.detach()}
