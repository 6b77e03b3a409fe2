import pytest
import torch

from semilabel.data.schema import COMBO
from semilabel.errors import ConfigError
from semilabel.models.backbones import (BackboneSpec, CompactNet, _Residual, build_mobilenet_v2, build_resnet50,
                                        create_backbone, list_backbones)
from semilabel.models.classifier import MultiHeadClassifier, combine_predictions


def test_registry_lists_the_three_backbones():
    assert {"compact", "mobilenet_v2", "resnet50"} <= set(list_backbones())


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown name 'vgg'"):
        create_backbone(BackboneSpec("vgg"))


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = MultiHeadClassifier(COMBO, BackboneSpec(name, width=8), pretext_head=True, joint_head=True)
    x = torch.rand(4, 1, 56, 56)
    out = model(x, pretext_rows=2)
    assert [g.shape for g in out.groups] == [(2, 10), (2, 26)]
    assert out.pretext.shape == (2, 6) and out.joint.shape == (2, 260)
    loss = sum(g.logsumexp(1).mean() for g in out.groups) + out.pretext.logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_torchvision_backbones_keep_their_stock_strides_at_56px(name):
    """One input channel, otherwise stock: net stride 32 (56 px -> 2x2), as at 224 px (-> 7x7)."""
    small = create_backbone(BackboneSpec(name, input_size=56))
    large = create_backbone(BackboneSpec(name, input_size=224))
    assert small.features(torch.rand(1, 1, 56, 56)).shape[-2:] == (2, 2)
    assert large.features(torch.rand(1, 3, 224, 224)).shape[-2:] == (7, 7)
    first = next(m for m in small.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1 and first.stride == (2, 2)


def test_earlier_dense_layouts_stay_available_to_builders():
    assert build_mobilenet_v2(56, stem_stride=1).features(torch.rand(1, 1, 56, 56)).shape[-2:] == (4, 4)
    dense = build_resnet50(56, width_mult=0.125, small_stem=True, stem_maxpool=False)
    assert dense.features(torch.rand(1, 1, 56, 56)).shape[-2:] == (7, 7)


@pytest.mark.parametrize("pooling, factor", [("avg", 1), ("max", 1), ("avgmax", 2)])
def test_pooling_of_the_last_map(pooling, factor):
    net = build_mobilenet_v2(56, width_mult=0.25, pooling=pooling).eval()
    x = torch.rand(2, 1, 56, 56)
    out = net(x)
    assert out.shape == (2, factor * 1280)
    maps = net.features(x)
    expected = {"avg": maps.mean((2, 3)), "max": maps.amax((2, 3))}.get(pooling)
    if expected is not None:
        assert torch.allclose(out, expected)


def test_attention_pooling_starts_as_average_pooling_and_learns_where_to_look():
    torch.manual_seed(0)
    avg, attention = CompactNet(8, 56, "avg"), CompactNet(8, 56, "attention")
    attention.load_state_dict(avg.state_dict(), strict=False)  # same convolutions
    x = torch.rand(3, 1, 56, 56)
    out = attention(x)
    assert out.shape == (3, 2 * avg.num_features) and attention.num_features == 2 * avg.num_features
    assert torch.allclose(out, avg(x).repeat(1, 2), atol=1e-6)  # both slots: the plain average
    out[:, :avg.num_features].sum().backward()
    assert attention.pool.attention.score.weight.grad.abs().sum() > 0


def test_the_configured_pooling_reaches_the_backbone_and_old_runs_keep_theirs():
    from semilabel.config import Config, apply_overrides, load_config
    from semilabel.models.checkpoint import build_model

    assert build_model(Config(width=8, pooling="avg"), COMBO).backbone.num_features == 4 * 8
    assert build_model(Config(width=8, pooling=None), COMBO).backbone.pool.pooling == "avgmax"  # runs that name none
    with pytest.raises(ConfigError, match="pooling"):
        apply_overrides(load_config("default"), {"pooling": "median"})


def test_blocks_deepen_the_compact_stages_and_the_default_keeps_earlier_weights():
    from semilabel.config import apply_overrides, load_config
    from semilabel.models.checkpoint import build_model

    def residuals(net: CompactNet) -> list[bool]:
        return [isinstance(m, _Residual) for m in net.stages]

    one = CompactNet(8, 56, "avg")
    assert residuals(one) == [True, False, True, False, True]  # the earlier layout: its weight names load
    deeper = CompactNet(8, 56, "avg", blocks=(0, 2, 3))
    assert residuals(deeper) == [False, True, True, False, True, True, True]  # none at 28 px, 2 at 14, 3 at 7
    assert deeper(torch.rand(2, 1, 56, 56)).shape == (2, one.num_features)
    config = apply_overrides(load_config("default"), {"width": 8, "blocks": [1, 2, 2]})
    assert config.blocks == (1, 2, 2)
    assert sum(residuals(build_model(config, COMBO).backbone)) == 5
    for bad in ([1, 2], [1, -1, 1], "2"):
        with pytest.raises(ConfigError, match="blocks"):
            apply_overrides(load_config("default"), {"blocks": bad})


@pytest.mark.parametrize("builder", [build_mobilenet_v2, build_resnet50])
def test_zero_init_residual_starts_every_residual_block_as_the_identity(builder):
    net = builder(56, width_mult=0.25, zero_init_residual=True)
    blocks = [m for m in net.modules() if type(m).__name__ in ("InvertedResidual", "Bottleneck")]
    zeroed = [m for m in blocks if getattr(m, "use_res_connect", True)]
    assert zeroed
    for m in zeroed:
        last_bn = m.bn3 if hasattr(m, "bn3") else m.conv[-1]
        assert torch.count_nonzero(last_bn.weight) == 0
    assert all(torch.count_nonzero(m.weight) > 0 for m in builder(56, width_mult=0.25, zero_init_residual=False).modules()
               if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_the_registered_torchvision_backbones_start_their_residual_blocks_as_the_identity(name):
    net = create_backbone(BackboneSpec(name, width_mult=0.25))
    last_bns = [m.bn3 if hasattr(m, "bn3") else m.conv[-1] for m in net.modules()
                if type(m).__name__ == "Bottleneck" or getattr(m, "use_res_connect", False)]
    assert last_bns and all(torch.count_nonzero(bn.weight) == 0 for bn in last_bns)


def test_width_mult_narrows_resnet50():
    narrow = build_resnet50(56, width_mult=0.25)
    assert narrow.num_features == 512 and sum(p.numel() for p in narrow.parameters()) < 2_000_000


def test_input_size_224_resizes_and_repeats_the_channel():
    backbone = create_backbone(BackboneSpec("mobilenet_v2", input_size=224))
    assert backbone.features[0][0].in_channels == 3
    assert backbone(torch.rand(2, 1, 56, 56)).shape == (2, backbone.num_features)


def test_joint_head_picks_the_best_combination():
    groups = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])]
    from semilabel.models.classifier import ModelOutput

    plain, _ = combine_predictions(ModelOutput(groups, None, None))
    assert plain.tolist() == [[0, 1]]
    joint = torch.full((1, 6), -10.0)
    joint[0, 1 * 3 + 2] = 10.0  # the joint head is sure of (1, 2)
    idx, probs = combine_predictions(ModelOutput(groups, None, joint))
    assert idx.tolist() == [[1, 2]]
    assert torch.allclose(sum(p.sum() for p in probs), torch.tensor(2.0))


