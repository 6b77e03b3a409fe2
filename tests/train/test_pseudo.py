import torch

from semilabel.train.pseudo import pseudo_from_predictions, select_confident


def test_admission_needs_every_group_above_the_threshold():
    digits = torch.tensor([[0.97, 0.03], [0.99, 0.01], [0.50, 0.50], [0.02, 0.98]])
    letters = torch.tensor([[0.96, 0.04], [0.90, 0.10], [0.99, 0.01], [0.01, 0.99]])
    targets, mask, confidence = select_confident([digits, letters], threshold=0.95)
    assert mask.tolist() == [True, False, False, True]
    assert targets[3].tolist() == [1, 1]
    assert torch.allclose(confidence, torch.tensor([0.96, 0.90, 0.50, 0.98]))


def test_threshold_is_strict_and_max_fraction_keeps_the_most_confident():
    probs = [torch.tensor([[0.95, 0.05], [0.99, 0.01], [0.97, 0.03], [0.98, 0.02]])]
    labels = pseudo_from_predictions(probs, threshold=0.95)
    assert labels.index.tolist() == [1, 2, 3]  # 0.95 itself is not above 0.95
    top = pseudo_from_predictions(probs, threshold=0.95, max_fraction=0.5)
    assert sorted(top.index.tolist()) == [1, 3]
