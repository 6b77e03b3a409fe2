"""Finding and cropping the two symbols of Combo images drawn from real handwriting."""

from __future__ import annotations

import pytest
import torch

from semilabel.data.combo import make_combo
from semilabel.models.backbones import BackboneSpec, create_backbone
from semilabel.models.inference import to_input
from semilabel.models.symbol_crops import crop_boxes, find_symbols, ink_mask, matched_overlap


@pytest.fixture(scope="module")
def drawn(real_banks):
    return make_combo([real_banks[0]], [real_banks[1]], n_labeled=300, n_unlabeled=0, n_test=0, seed=3).labeled


def test_found_boxes_match_the_drawn_symbols(drawn):
    found = find_symbols(to_input(drawn.images))
    best = matched_overlap(found, torch.from_numpy(drawn.boxes))
    assert found.shape == (len(drawn), 2, 4)
    assert best.mean() > 0.75 and (best > 0.5).float().mean() > 0.9, f"mean IoU {best.mean():.3f}"


def test_a_thin_short_symbol_keeps_its_own_box():
    # its ink weighs under 1 in all: its k-means centre must be its own weighted mean, not
    # one pulled toward the corner at 0, 0 (which split the image between the two symbols)
    x = torch.zeros(1, 1, 56, 56)
    x[0, 0, 12:30, 6:24] = 1.0  # a bold "0": a ring 3 px thick
    x[0, 0, 15:27, 9:21] = 0.0
    x[0, 0, 30:42, 44] = 1.0  # a "1" of one stroke, 1 px wide and 12 tall
    found = find_symbols(x)
    true = torch.tensor([[[6.0, 12.0, 24.0, 30.0], [44.0, 30.0, 45.0, 42.0]]])
    assert matched_overlap(found, true).item() > 0.85, found


def test_overlap_matches_the_boxes_in_either_order():
    true = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]]])
    assert matched_overlap(true, true).item() == 1.0
    assert matched_overlap(true.flip(1), true).item() == 1.0  # swapped order: the same boxes
    half = torch.tensor([[[0.0, 0.0, 10.0, 5.0], [40.0, 40.0, 50.0, 50.0]]])  # half of one, none of the other
    assert matched_overlap(half, true).item() == pytest.approx(0.25)


def test_noise_dots_are_not_ink_but_strokes_are():
    x = torch.zeros(1, 1, 56, 56)
    x[0, 0, 10, 10] = x[0, 0, 40, 5] = 1.0  # two lone dots
    x[0, 0, 20:35, 30] = 0.6  # a thin vertical stroke
    ink = ink_mask(x)[0]
    assert not ink[10, 10] and not ink[40, 5]
    assert ink[21:34, 30].all()


def test_an_empty_image_gets_the_whole_frame():
    boxes = find_symbols(torch.zeros(2, 1, 56, 56))
    assert torch.equal(boxes, torch.tensor([0.0, 0.0, 56.0, 56.0]).expand(2, 2, 4))


def test_a_crop_centres_its_box_at_glyph_size():
    x = torch.zeros(1, 1, 56, 56)
    x[0, 0, 30:45, 8:18] = 1.0  # a 10 x 15 px block
    crop = crop_boxes(x, torch.tensor([[8.0, 30.0, 18.0, 45.0]]), side=28)[0, 0]
    rows, cols = torch.nonzero(crop > 0.5, as_tuple=True)
    assert 18 <= rows.max() - rows.min() + 1 <= 21  # longer side: 20 of 28 px
    assert abs((rows.float().mean() - 13.5).item()) < 1 and abs((cols.float().mean() - 13.5).item()) < 1


def test_the_crop_reader_ignores_the_order_of_the_symbols(drawn):
    torch.manual_seed(0)
    net = create_backbone(BackboneSpec("crops", width=8)).eval()
    x = to_input(drawn.images[:4])
    with torch.no_grad():
        features = net(x)
        first, second = net.crops(x).chunk(2)
        swapped = net.reader(torch.cat([second, first])).chunk(2)
    assert features.shape == (4, net.num_features)
    torch.testing.assert_close(features, swapped[0] + swapped[1])


def test_the_crop_reader_refuses_data_without_two_label_groups():
    from semilabel.data.schema import LabelGroup, LabelSchema
    from semilabel.errors import ConfigError
    from semilabel.models.classifier import MultiHeadClassifier

    three = LabelSchema(tuple(LabelGroup(name, ("a", "b")) for name in ("digit", "letter", "colour")))
    with pytest.raises(ConfigError, match="crops reads 2 symbols, one per label group, but the data has 3 group"):
        MultiHeadClassifier(three, BackboneSpec("crops", width=8))
    MultiHeadClassifier(LabelSchema(three.groups[:2]), BackboneSpec("crops", width=8))  # two groups: accepted
