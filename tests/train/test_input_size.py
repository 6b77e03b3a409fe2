"""The original report's 224 px input trains on a CPU (a couple of steps)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from semilabel.config import PhaseConfig
from semilabel.train.fit import fit


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "compact"])
def test_input_size_224_trains_a_couple_of_steps_on_cpu(backbone, tiny_dataset, tiny_config):
    # 228 training images at batch 4: 57 steps an epoch, so 2/57 of an epoch is 2 steps
    config = dataclasses.replace(tiny_config, backbone=backbone, input_size=224, batch_size=4, sesemi=False,
                                 ema_decay=0.0, device="cpu", precision="fp32",
                                 phases=(PhaseConfig("supervised", epochs=2 / 57),))
    seen = []
    result = fit(config, tiny_dataset)
    first_conv = next(m for m in result.model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first_conv.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    result.model(torch.rand(1, 1, 56, 56))
    hook.remove()
    assert result.state.step == 2 and result.state.images_seen == 8
    row = result.state.history[-1]
    assert torch.isfinite(torch.tensor(row["train_loss"])) and 0.0 <= row["val_exact"] <= 1.0
    channels = 3 if backbone == "mobilenet_v2" else 1  # torchvision at >= 112 px: stock, channel repeated
    assert seen == [(1, channels, 224, 224)]  # the network itself sees 224 px
