import pytest
import torch

from semilabel.data.schema import COMBO
from semilabel.errors import ConfigError
from semilabel.models.backbones import BackboneSpec, create_backbone, list_backbones
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


@pytest.mark.parametrize("name, side", [("mobilenet_v2", 4), ("resnet50", 7)])
def test_torchvision_backbones_do_not_collapse_56px_to_2x2(name, side):
    backbone = create_backbone(BackboneSpec(name, input_size=56))
    maps = backbone.features(torch.rand(1, 1, 56, 56))
    assert maps.shape[-2:] == (side, side)


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