def test_backbone_weights_load_from_a_local_file(tmp_path):
    source = MultiHeadClassifier(COMBO, BackboneSpec("compact", width=8))
    path = tmp_path / "w.pt"
    torch.save(source.backbone.state_dict(), path)
    target = MultiHeadClassifier(COMBO, BackboneSpec("compact", width=8))
    loaded, skipped = target.load_backbone_weights(path)
    assert loaded == len(source.backbone.state_dict()) and skipped == 0
    for a, b in zip(source.backbone.state_dict().values(), target.backbone.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_of_an_earlier_backbone_layout_is_refused(tmp_path):
    from semilabel.errors import CheckpointError
    from semilabel.models.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "old.pt"
    save_checkpoint(path, {"model": {}, "config": {"backbone": "mobilenet_v2"}})  # saved before layouts were recorded
    with pytest.raises(CheckpointError, match="layout revision 1 of the mobilenet_v2 backbone"):
        load_checkpoint(path)
    save_checkpoint(path, {"model": {}, "config": {"backbone": "mobilenet_v2"}, "backbone_layout": 2})
    assert load_checkpoint(path)["backbone_layout"] == 2
    save_checkpoint(path, {"model": {}, "config": {"backbone": "compact"}})  # compact kept its layout
    assert load_checkpoint(path)["config"]["backbone"] == "compact"
