"""Batched prediction with a trained classifier: bounded memory, no gradients."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semilabel.data.augment_policy import AugmentPolicy, apply_policy
from semilabel.models.classifier import (MultiHeadClassifier, add_distributions, combined_distribution, decode,
                                         divide_distribution)
from semilabel.transfer import to_device


@dataclass(frozen=True)
class Predictions:
    indices: np.ndarray  # (N, G) int64 predicted class per group
    probs: list[np.ndarray]  # per group (N, C_g) float32


def to_input(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W) uint8 grey -> (B, 1, H, W), or (B, H, W, C) colour -> (B, C, H, W): float in 0-1 on `device`."""
    x = to_device(torch.as_tensor(images), device)
    if x.dim() == 4:  # channels last, as images are stored: the network's layout is (B, C, H, W)
        return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return x.float().div_(255.0).unsqueeze(1)


@torch.no_grad()
def predict(model: MultiHeadClassifier, images: np.ndarray, batch_size: int = 512,
            device: torch.device | str = "cpu", tta: int = 0, seed: int = 0,
            autocast: torch.dtype | None = None, policy: AugmentPolicy | None = None) -> Predictions:
    """Predict every group for (N, H, W) or (N, H, W, C) uint8 images, `batch_size` at a time.

    `autocast` (e.g. torch.bfloat16) runs the backbone in that precision (training
    uses it for validation and pseudo-labels: 2.6x faster on a bf16-capable CPU); the
    heads and the softmax always run in fp32, so thresholds apply to fp32 probabilities.

    With `tta` > 0, the probabilities of every class combination are averaged over the
    plain image and `tta` copies augmented by `policy` (the run's weak policy; default
    `AugmentPolicy.weak()`), seeded for repeatability, and decoded by the same rule as
    plain prediction (the most probable combination), so `tta=0` is plain prediction.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    policy = policy or AugmentPolicy.weak()
    indices, probs = [], []
    device_type = torch.device(device).type

    def run(x: torch.Tensor):
        with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
            features = model.forward_features(x)
        # heads, softmax and whatever thresholds the probabilities: fp32
        return combined_distribution(model.forward_head(features.float()))

    try:
        for start in range(0, len(images), batch_size):
            x = to_input(images[start : start + batch_size], device)
            dist = run(x)
            for _ in range(tta):
                dist = add_distributions(dist, run(apply_policy(x, policy, generator=generator)))
            idx, p = decode(divide_distribution(dist, tta + 1))
            indices.append(idx.cpu())
            probs.append([q.float().cpu() for q in p])
    finally:
        model.train(was_training)
    n_groups = len(model.schema.groups)
    if not indices:
        return Predictions(np.zeros((0, n_groups), np.int64), [np.zeros((0, s), np.float32) for s in model.schema.sizes])
    return Predictions(
        torch.cat(indices).numpy().astype(np.int64),
        [torch.cat([p[g] for p in probs]).numpy() for g in range(n_groups)],
    )
