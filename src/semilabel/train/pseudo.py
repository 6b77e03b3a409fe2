"""Pseudo-labels: the model's confident guesses on unlabelled images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PseudoLabels:
    """Which unlabelled images were admitted and the labels they were given."""

    index: np.ndarray  # (K,) int64 positions in the unlabelled set
    targets: np.ndarray  # (K, G) int64 class indices
    confidence: np.ndarray  # (K,) the lowest group top-probability of each admitted image

    def __len__(self) -> int:
        return len(self.index)


@torch.no_grad()
def select_confident(probs: list[torch.Tensor], threshold: float,
                     max_count: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group probabilities (each (N, C_g)) -> (targets (N, G), mask (N,), confidence (N,)).

    An image is admitted when every group's top probability exceeds `threshold`;
    with `max_count`, only the most confident `max_count` of those.
    """
    top = [p.max(dim=1) for p in probs]
    targets = torch.stack([t.indices for t in top], dim=1)
    confidence = torch.stack([t.values for t in top], dim=1).min(dim=1).values
    mask = confidence > threshold
    if max_count is not None and int(mask.sum()) > max_count:
        keep = torch.topk(torch.where(mask, confidence, torch.full_like(confidence, -1.0)), max_count).indices
        mask = torch.zeros_like(mask)
        mask[keep] = True
    return targets, mask, confidence


def pseudo_from_predictions(probs: list[torch.Tensor], threshold: float, max_fraction: float = 1.0) -> PseudoLabels:
    n = len(probs[0])
    max_count = None if max_fraction >= 1 else int(max_fraction * n)
    targets, mask, confidence = select_confident(probs, threshold, max_count)
    index = mask.nonzero(as_tuple=True)[0]
    return PseudoLabels(index.cpu().numpy().astype(np.int64), targets[index].cpu().numpy().astype(np.int64),
                        confidence[index].cpu().numpy())
