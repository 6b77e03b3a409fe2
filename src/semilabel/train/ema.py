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
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """Ramped up from 0.1, so the early average does not hold on to random weights."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        own, new = self.model.state_dict(), model.state_dict()
        floats = [k for k, v in own.items() if v.is_floating_point()]
        torch._foreach_lerp_([own[k] for k in floats], [new[k].detach() for k in floats], 1.0 - d)
        for k, v in own.items():
            if not v.is_floating_point():
                v.copy_(new[k])

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
