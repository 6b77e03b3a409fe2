"""Pseudo-labels: the model's confident guesses on unlabelled images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PseudoLabels:
    """Which unlabelled images were admitted, the labels they were given and, per group, whether
    that group's label was admitted (with per-group admission an image's digit can be learnt
    while its letter is not)."""

    index: np.ndarray  # (K,) int64 positions in the unlabelled set
    targets: np.ndarray  # (K, G) int64 class indices
    confidence: np.ndarray  # (K,) the lowest group top-probability of each admitted image
    groups: np.ndarray | None = None  # (K, G) bool admitted groups; None: every group of every image

    def __len__(self) -> int:
        return len(self.index)

    def group_mask(self) -> np.ndarray:
        """(K, G) bool: which group labels of the admitted images count."""
        return np.ones(self.targets.shape, dtype=bool) if self.groups is None else self.groups


@torch.no_grad()
def select_confident(probs: list[torch.Tensor], threshold: float, max_count: int | None = None,
                     per_group: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group probabilities (each (N, C_g)) -> (targets (N, G), mask (N,), confidence (N,),
    groups (N, G) bool: each group's top probability above `threshold`).

    An image is admitted when every group's top probability exceeds `threshold` (with
    `per_group`, when any does); with `max_count`, only the `max_count` admitted images of
    highest `confidence`, the lowest top probability over the groups.
    """
    top = [p.max(dim=1) for p in probs]
    targets = torch.stack([t.indices for t in top], dim=1)
    values = torch.stack([t.values for t in top], dim=1)
    groups = values > threshold
    confidence = values.min(dim=1).values
    mask = groups.any(dim=1) if per_group else groups.all(dim=1)
    if max_count is not None and int(mask.sum()) > max_count:
        keep = torch.topk(torch.where(mask, confidence, torch.full_like(confidence, -1.0)), max_count).indices
        mask = torch.zeros_like(mask)
        mask[keep] = True
    return targets, mask, confidence, groups


def pseudo_from_predictions(probs: list[torch.Tensor], threshold: float, max_fraction: float = 1.0,
                            per_group: bool = False) -> PseudoLabels:
    """Admit images whose every group is above `threshold`, or with `per_group` whose any group
    is (that group's label alone counting); at most `max_fraction` of the set, the most confident."""
    n = len(probs[0])
    max_count = None if max_fraction >= 1 else int(max_fraction * n)
    targets, mask, confidence, groups = select_confident(probs, threshold, max_count, per_group)
    index = mask.nonzero(as_tuple=True)[0]
    return PseudoLabels(index.cpu().numpy().astype(np.int64), targets[index].cpu().numpy().astype(np.int64),
                        confidence[index].cpu().numpy(), groups[index].cpu().numpy() if per_group else None)
