"""Pseudo-labels: every epoch the teacher relabels the unlabelled set, and images whose
every group is predicted above `pseudo_threshold` join training with those labels.

Options come from the top-level keys `pseudo_threshold`, `pseudo_weight` and
`pseudo_max_fraction`; each step adds as many pseudo-labelled rows as labelled ones,
augmented like the labelled rows of the phase.
"""

from __future__ import annotations

import torch

from semilabel.models.inference import to_input
from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import EpochContext, Method, Rows, StepContext, register_method
from semilabel.train.pseudo import PseudoLabels, pseudo_from_predictions


@register_method("pseudo_label")
class PseudoLabel(Method):
    def __init__(self, config, options):
        super().__init__(config, options)
        self.labels: PseudoLabels | None = None

    def ready(self) -> bool:
        return self.labels is not None

    def on_epoch_start(self, ctx: EpochContext) -> dict[str, float]:
        if ctx.unlabeled is None:
            return {}
        pred = ctx.predict(ctx.unlabeled.images)
        self.labels = pseudo_from_predictions([torch.from_numpy(p) for p in pred.probs],
                                              self.config.pseudo_threshold, self.config.pseudo_max_fraction)
        info = {"pseudo_admitted": float(len(self.labels)), "pseudo_fraction": len(self.labels) / len(ctx.unlabeled)}
        if ctx.hidden_labels is not None and len(self.labels):
            info["pseudo_accuracy"] = float((self.labels.targets == ctx.hidden_labels[self.labels.index]).all(axis=1).mean())
        return info

    def rows(self, ctx: StepContext) -> Rows | None:
        if self.labels is None or not len(self.labels) or ctx.unlabeled_x is None:
            return None
        take = torch.randint(len(self.labels), (ctx.batch_size,), generator=ctx.generator)
        x = to_input(ctx.unlabeled_x[torch.from_numpy(self.labels.index)[take]], ctx.device)
        targets = torch.from_numpy(self.labels.targets)[take].to(ctx.device)
        return Rows(ctx.augment(x, ctx.phase.augment), targets)

    def loss(self, output, rows: Rows, denominator: int, group_weights: dict[str, float]):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights,
                               label_smoothing=self.config.label_smoothing, denominator=denominator)
        return self.config.pseudo_weight * loss.total, {"loss_pseudo": loss.total.detach()}

    def state_dict(self) -> dict:
        if self.labels is None:
            return {}
        return {"index": torch.from_numpy(self.labels.index), "targets": torch.from_numpy(self.labels.targets),
                "confidence": torch.from_numpy(self.labels.confidence)}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.labels = PseudoLabels(state["index"].numpy(), state["targets"].numpy(), state["confidence"].numpy())
        else:
            self.labels = None
