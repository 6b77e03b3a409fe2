"""Prediction decodes one rule: the most probable class combination, with or without
test-time augmentation."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from semilabel.data.augment_policy import AugmentPolicy
from semilabel.data.schema import COMBO
from semilabel.models.backbones import BackboneSpec
from semilabel.models.classifier import ModelOutput, MultiHeadClassifier, combined_distribution, decode
from semilabel.models.inference import predict


def test_decoding_takes_the_most_probable_combination_by_brute_force():
    torch.manual_seed(0)
    out = ModelOutput([torch.randn(6, 3), torch.randn(6, 4)], None, torch.randn(6, 12))
    dist = combined_distribution(out)
    idx, marginals = decode(dist)
    lp = [torch.log_softmax(g, 1) for g in out.groups]
    lj = torch.log_softmax(out.joint, 1)
    for i in range(6):
        scores = {(a, b): float(lj[i, a * 4 + b] + lp[0][i, a] + lp[1][i, b]) for a, b in itertools.product(range(3), range(4))}
        assert tuple(idx[i].tolist()) == max(scores, key=scores.get)
    assert torch.allclose(marginals[0].sum(1), torch.ones(6)) and torch.allclose(dist.flatten(1).sum(1), torch.ones(6))
    # without a joint head: each group's own argmax and softmax
    alone_idx, alone_p = decode(combined_distribution(ModelOutput(out.groups, None, None)))
    assert torch.equal(alone_idx, torch.stack([g.argmax(1) for g in out.groups], 1))
    assert torch.allclose(alone_p[1], torch.softmax(out.groups[1], 1), atol=1e-6)


def _model(joint: bool) -> MultiHeadClassifier:
    torch.manual_seed(0)
    return MultiHeadClassifier(COMBO, BackboneSpec("compact", 8), pretext_head=False, joint_head=joint).eval()


def test_tta_without_transforms_is_plain_prediction():
    images = np.random.default_rng(0).integers(0, 256, (20, 56, 56), dtype=np.uint8)
    for joint in (False, True):
        model = _model(joint)
        plain = predict(model, images)
        same = predict(model, images, tta=3, policy=AugmentPolicy.none())
        assert np.array_equal(plain.indices, same.indices)
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(plain.probs, same.probs))
        moved = predict(model, images, tta=3, policy=AugmentPolicy.strong())
        assert not all(np.allclose(a, b, atol=1e-4) for a, b in zip(plain.probs, moved.probs))
