import torch
import torch.nn.functional as F

from semilabel.models.classifier import ModelOutput
from semilabel.train.losses import joint_targets, pretext_loss, supervised_loss


def _output(b=5, joint=False):
    torch.manual_seed(1)
    return ModelOutput([torch.randn(b, 10), torch.randn(b, 26)], torch.randn(b, 6), torch.randn(b, 260) if joint else None)


def test_loss_is_the_weighted_sum_of_group_cross_entropies():
    out = _output()
    y = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 25]])
    loss = supervised_loss(out, y, ("digit", "letter"), {"digit": 1.0, "letter": 5.0})
    expected = F.cross_entropy(out.groups[0], y[:, 0]) + 5.0 * F.cross_entropy(out.groups[1], y[:, 1])
    assert torch.allclose(loss.total, expected)
    assert abs(loss.parts["loss_letter"] - float(F.cross_entropy(out.groups[1], y[:, 1]))) < 1e-6


def test_sample_weights_mask_and_scale_samples():
    out = _output()
    y = torch.zeros(5, 2, dtype=torch.long)
    w = torch.tensor([1.0, 1.0, 0.0, 0.5, 0.0])
    loss = supervised_loss(out, y, ("digit", "letter"), {}, w)
    ce = F.cross_entropy(out.groups[0], y[:, 0], reduction="none") + F.cross_entropy(out.groups[1], y[:, 1], reduction="none")
    assert torch.allclose(loss.total, (w * ce).sum() / 5)


def test_joint_head_adds_its_cross_entropy_over_pairs():
    out = _output(joint=True)
    y = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 25]])
    assert joint_targets(y, (10, 26)).tolist() == [28, 82, 136, 190, 259]
    loss = supervised_loss(out, y, ("digit", "letter"), {"digit": 1.0, "letter": 1.0})
    without = supervised_loss(ModelOutput(out.groups, None, None), y, ("digit", "letter"), {"digit": 1.0, "letter": 1.0})
    assert torch.allclose(loss.total - without.total, F.cross_entropy(out.joint, joint_targets(y, (10, 26))))


def test_label_smoothing_mixes_the_target_with_a_uniform_one_in_every_group_and_the_joint_head():
    out = _output(joint=True)
    y = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 25]])
    eps = 0.1

    def smoothed(logits, target):  # (1 - eps) * CE(target) + eps * mean over classes of -log p
        logp = F.log_softmax(logits, dim=1)
        return ((1 - eps) * -logp.gather(1, target[:, None])[:, 0] - eps * logp.mean(dim=1)).mean()

    loss = supervised_loss(out, y, ("digit", "letter"), {"digit": 1.0, "letter": 2.0}, label_smoothing=eps)
    expected = (smoothed(out.groups[0], y[:, 0]) + 2.0 * smoothed(out.groups[1], y[:, 1])
                + smoothed(out.joint, joint_targets(y, (10, 26))))
    assert torch.allclose(loss.total, expected)
    plain = supervised_loss(out, y, ("digit", "letter"), {"digit": 1.0, "letter": 2.0})
    assert not torch.allclose(loss.total, plain.total)


def test_pretext_loss_is_cross_entropy_of_the_transform():
    logits = torch.randn(4, 6)
    t = torch.tensor([0, 3, 4, 5])
    assert torch.allclose(pretext_loss(logits, t), F.cross_entropy(logits, t))
