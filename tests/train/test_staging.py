"""Each process builds only its rows of the global batch, and they equal the global
batch's rows exactly: the random draws are the whole batch's, the work is per row."""

from __future__ import annotations

import torch

from semilabel.data.augment import pretext_batch, random_affine
from semilabel.distributed import DistInfo
from semilabel.train.staging import own_part, own_rows


def test_own_rows_split_a_batch_of_labelled_then_pseudo_labelled_images():
    labelled, pseudo = torch.arange(100, 105), torch.arange(200, 203)  # a global batch of 5 + 3 rows
    whole = torch.cat([labelled, pseudo])
    assert own_rows(8, DistInfo()) is None and torch.equal(own_part(labelled, None), labelled)
    seen = []
    for rank in range(3):
        rows = own_rows(8, DistInfo(rank, 3, rank))
        mine = torch.cat([own_part(labelled, rows), own_part(pseudo, rows, offset=len(labelled))])
        assert torch.equal(mine, whole[rank::3])
        seen += mine.tolist()
    assert sorted(seen) == whole.tolist()


def test_a_share_is_augmented_as_the_whole_batch_would_be():
    images = torch.rand(7, 1, 20, 20)
    whole = random_affine(images, 15, 0.1, (0.9, 1.1), generator=torch.Generator().manual_seed(5))
    targets_whole = pretext_batch(whole, generator=torch.Generator().manual_seed(6))
    for rank in range(2):
        rows = own_rows(7, DistInfo(rank, 2, rank))
        part = random_affine(images[rows], 15, 0.1, (0.9, 1.1), generator=torch.Generator().manual_seed(5),
                             draws=7, rows=rows)
        assert torch.equal(part, whole[rows])
        xp, targets = pretext_batch(part, generator=torch.Generator().manual_seed(6), draws=7, rows=rows)
        assert torch.equal(targets, targets_whole[1][rows]) and torch.equal(xp, targets_whole[0][rows])
    gen, reference = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    empty = random_affine(images[:0], generator=gen, draws=7, rows=torch.arange(0))
    torch.rand(7, 4, generator=reference)
    assert empty.shape == (0, 1, 20, 20)
    assert torch.equal(gen.get_state(), reference.get_state())  # a rank without rows still makes the batch's draws
