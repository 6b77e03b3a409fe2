"""Pseudo-labels: every epoch the teacher relabels the unlabelled set, and images whose
every group is predicted above `threshold` join training with those labels.

At most `max_fraction` of the set joins, the most confident; with `per_group` an image's
confident groups alone are admitted too (its digit can be learnt while its letter is
not; the joint head learns only images whose every group was admitted). Each step adds
as many pseudo-labelled rows as labelled ones, augmented by the phase's `pseudo_augment`
policy (default: as its labelled rows); their loss is weighted by `weight`. Older
recipes give the options as `pseudo_threshold`, `pseudo_weight`, `pseudo_max_fraction`
and `pseudo_per_group`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semilabel.models.inference import to_input
from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import EpochContext, Method, Rows, StepContext, register_method
from semilabel.train.pseudo import PseudoLabels, pseudo_from_predictions
from semilabel.train.staging import gather


@register_method("pseudo_label")
class PseudoLabel(Method):
    legacy_keys = {"pseudo_threshold": "threshold", "pseudo_weight": "weight", "pseudo_max_fraction": "max_fraction",
                   "pseudo_per_group": "per_group"}

    @dataclass(frozen=True)
    class Options:
        threshold: float = 0.95  # every group's top probability must exceed it
        weight: float = 1.0  # loss weight relative to the labelled loss
        max_fraction: float = 1.0  # at most this share of the unlabelled set joins per epoch
        per_group: bool = False  # also admit an image's confident groups alone

        def check(self) -> tuple[str, str] | None:
            if not 0 <= self.threshold <= 1:
                return "threshold", "in [0, 1]"
            if not 0 < self.max_fraction <= 1:
                return "max_fraction", "in (0, 1]"
            return None

    def __init__(self, config, options):
        super().__init__(config, options)
        self.labels: PseudoLabels | None = None

    def ready(self) -> bool:
        return self.labels is not None

    def on_epoch_start(self, ctx: EpochContext) -> dict[str, float]:
        if ctx.unlabeled is None:
            return {}
        pred = ctx.predict(ctx.unlabeled.images)
        self.labels = pseudo_from_predictions([torch.from_numpy(p) for p in pred.probs], self.options.threshold,
                                              self.options.max_fraction, self.options.per_group)
        info = {"pseudo_admitted": float(len(self.labels)), "pseudo_fraction": len(self.labels) / len(ctx.unlabeled)}
        groups = self.labels.group_mask()
        if self.labels.groups is not None:
            info.update({f"pseudo_admit_group{g}": float(groups[:, g].sum()) / len(ctx.unlabeled)
                         for g in range(groups.shape[1])})
        if ctx.hidden_labels is not None and len(self.labels):
            right = self.labels.targets == ctx.hidden_labels[self.labels.index]
            whole = groups.all(axis=1)
            if whole.any():
                info["pseudo_accuracy"] = float(right[whole].all(axis=1).mean())  # of the fully admitted images
            info["pseudo_group_accuracy"] = float(right[groups].mean())  # of every admitted group label
        return info

    def rows(self, ctx: StepContext) -> Rows | None:
        if self.labels is None or not len(self.labels) or ctx.unlabeled_x is None:
            return None
        n = ctx.batch_size
        take = torch.randint(len(self.labels), (n,), generator=ctx.generator)[ctx.rows]  # this rank's rows
        x = to_input(gather(ctx.unlabeled_x, torch.from_numpy(self.labels.index)[take], ctx.device), ctx.device)
        targets = gather(torch.from_numpy(self.labels.targets), take, ctx.device)  # host tables: gathered there
        weights = None
        if self.labels.groups is not None:
            weights = gather(torch.from_numpy(self.labels.groups), take, ctx.device).float()
        return Rows(ctx.augment(x, ctx.phase.pseudo_augment or ctx.phase.augment, n), targets, weights, total=n)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, rows.weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.options.weight * loss.total, {"loss_pseudo": loss.total.detach()}

    def state_dict(self) -> dict:
        if self.labels is None:
            return {}
        state = {"index": torch.from_numpy(self.labels.index), "targets": torch.from_numpy(self.labels.targets),
                 "confidence": torch.from_numpy(self.labels.confidence)}
        if self.labels.groups is not None:
            state["groups"] = torch.from_numpy(self.labels.groups)
        return state

    def load_state_dict(self, state: dict) -> None:
        if state:
            groups = state.get("groups")
            self.labels = PseudoLabels(state["index"].numpy(), state["targets"].numpy(), state["confidence"].numpy(),
                                       None if groups is None else groups.numpy())
        else:
            self.labels = None
