"""Losses: per-group cross-entropies with group and per-sample weights, SESEMI, joint."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semilabel.models.classifier import ModelOutput


@dataclass
class LossOutput:
    total: torch.Tensor  # scalar that is back-propagated
    parts: dict[str, torch.Tensor]  # each unweighted component, detached (read at log points: no sync per step)


def joint_targets(targets: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """(B, G) class indices -> (B,) index of the class combination (row-major)."""
    index = torch.zeros(len(targets), dtype=torch.long, device=targets.device)
    for g, size in enumerate(sizes):
        index = index * size + targets[:, g]
    return index


def supervised_loss(output: ModelOutput, targets: torch.Tensor, group_names: tuple[str, ...],
                    group_weights: dict[str, float], sample_weights: torch.Tensor | None = None,
                    label_smoothing: float = 0.0, denominator: int | None = None) -> LossOutput:
    """sum_g w_g * mean_i(s_i * CE_ig) (+ the joint head's CE, weight 1).

    targets: (B, G); sample_weights: (B,) e.g. 1 for labelled, pseudo_weight for
    pseudo-labelled and 0 for masked samples. The mean divides by B, not by the sum of
    weights, so masked samples lower the loss rather than re-weighting the rest.
    `denominator` replaces B when this batch is one rank's share of a global batch.
    """
    b = len(targets) if denominator is None else denominator
    s = torch.ones(len(targets), device=targets.device) if sample_weights is None else sample_weights
    total = torch.zeros((), device=targets.device)
    parts: dict[str, torch.Tensor] = {}
    for g, (name, logits) in enumerate(zip(group_names, output.groups)):
        ce = F.cross_entropy(logits.float(), targets[:, g], reduction="none", label_smoothing=label_smoothing)
        term = (s * ce).sum() / max(b, 1)
        parts[f"loss_{name}"] = term.detach()
        total = total + group_weights.get(name, 1.0) * term
    if output.joint is not None:
        sizes = tuple(lg.shape[1] for lg in output.groups)
        ce = F.cross_entropy(output.joint.float(), joint_targets(targets, sizes), reduction="none")
        term = (s * ce).sum() / max(b, 1)
        parts["loss_joint"] = term.detach()
        total = total + term
    return LossOutput(total, parts)


def pretext_loss(logits: torch.Tensor, targets: torch.Tensor, denominator: int | None = None) -> torch.Tensor:
    """SESEMI: cross-entropy of the predicted transform (summed / `denominator` if given)."""
    if denominator is None:
        return F.cross_entropy(logits.float(), targets)
    return F.cross_entropy(logits.float(), targets, reduction="sum") / max(denominator, 1)
