"""Backbone + one softmax head per label group + the SESEMI pretext head (+ the joint head).

`forward` always returns a `ModelOutput`; which heads exist is fixed at build time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from semilabel.data.augment import PRETEXT_TRANSFORMS
from semilabel.data.schema import LabelSchema
from semilabel.errors import CheckpointError, ConfigError
from semilabel.io_utils import load_torch_file
from semilabel.models.backbones import BackboneSpec, create_backbone

# The joint head (one logit per combination of every group's class) is built only up to this
# many combinations, and combination probabilities are formed only up to it: the head's
# linear layer and the (B, C_1 * ... * C_G) distribution grow with the product of the group
# sizes, and each combination's share of the training signal shrinks with it (1,000
# combinations already leave ~30 labelled images per combination in 30,000; 10 groups of 10
# would leave none). Beyond it the groups are predicted independently.
JOINT_HEAD_MAX_COMBINATIONS = 1024


def combinations(sizes: tuple[int, ...] | list[int]) -> int:
    """How many class combinations groups of these sizes have (their product)."""
    n = 1
    for size in sizes:
        n *= int(size)
    return n


def joint_head_fits(schema: LabelSchema) -> bool:
    """Whether `schema` has few enough combinations for a joint head (JOINT_HEAD_MAX_COMBINATIONS)."""
    return combinations(schema.sizes) <= JOINT_HEAD_MAX_COMBINATIONS


@dataclass
class ModelOutput:
    """Logits of every head for one batch."""

    groups: list[torch.Tensor]  # one (B, C_g) per label group, in schema order
    pretext: torch.Tensor | None  # (B, 6) SESEMI transform logits
    joint: torch.Tensor | None  # (B, prod C_g) logits over every class combination

    def rows(self, start: int, stop: int) -> "ModelOutput":
        """The label-head logits of rows start:stop (no pretext logits)."""
        return ModelOutput([g[start:stop] for g in self.groups], None,
                           None if self.joint is None else self.joint[start:stop])


class MultiHeadClassifier(nn.Module):
    """`joint_head` asks for the joint head; it is built only where the schema's combinations
    are at most JOINT_HEAD_MAX_COMBINATIONS (`self.joint_head` is None otherwise)."""

    def __init__(self, schema: LabelSchema, backbone: BackboneSpec, pretext_head: bool = True,
                 joint_head: bool = False, dropout: float = 0.1):
        super().__init__()
        self.schema = schema
        self.backbone = create_backbone(backbone)
        symbols = getattr(self.backbone, "symbols", None)  # a backbone that reads one symbol per group
        if symbols is not None and symbols != len(schema.groups):
            raise ConfigError(f"backbone: {backbone.name} reads {symbols} symbols, one per label group, but the "
                              f"data has {len(schema.groups)} group(s) ({', '.join(schema.names)}); use compact")
        f = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(f, size) for size in schema.sizes)
        self.pretext_head = nn.Linear(f, len(PRETEXT_TRANSFORMS)) if pretext_head else None
        fits = joint_head_fits(schema)
        self.joint_head = nn.Linear(f, combinations(schema.sizes)) if joint_head and fits else None
        self.in_channels = backbone.channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor, pretext_rows: int = 0) -> ModelOutput:
        """Group (and joint) logits for all rows but the last `pretext_rows`, which get
        SESEMI pretext logits instead (one forward pass serves both batches)."""
        h = self.dropout(features)
        split = len(h) - pretext_rows
        main, extra = h[:split], h[split:]
        return ModelOutput(
            groups=[head(main) for head in self.heads],
            pretext=self.pretext_head(extra) if pretext_rows and self.pretext_head is not None else None,
            joint=self.joint_head(main) if self.joint_head is not None else None,
        )

    def forward(self, x: torch.Tensor, pretext_rows: int = 0) -> ModelOutput:
        """(B, C, H, W) images in 0-1 -> ModelOutput (see forward_head)."""
        return self.forward_head(self.forward_features(x), pretext_rows)

    def load_backbone_weights(self, path: str | Path) -> tuple[int, int]:
        """Start the backbone from a local state-dict file; returns (loaded, skipped) tensors.

        Tensors whose names or shapes do not match (e.g. a 3-channel first convolution
        for a 1-channel input) are skipped, so ImageNet files load what fits (for colour
        images, the first convolution too).
        """
        state = load_torch_file(path, "weights file")
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
        own = self.backbone.state_dict()
        prefixes = ("", "backbone.", "features.", "backbone.features.")
        usable = {}
        for key, value in state.items():
            for prefix in prefixes:
                name = key[len(prefix):] if key.startswith(prefix) else None
                for candidate in (name, f"features.{name}" if name is not None else None):
                    if candidate in own and own[candidate].shape == value.shape:
                        usable[candidate] = value
        if not usable:
            raise CheckpointError(f"{path}: no tensor in it matches the {type(self.backbone).__name__} backbone")
        self.backbone.load_state_dict(usable, strict=False)
        return len(usable), len(state) - len(usable)


Distribution = torch.Tensor | list[torch.Tensor]  # (B, C_1, ..., C_G), or per group (B, C_g): independent groups


def combined_distribution(output: ModelOutput) -> Distribution:
    """(B, C_1, ..., C_G) fp32 probabilities of every class combination.

    With a joint head each combination scores log p_joint + the sum of its group log
    probabilities, normalised; without one, the groups are independent (the product of
    their softmaxes). Without a joint head and with more than JOINT_HEAD_MAX_COMBINATIONS
    combinations, the independent groups' softmaxes themselves, a list of (B, C_g): the
    product would not fit in memory and says nothing more (`marginals` and `decode`
    take either form).
    """
    sizes = [g.shape[1] for g in output.groups]
    if output.joint is None and combinations(sizes) > JOINT_HEAD_MAX_COMBINATIONS:
        return [torch.softmax(g.float(), dim=1) for g in output.groups]
    log_probs = [torch.log_softmax(g.float(), dim=1) for g in output.groups]
    if output.joint is None:
        score = torch.zeros(len(log_probs[0]), *sizes, device=log_probs[0].device)
    else:
        score = torch.log_softmax(output.joint.float(), dim=1).view(-1, *sizes)
    for g, lp in enumerate(log_probs):
        shape = [-1] + [1] * len(sizes)
        shape[g + 1] = sizes[g]
        score = score + lp.view(shape)
    return torch.softmax(score.flatten(1), dim=1).view_as(score)


def marginals(distribution: Distribution) -> list[torch.Tensor]:
    """(B, C_1, ..., C_G) combination probabilities -> each group's probabilities (B, C_g)
    (a list of independent groups' probabilities is already that)."""
    if isinstance(distribution, list):
        return list(distribution)
    dims = range(distribution.dim() - 1)
    if len(dims) == 1:  # one group: the distribution itself (sum over no dimension would sum them all)
        return [distribution]
    return [distribution.sum(dim=tuple(d + 1 for d in dims if d != g)) for g in dims]


def decode(distribution: Distribution) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(B, C_1, ..., C_G) combination probabilities -> the most probable combination's
    class indices (B, G) and each group's marginal probabilities. Independent groups'
    probabilities (a list): each group's most probable class."""
    if isinstance(distribution, list):
        return torch.stack([p.argmax(dim=1) for p in distribution], dim=1), list(distribution)
    best = distribution.flatten(1).argmax(dim=1)
    return torch.stack(torch.unravel_index(best, list(distribution.shape[1:])), dim=1), marginals(distribution)


def combine_predictions(output: ModelOutput) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Class indices (B, G) and per-group probabilities from one output: the best
    combination of `combined_distribution`, and its marginals. Without a joint head
    this is each group's own argmax and softmax."""
    return decode(combined_distribution(output))


def add_distributions(a: Distribution, b: Distribution) -> Distribution:
    """The sum of two distributions of the same form (test-time copies are averaged)."""
    if isinstance(a, list):
        return [p + q for p, q in zip(a, b)]
    return a + b


def divide_distribution(a: Distribution, n: float) -> Distribution:
    """`a` / n (the mean of n summed copies)."""
    return [p / n for p in a] if isinstance(a, list) else a / n
