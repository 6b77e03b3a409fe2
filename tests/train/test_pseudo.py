import torch

from semilabel.train.pseudo import pseudo_from_predictions, select_confident


def test_admission_needs_every_group_above_the_threshold():
    digits = torch.tensor([[0.97, 0.03], [0.99, 0.01], [0.50, 0.50], [0.02, 0.98]])
    letters = torch.tensor([[0.96, 0.04], [0.90, 0.10], [0.99, 0.01], [0.01, 0.99]])
    targets, mask, confidence, groups = select_confident([digits, letters], threshold=0.95)
    assert mask.tolist() == [True, False, False, True]
    assert targets[3].tolist() == [1, 1]
    assert torch.allclose(confidence, torch.tensor([0.96, 0.90, 0.50, 0.98]))
    assert groups.tolist() == [[True, True], [True, False], [False, True], [True, True]]


def test_per_group_admission_keeps_each_confident_group_alone():
    digits = torch.tensor([[0.97, 0.03], [0.99, 0.01], [0.50, 0.50], [0.60, 0.40]])
    letters = torch.tensor([[0.96, 0.04], [0.90, 0.10], [0.01, 0.99], [0.70, 0.30]])
    labels = pseudo_from_predictions([digits, letters], threshold=0.95, per_group=True)
    assert labels.index.tolist() == [0, 1, 2]  # the last image has no confident group
    assert labels.group_mask().tolist() == [[True, True], [True, False], [False, True]]
    assert labels.targets[2].tolist() == [0, 1]
    whole = pseudo_from_predictions([digits, letters], threshold=0.95)
    assert whole.index.tolist() == [0] and whole.groups is None and whole.group_mask().tolist() == [[True, True]]
    # a cap keeps the fully confident image before the partly confident ones
    assert pseudo_from_predictions([digits, letters], 0.95, max_fraction=0.25, per_group=True).index.tolist() == [0]


def test_threshold_is_strict_and_max_fraction_keeps_the_most_confident():
    probs = [torch.tensor([[0.95, 0.05], [0.99, 0.01], [0.97, 0.03], [0.98, 0.02]])]
    labels = pseudo_from_predictions(probs, threshold=0.95)
    assert labels.index.tolist() == [1, 2, 3]  # 0.95 itself is not above 0.95
    top = pseudo_from_predictions(probs, threshold=0.95, max_fraction=0.5)
    assert sorted(top.index.tolist()) == [1, 3]
