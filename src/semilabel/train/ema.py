"""An exponential moving average of the weights: it validates, is saved as best, and teaches.

Averaging the weights of the last few hundred steps gives a smoother, usually more
accurate network than the last step's (Polyak averaging; Mean Teacher; the CIFAR-10
speed records gain from it). BatchNorm statistics are averaged the same way.
"""

from __future__ import annotations

import copy

import torch


class WeightEMA:
    """`model` copied once; `update(model)` after each optimiser step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        # steps averaged in: an int, or a 0-d device tensor once updates say whether their
        # step was taken (so that a skipped step is not counted without waiting for the device)
        self.updates: int | torch.Tensor = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float | torch.Tensor:
        """Ramped up from 0.1, so the early average does not hold on to random weights."""
        if isinstance(self.updates, torch.Tensor):
            return ((1 + self.updates) / (10 + self.updates)).clamp(max=self.decay)
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, taken: torch.Tensor | None = None) -> None:
        """Average `model` in. `taken`: a 0-d bool tensor on the model's device, whether the
        optimiser step was taken (an fp16 step that the loss scaler skipped for inf or NaN
        gradients was not): on a skipped step nothing changes, weights, buffers or count,
        decided on the device (no wait for it). None: the step was taken."""
        own, new = self.model.state_dict(), model.state_dict()
        floats = [k for k, v in own.items() if v.is_floating_point()]
        if taken is None:
            weight = 1.0 - self.current_decay()
            self.updates += 1
        else:
            if not isinstance(self.updates, torch.Tensor):
                self.updates = torch.tensor(float(self.updates), device=taken.device)
            weight = (1.0 - self.current_decay()) * taken  # 0 on a skipped step: a lerp that keeps the average
            self.updates += taken
        torch._foreach_lerp_([own[k] for k in floats], [new[k].detach() for k in floats], weight)
        for k, v in own.items():
            if not v.is_floating_point():
                v.copy_(new[k] if taken is None else torch.where(taken, new[k], v))

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": int(self.updates)}  # a device count: read at saves only

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
