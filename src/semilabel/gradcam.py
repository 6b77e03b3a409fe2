"""Grad-CAM (Selvaraju et al., 2017): where in an image a group's predicted class finds
its evidence.

The backbone's last feature map A (B, K, h, w), the input of its global pooling, is
weighted per channel by the mean gradient of the score over the map, summed over
channels, rectified and stretched to the image: one (H, W) map per image in 0-1 (1 at
its strongest point; all 0 when no place adds to the score). Every backbone resizes
whole images, so the map covers the whole image. The model runs in eval mode and no
parameter gradient is kept.

The score is the log of the predicted class's probability (as prediction computes it,
the joint head included), not its raw logit: it asks why this class rather than the
others. With average pooling and a linear head the map sums to the score's first-order
change, the class's logit less the probability-weighted mean of all logits (bias terms
aside), which is positive for the most probable class; a raw logit's map can be
negative everywhere (no place shown at all), as it often is in an untrained network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from semilabel.models.backbones import GlobalPool
from semilabel.models.classifier import MultiHeadClassifier, combined_distribution, decode
from semilabel.models.inference import to_input


class NoFeatureMap(ValueError):
    """The backbone has no single feature map over the whole image (e.g. it reads crops)."""


@dataclass(frozen=True)
class ClassMaps:
    maps: np.ndarray  # (G, N, H, W) float32 in 0-1: one map per group and image
    predicted: np.ndarray  # (N, G) int64: the class each map explains (the model's prediction)
    confidence: np.ndarray  # (N, G) float32: that class's probability


def _pooling(model: MultiHeadClassifier) -> GlobalPool:
    pools = [m for m in model.backbone.modules() if isinstance(m, GlobalPool)]
    if len(pools) != 1:
        raise NoFeatureMap(f"the {type(model.backbone).__name__} backbone has {len(pools)} global poolings, not one")
    return pools[0]


def grad_cam(model: MultiHeadClassifier, images: np.ndarray) -> ClassMaps:
    """Grad-CAM of every group's predicted class for a few uint8 images (N, H, W) or
    (N, H, W, 3), on the model's own device. NoFeatureMap when the backbone pools
    something other than one map per image (the `crops` backbone pools two crops)."""
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = _pooling(model).register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    was_training = model.training
    model.eval()  # no dropout, BatchNorm statistics untouched
    try:
        with torch.enable_grad():
            x = to_input(images, device).requires_grad_(True)  # a graph even if parameters are frozen
            output = model.forward_head(model.forward_features(x))
            if len(captured) != 1 or captured[0].shape[0] != len(images):
                rows = sum(len(c) for c in captured)
                raise NoFeatureMap(f"the {type(model.backbone).__name__} backbone pools {rows} maps for "
                                   f"{len(images)} images, not one map over each image")
            fmap = captured[0]  # (N, K, h, w)
            predicted, probs = decode(combined_distribution(output))  # the classes `predict` gives
            chosen = [p.gather(1, predicted[:, g : g + 1])[:, 0] for g, p in enumerate(probs)]
            maps = []
            for g, p in enumerate(chosen):
                score = p.clamp_min(1e-30).log().sum()  # images are independent in eval mode: one pass for all
                (grad,) = torch.autograd.grad(score, fmap, retain_graph=g + 1 < len(chosen))
                weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
                cam = torch.relu((weights * fmap.detach().float()).sum(dim=1, keepdim=True))
                cam = F.interpolate(cam, size=tuple(images.shape[1:3]), mode="bilinear", align_corners=False)[:, 0]
                peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
                maps.append((cam / peak).cpu().numpy().astype(np.float32))
    finally:
        handle.remove()
        model.train(was_training)
    confidence = torch.stack(chosen, dim=1).detach().float().cpu().numpy()
    return ClassMaps(np.stack(maps), predicted.cpu().numpy().astype(np.int64), confidence)
