"""FixMatch-style consistency (Sohn et al. 2020), with a confidence mask per label group.

Each step draws `ratio` x batch unlabelled images; the teacher (the EMA of the
weights when `ema_decay` > 0, else the model itself, in evaluation mode) labels their
weak view, and the model learns those labels on their strong view. A group's label
counts by its weight from `mask`, so an image's digit can be learnt while its letter is
not; the joint head learns each image by the product of its groups' weights.

`mask` chooses the weights:
- `fixed`: 1 where the teacher's probability exceeds `threshold`, else 0.
- `flexmatch`: each class of each group gets its own threshold (FlexMatch, Zhang et
  al. 2021): `threshold` x b/(2-b), where b is the class's learning status: how many
  unlabelled images the teacher last labelled as that class above `threshold`, over the
  largest such count (or, while most images are still unlabelled, over their count: the
  warm-up, when every threshold starts low). The status is kept per unlabelled image.
- `softmatch`: no threshold (SoftMatch, Chen et al. 2023): 1 above the running mean of
  the teacher's top probability, and below it a Gaussian in the distance to that mean,
  of width the running standard deviation / 2; so every label counts, by how sure the
  teacher is against how sure it usually is, and `threshold` is unused.

With `align`, each group's teacher probabilities are first multiplied by the labelled
images' class shares over the running mean of the teacher's probabilities, and
renormalised (distribution alignment, ReMixMatch; SoftMatch's uniform alignment when
the classes are balanced): a teacher that over-predicts some classes is pulled back.

The running means follow the last ~100 steps (`MOMENTUM`) and start where a network
at chance would be. Under torchrun each process keeps them, and the FlexMatch status,
from the images it labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import (ConsistencyOptions, Method, Rows, StepContext, draw_with_teacher,
                                          register_method)
from semilabel.train.staging import gather
from semilabel.transfer import to_device

MASKS = ("fixed", "flexmatch", "softmatch")
MOMENTUM = 0.99  # running means over about the last 100 steps: a 20-minute CPU run makes 3,000


@register_method("fixmatch")
class FixMatch(Method):
    @dataclass(frozen=True)
    class Options(ConsistencyOptions):  # defaults: configs/default.yaml, method_options.fixmatch
        threshold: float  # teacher probability a group's label must exceed (fixed, flexmatch)
        mask: str  # fixed | flexmatch | softmatch: how each label is weighted
        align: bool  # align the teacher's class shares to the labelled images' (distribution alignment)

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold < 1:
                return "threshold", "in [0, 1)"
            if self.mask not in MASKS:
                return "mask", "one of " + ", ".join(MASKS)
            return super().check()

    def __init__(self, config, options):
        super().__init__(config, options)
        self.status: torch.Tensor | None = None  # (M, G) the class each unlabelled image was last admitted as; -1: none
        self.running: dict[str, list[torch.Tensor]] = {}  # per group: running statistics of the teacher
        self.shares: list[torch.Tensor] | None = None  # per group: the labelled images' class shares (from labeled_y)

    def rows(self, ctx: StepContext) -> Rows | None:
        drawn = draw_with_teacher(ctx, self.options.ratio)
        if drawn is None:
            return None
        n = drawn.total
        probs = self._aligned(ctx, drawn.probs) if self.options.align else drawn.probs
        top = [p.max(dim=1) for p in probs]
        targets = torch.stack([t.indices for t in top], dim=1)  # (b, G)
        confidence = torch.stack([t.values for t in top], dim=1)  # (b, G)
        info = {}
        if self.options.mask == "flexmatch":
            thresholds = self._class_thresholds(ctx, drawn, targets, confidence, [p.shape[1] for p in probs])
            info.update({f"fixmatch_threshold_{g}": thresholds[:, g].sum() / n for g in range(thresholds.shape[1])})
            mask = (confidence > thresholds).float()
        elif self.options.mask == "softmatch":
            mask, means = self._soft_weights(confidence, [p.shape[1] for p in probs])
            info.update({f"fixmatch_threshold_{g}": means[g] * len(confidence) / n for g in range(len(means))})
        else:
            mask = (confidence > self.options.threshold).float()  # (b, G)
        info.update({f"fixmatch_admit_{g}": mask[:, g].sum() / n for g in range(mask.shape[1])})  # shares of the mean
        if ctx.unlabeled_hidden is not None:  # counted on the device, read with the epoch's sums
            right = (targets == gather(ctx.unlabeled_hidden, drawn.pick, ctx.device)).float() * mask
            info["fixmatch_correct"] = (right.sum(), mask.sum())  # right / admitted, over all ranks
            info.update({f"fixmatch_correct_{g}": (right[:, g].sum(), mask[:, g].sum()) for g in range(mask.shape[1])})
        return Rows(ctx.augment(drawn.images, "strong", n), targets, mask, info, total=n)

    def _running(self, key: str, start: list[torch.Tensor]) -> list[torch.Tensor]:
        if key not in self.running:
            self.running[key] = start
        return self.running[key]

    def _aligned(self, ctx: StepContext, probs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each group's probabilities x (labelled class shares / the teacher's running mean), renormalised."""
        if self.shares is None:  # counts + 1, by scatter: a fixed size, no host sync
            self.shares = [torch.ones(p.shape[1], device=p.device).scatter_add_(
                0, ctx.labeled_y[:, g].to(p.device), torch.ones(len(ctx.labeled_y), device=p.device))
                if ctx.labeled_y is not None else torch.ones(p.shape[1], device=p.device) for g, p in enumerate(probs)]
            self.shares = [s / s.sum() for s in self.shares]
        means = self._running("teacher_mean", [torch.full((p.shape[1],), 1.0 / p.shape[1]) for p in probs])
        out = []
        for g, p in enumerate(probs):
            means[g] = to_device(means[g], p.device).mul_(MOMENTUM).add_(p.mean(dim=0), alpha=1 - MOMENTUM)
            aligned = p * self.shares[g] / means[g]
            out.append(aligned / aligned.sum(dim=1, keepdim=True))
        return out

    def _soft_weights(self, confidence: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(b, G) SoftMatch weights, and each group's running mean confidence after this step."""
        mean = self._running("confidence_mean", [torch.tensor(1.0 / size) for size in sizes])
        var = self._running("confidence_var", [torch.tensor(1.0) for _ in sizes])
        out = torch.empty_like(confidence)
        for g in range(len(sizes)):
            c = confidence[:, g]
            mean[g] = to_device(mean[g], c.device).mul(MOMENTUM).add(c.mean(), alpha=1 - MOMENTUM)
            spread = c.var(unbiased=True) if len(c) > 1 else torch.zeros((), device=c.device)
            var[g] = to_device(var[g], c.device).mul(MOMENTUM).add(spread, alpha=1 - MOMENTUM)
            below = (c - mean[g]).clamp(max=0.0)
            out[:, g] = torch.exp(-below.square() / (2 * var[g].clamp_min(1e-8) / 4))  # width: std / 2
        return out, list(mean)

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
        state = {f"{key}_{g}": t.cpu() for key, ts in self.running.items() for g, t in enumerate(ts)}
        if self.status is not None:
            state["status"] = self.status.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.status = state.get("status")
        self.running = {}
        for name, t in state.items():
            if name != "status":
                key, g = name.rsplit("_", 1)
                self.running.setdefault(key, []).insert(int(g), t)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_fixmatch": loss.total.detach()}
