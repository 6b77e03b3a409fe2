"""What the network sees: input size from the config and the data, channels, the joint-head limit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semilabel.cli import build_parser
from semilabel.config import Config, config_from_dict, config_to_dict
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema
from semilabel.errors import ConfigError
from semilabel.models.backbones import BackboneSpec, create_backbone, list_backbones
from semilabel.models.checkpoint import build_model, joint_head_note
from semilabel.models.classifier import (JOINT_HEAD_MAX_COMBINATIONS, ModelOutput, MultiHeadClassifier,
                                         combined_distribution, decode)
from semilabel.models.geometry import MIN_SIDE, network_shape, parse_input_size
from semilabel.models.inference import predict, to_input


def schema_of(*sizes: int) -> LabelSchema:
    return LabelSchema(tuple(LabelGroup(f"g{i}", tuple(f"c{k}" for k in range(n))) for i, n in enumerate(sizes)))


@pytest.mark.parametrize("size, data, seen", [
    (56, (56, 56), (56, 56)),  # Combo: no resize
    (224, (56, 56), (224, 224)),  # a side enlarges square images, as it always did
    (56, None, (56, 56)),  # checkpoints without the record: the side
    (56, (40, 64), (40, 64)),  # small non-square images: their own size
    (56, (400, 640), (44, 71)),  # large ones: about 56 x 56 pixels at their aspect ratio
    (56, (20, 40), (32, 64)),  # never a side under 32 px (a 4 px map after three stride-2 steps)
    ((40, 64), (56, 56), (40, 64)),  # H x W: exactly that
])
def test_network_shape_rule(size, data, seen):
    assert network_shape(size, data) == seen
    assert MIN_SIDE == 32


def test_input_size_is_a_side_or_hxw_in_flags_and_configs():
    assert parse_input_size("56") == 56 and parse_input_size("40x64") == (40, 64) and parse_input_size("40,64") == (40, 64)
    with pytest.raises(ConfigError, match="--input-size 'big'"):
        parse_input_size("big")
    assert build_parser().parse_args(["train", "d", "--input-size", "40x64"]).input_size == (40, 64)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "d", "--input-size", "4x6x8"])
    data = config_to_dict(Config())
    assert config_from_dict({**data, "input_size": [40, 64]}).input_size == (40, 64)
    assert config_from_dict({**data, "input_size": 56}).input_size == 56
    for bad in ([8, 64], [40, 64, 3], "40x64"):
        with pytest.raises(ConfigError, match="input_size"):
            config_from_dict({**data, "input_size": bad})


@pytest.mark.parametrize("name", [n for n in list_backbones() if n != "crops"])
def test_every_backbone_takes_three_channels_of_non_square_images(name):
    torch.manual_seed(0)
    backbone = create_backbone(BackboneSpec(name, width=8, width_mult=0.25, input_size=(40, 64), channels=3))
    first = next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 3
    x = torch.rand(2, 3, 40, 64, requires_grad=True)
    features = backbone(x)
    assert features.shape == (2, backbone.num_features)
    features.sum().backward()
    assert x.grad[:, 2].abs().sum() > 0  # the third channel reaches the features


def test_compact_sees_the_configured_geometry(monkeypatch):
    config = dataclasses.replace(Config(), width=8)
    model = build_model(config, COMBO, image_shape=(40, 64), channels=3)
    seen = []
    model.backbone.stem.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    model(torch.rand(1, 3, 40, 64))
    assert seen == [(1, 3, 40, 64)]  # 40 x 64 at input_size 56: not resized
    model = build_model(dataclasses.replace(config, input_size=(48, 80)), COMBO, image_shape=(40, 64), channels=3)
    model.backbone.stem.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    model(torch.rand(1, 3, 40, 64))
    assert seen[-1] == (1, 3, 48, 80)


def test_crops_refuses_colour_in_one_line():
    with pytest.raises(ConfigError) as err:
        MultiHeadClassifier(COMBO, BackboneSpec("crops", width=8, channels=3))
    assert str(err.value) == ("backbone: crops finds light symbols on a dark grey image, but the data has 3 channels "
                              "(colour); use compact")
    with pytest.raises(ConfigError, match="reads 2 symbols"):
        MultiHeadClassifier(schema_of(3, 4, 5), BackboneSpec("crops", width=8))


def test_a_colour_network_loads_the_first_convolution_of_an_imagenet_style_file(tmp_path):
    from torchvision.models import mobilenet_v2

    torch.manual_seed(0)
    stock = mobilenet_v2(weights=None, width_mult=0.25)
    torch.save(stock.state_dict(), tmp_path / "w.pt")
    first = stock.state_dict()["features.0.0.weight"]
    colour = MultiHeadClassifier(COMBO, BackboneSpec("mobilenet_v2", width_mult=0.25, channels=3))
    colour.load_backbone_weights(tmp_path / "w.pt")
    torch.testing.assert_close(colour.backbone.features[0][0].weight, first, rtol=0, atol=0)
    grey = MultiHeadClassifier(COMBO, BackboneSpec("mobilenet_v2", width_mult=0.25))
    before = grey.backbone.features[0][0].weight.clone()
    grey.load_backbone_weights(tmp_path / "w.pt")
    assert grey.backbone.features[0][0].weight.shape[1] == 1
    torch.testing.assert_close(grey.backbone.features[0][0].weight, before, rtol=0, atol=0)  # skipped, as before


def test_to_input_takes_grey_and_channels_last_colour():
    grey = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert torch.equal(to_input(grey), torch.from_numpy(grey).float().div(255).unsqueeze(1))
    colour = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    x = to_input(colour)
    assert x.shape == (2, 3, 3, 4) and x.is_contiguous()
    assert torch.equal(x[:, 1], torch.from_numpy(colour[..., 1]).float().div(255))


@pytest.mark.parametrize("sizes, joint", [((32, 32), True), ((5, 5, 41), False), ((1024,), True), ((1025,), False)])
def test_joint_head_up_to_its_limit(sizes, joint):
    assert JOINT_HEAD_MAX_COMBINATIONS == 1024
    schema = schema_of(*sizes)
    config = dataclasses.replace(Config(), width=8, joint_head=True)
    model = build_model(config, schema, image_shape=(32, 32))
    assert (model.joint_head is not None) == joint
    note = joint_head_note(config, schema)
    if joint:
        assert note is None and model.joint_head.out_features == int(np.prod(sizes))
    else:
        assert note == (f"joint head: left out, {' x '.join(map(str, sizes))} = 1,025 class combinations is over "
                        f"1,024; the groups are predicted independently")
    assert joint_head_note(dataclasses.replace(config, joint_head=False), schema) is None
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    pred = predict(model, images, tta=1)
    assert pred.indices.shape == (3, len(sizes)) and [p.shape for p in pred.probs] == [(3, s) for s in sizes]
    for p in pred.probs:
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)


def test_beyond_the_limit_groups_decode_independently():
    torch.manual_seed(0)
    groups = [torch.randn(4, n) for n in (5, 5, 41)]
    dist = combined_distribution(ModelOutput(groups, None, None))
    assert isinstance(dist, list)  # no (4, 5, 5, 41) tensor
    idx, probs = decode(dist)
    assert torch.equal(idx, torch.stack([g.argmax(1) for g in groups], 1))
    for p, g in zip(probs, groups):
        torch.testing.assert_close(p, torch.softmax(g, 1))
    small = [g[:, :4] for g in groups]  # 100 combinations: the product as before, the same argmax
    idx_small, _ = decode(combined_distribution(ModelOutput(small, None, None)))
    assert torch.equal(idx_small, torch.stack([g.argmax(1) for g in small], 1))


def test_one_group_is_plain_classification():
    schema = schema_of(7)
    model = build_model(dataclasses.replace(Config(), width=8), schema, image_shape=(28, 28))
    assert model.joint_head is not None and model.joint_head.out_features == 7
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    pred = predict(model, images)
    assert pred.indices.shape == (5, 1) and pred.probs[0].shape == (5, 7)
    np.testing.assert_array_equal(pred.indices[:, 0], pred.probs[0].argmax(1))
