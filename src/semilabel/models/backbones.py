"""Backbones by name: `create_backbone("compact")`, `list_backbones()`.

Every backbone maps images (B, 1, S, S) in 0-1 to features (B, num_features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

_REGISTRY: dict[str, Callable[..., "Backbone"]] = {}


def register_backbone(name: str):
    def wrap(factory: Callable[..., "Backbone"]):
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class BackboneSpec:
    name: str = "compact"
    width: int = 32  # compact: channels of the first stage (doubles per stage)
    input_size: int = 56  # images are resized to this side before the network


class Backbone(nn.Module):
    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) -> (B, F)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def create_backbone(spec: BackboneSpec) -> Backbone:
    if spec.name not in _REGISTRY:
        from semilabel.errors import ConfigError

        raise ConfigError(f"backbone: unknown name {spec.name!r} (choose from {', '.join(list_backbones())})")
    return _REGISTRY[spec.name](spec)


def resize_to(x: torch.Tensor, side: int | None) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to `side` x `side` (unchanged when it has that size or side is None)."""
    if side is None or x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


# ---- compact: the CPU default ---------------------------------------------------------
def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """Two 3x3 convolutions with an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class CompactNet(Backbone):
    """A small residual CNN for 56x56 symbols on a CPU.

    Full resolution only for a thin stem (strokes are 1-3 px), then three stages at
    28, 14 and 7 px with widths w, 2w, 4w; global average and max pooling keep it
    independent of where the symbols sit. About 30 M multiply-adds per image at w=32
    and 56 px; with `input_size` (e.g. 224) images are resized first, and the cost
    grows with the area (16x at 224 px).
    """

    def __init__(self, width: int = 32, input_size: int | None = None):
        super().__init__()
        self.input_size = input_size
        w = width
        self.stem = nn.Sequential(_conv_bn(1, w // 2), _conv_bn(w // 2, w, stride=2))  # 56 -> 28
        self.stages = nn.Sequential(
            _Residual(w),
            _conv_bn(w, 2 * w, stride=2), _Residual(2 * w),  # -> 14
            _conv_bn(2 * w, 4 * w, stride=2), _Residual(4 * w),  # -> 7
        )
        self.num_features = 8 * w  # average and max pooled 4w channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(resize_to(x, self.input_size)))  # (B, 4w, S/8, S/8)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


@register_backbone("compact")
def _compact(spec: BackboneSpec) -> Backbone:
    return CompactNet(spec.width, spec.input_size)


# ---- torchvision networks adapted to one small channel ----------------------------------
class _TorchvisionBackbone(Backbone):
    """A torchvision classifier without its last layer.

    At the native 56 px input the first convolution takes one channel with stride 1
    (ResNet50 also drops its max-pool) so the last feature map is 4x4 (MobileNetV2) or
    7x7 (ResNet50), not 2x2. At a
    larger `input_size` (e.g. 224, as in the original report) images are resized and
    the channel repeated three times, keeping the stock architecture.
    """

    def __init__(self, features: nn.Module, num_features: int, input_size: int, three_channels: bool):
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.input_size = input_size
        self.three_channels = three_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, self.input_size)
        if self.three_channels:
            x = x.expand(-1, 3, -1, -1)
        x = self.features(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


@register_backbone("mobilenet_v2")
def _mobilenet_v2(spec: BackboneSpec) -> Backbone:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None)
    stock = spec.input_size >= 112
    if not stock:
        # First convolution: 1 channel, stride 1, so 56 px ends as a 4x4 map (stock: 2x2).
        # Removing a second stride (7x7) would cost 4x more: about 10 images/s on 2 cores.
        net.features[0][0] = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
    return _TorchvisionBackbone(net.features, net.last_channel, spec.input_size, three_channels=stock)


@register_backbone("resnet50")
def _resnet50(spec: BackboneSpec) -> Backbone:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    stock = spec.input_size >= 112
    if not stock:
        net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()  # net stride 8: 56 -> 7x7
    features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return _TorchvisionBackbone(features, net.fc.in_features, spec.input_size, three_channels=stock)
