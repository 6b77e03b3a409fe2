"""Backbones by name: `create_backbone("compact")`, `list_backbones()`.

Every backbone maps images (B, C, H, W) in 0-1 (C = `BackboneSpec.channels`: 1 grey, 3
colour) to features (B, num_features); it resizes them to its `input_size` first (see
`semilabel.models.geometry` for how the size is chosen from the config and the data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from semilabel.models.symbol_crops import crop_boxes, find_symbols

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
    input_size: int | tuple[int, int] = 56  # images are resized to this side, or (H, W), before the network
    width_mult: float = 1.0  # torchvision backbones: channel multiplier (1: stock; small for tests)
    pooling: str | None = None  # over the last map (see POOLINGS); None: the backbone's default
    blocks: tuple[int, ...] = (1, 1, 1)  # compact: residual blocks per stage (28, 14, 7 px at 56 px)
    channels: int = 1  # image channels: 1 grey, 3 colour (RGB)


class Backbone(nn.Module):
    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, F)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


# Layout revision per backbone, saved in checkpoints: weights of an earlier revision do
# not fit the network built now, even where no tensor shape changed (MobileNetV2's first
# stride). Revision 2: the torchvision networks keep their stock strides at 56 px.
LAYOUT_REVISION = {"compact": 1, "mobilenet_v2": 2, "resnet50": 2}


def layout_revision(name: str) -> int:
    return LAYOUT_REVISION.get(name, 1)


def create_backbone(spec: BackboneSpec) -> Backbone:
    if spec.name not in _REGISTRY:
        from semilabel.errors import ConfigError

        raise ConfigError(f"backbone: unknown name {spec.name!r} (choose from {', '.join(list_backbones())})")
    return _REGISTRY[spec.name](spec)


def resize_to(x: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to `size` x `size`, or to (H, W) (unchanged when it has
    that size or size is None)."""
    if size is None:
        return x
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if x.shape[-2:] == shape:
        return x
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


POOLINGS = ("avg", "max", "avgmax", "attention")


def pool(x: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, C) by average or max over the map, or (B, 2C) by both, concatenated."""
    if pooling == "avg":
        return x.mean(dim=(2, 3))
    if pooling == "max":
        return x.amax(dim=(2, 3))
    return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class AttentionPool(nn.Module):
    """`slots` learned spatial softmaxes over the map, each a weighted average: (B, C, H, W) ->
    (B, slots * C). Zero-initialised, so it starts as average pooling in every slot; a slot can
    then learn to look where one symbol is."""

    def __init__(self, channels: int, slots: int = 2):
        super().__init__()
        self.score = nn.Conv2d(channels, slots, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(x).flatten(2).float(), dim=2).to(x.dtype)  # (B, slots, HW)
        return torch.einsum("bsn,bcn->bsc", weights, x.flatten(2)).flatten(1)


class GlobalPool(nn.Module):
    """A backbone's last map (B, C, H, W) -> features (B, out_features) by `pooling` (POOLINGS)."""

    def __init__(self, channels: int, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.pooling = pooling
        self.attention = AttentionPool(channels) if pooling == "attention" else None
        self.out_features = channels if pooling in ("avg", "max") else 2 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x) if self.attention is not None else pool(x, self.pooling)


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
    """A small residual CNN for 56x56 symbols on a CPU (any size and 1 or 3 channels work).

    Full resolution only for a thin stem (strokes are 1-3 px), then three stages at
    28, 14 and 7 px with widths w, 2w, 4w and `blocks` residual blocks each (one by
    default; a block costs about 14 M multiply-adds at w=32 in any stage); global
    pooling (`pooling`, see POOLINGS) keeps it independent of where the symbols sit.
    Average+max is the builder's default (runs that name no pooling were trained with
    it); the default recipe averages, which leaves the start-up plateau sooner
    (benchmarks/notes/2026-12-01-compact-plateau-max-pooling.md). About 55 M multiply-adds per image at w=32 and 56 px
    (`torch.utils.flop_counter`); with `input_size` (e.g. 224) images are resized first,
    and the cost grows with the area (16x at 224 px).

    Geometry: an image of H x W px ends as a map of ceil(H/8) x ceil(W/8); `input_size`
    as the config gives it is turned into (H, W) by `models.geometry.network_shape`: a
    side for square images, the images' own size for non-square ones that are already
    small (40 x 64 stays 40 x 64: a 5 x 8 map), never a side under 32 px (a 4 px map).
    `channels` (1 grey, 3 colour) is what the stem's first convolution takes.
    """

    def __init__(self, width: int = 32, input_size: int | tuple[int, int] | None = None, pooling: str = "avgmax",
                 blocks: tuple[int, ...] = (1, 1, 1), channels: int = 1):
        super().__init__()
        self.input_size = input_size
        w = width
        self.stem = nn.Sequential(_conv_bn(channels, w // 2), _conv_bn(w // 2, w, stride=2))  # 56 -> 28
        b28, b14, b7 = blocks
        self.stages = nn.Sequential(
            *(_Residual(w) for _ in range(b28)),
            _conv_bn(w, 2 * w, stride=2), *(_Residual(2 * w) for _ in range(b14)),  # -> 14
            _conv_bn(2 * w, 4 * w, stride=2), *(_Residual(4 * w) for _ in range(b7)),  # -> 7
        )
        self.pool = GlobalPool(4 * w, pooling)
        self.num_features = self.pool.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(resize_to(x, self.input_size))))  # from (B, 4w, S/8, S/8)


@register_backbone("compact")
def _compact(spec: BackboneSpec) -> Backbone:
    return CompactNet(spec.width, spec.input_size, spec.pooling or "avgmax", spec.blocks, spec.channels)


class CropReader(Backbone):
    """Find the two symbols, crop each, read each crop with a compact net, add the two.

    `find_symbols` splits the ink in two (no learning, no labels), each symbol is cropped
    around its box at half the input side (28 px at 56), its longer side filling 20 of 28
    px as in a glyph bank, and one CompactNet (`width`, `pooling`, `blocks`; its stages
    at 14, 7 and 4 px) reads both crops. The features are the sum of the two crops', so a
    linear head's logits are the sum of each crop's: which crop holds the digit need not
    be known, and the order of the crops does not matter. Two 28 px crops cost about half
    a 56 px image.
    """

    min_onnx_opset = 20  # ONNX's AffineGrid
    symbols = 2  # one per label group: the classifier refuses other schemas

    def __init__(self, width: int = 32, input_size: int | None = None, pooling: str = "avg",
                 blocks: tuple[int, ...] = (1, 1, 1)):
        super().__init__()
        self.input_size = input_size
        self.reader = CompactNet(width, None, pooling, blocks)
        self.num_features = self.reader.num_features

    def crops(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (2B, 1, S/2, S/2), S the shorter side: the first symbols' crops, then the second ones'."""
        x = resize_to(x, self.input_size)
        boxes = find_symbols(x)
        side = max(8, min(x.shape[-2:]) // 2)
        return torch.cat([crop_boxes(x, boxes[:, 0], side), crop_boxes(x, boxes[:, 1], side)])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.reader(self.crops(x)).chunk(2)
        return first + second


@register_backbone("crops")
def _crops(spec: BackboneSpec) -> Backbone:
    if spec.channels != 1:
        from semilabel.errors import ConfigError

        raise ConfigError(f"backbone: crops finds light symbols on a dark grey image, but the data has "
                          f"{spec.channels} channels (colour); use compact")
    return CropReader(spec.width, spec.input_size, spec.pooling or "avg", spec.blocks)


# ---- torchvision networks adapted to small images of 1 or 3 channels -------------------
STOCK_SIDE = 112  # torchvision networks keep their stock layout at an input whose shorter side is this or more


def _stock(input_size: int | tuple[int, int]) -> bool:
    return (input_size if isinstance(input_size, int) else min(input_size)) >= STOCK_SIDE


class _TorchvisionBackbone(Backbone):
    """A torchvision classifier's feature layers, pooled over the last map.

    At an `input_size` of 112 or more (e.g. 224, as in the original report) images are
    resized and a grey channel repeated three times, keeping the stock architecture;
    below it the first convolution takes the images' `channels` (see each factory); for
    colour images it has the stock shape, so a local ImageNet weights file fills it.
    `pooling`: avg, max, avgmax (both, concatenated: twice the features) or attention
    (two learned spatial softmaxes: twice the features).
    """

    def __init__(self, features: nn.Module, channels: int, input_size: int | tuple[int, int], three_channels: bool,
                 pooling: str = "avg"):
        super().__init__()
        self.features = features
        self.pool = GlobalPool(channels, pooling)
        self.num_features = self.pool.out_features
        self.input_size = input_size
        self.three_channels = three_channels  # repeat a grey channel to the stock three

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, self.input_size)
        if self.three_channels and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.pool(self.features(x))


def build_mobilenet_v2(input_size: int | tuple[int, int] = 56, width_mult: float = 1.0, stem_stride: int = 2,
                       pooling: str = "avg", zero_init_residual: bool = True,
                       channels: int = 1) -> _TorchvisionBackbone:
    """torchvision's MobileNetV2 (from scratch). Below 112 px the first convolution takes
    `channels` (1 or 3) with `stem_stride`: 2, the stock stride (56 px ends as a 2x2 map), or 1
    (4x4, 3.6x the compute: the earlier layout, which left too few steps on a CPU).
    `zero_init_residual` starts the last BatchNorm scale of every residual block at 0,
    so each block starts as the identity."""
    from torchvision.models import mobilenet_v2
    from torchvision.models.mobilenetv2 import InvertedResidual

    net = mobilenet_v2(weights=None, width_mult=width_mult)
    stock = _stock(input_size)
    if not stock:
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(channels, first.out_channels, 3, stem_stride, 1, bias=False)
        nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")
    if zero_init_residual:
        for m in net.features.modules():
            if isinstance(m, InvertedResidual) and m.use_res_connect:
                nn.init.zeros_(m.conv[-1].weight)
    return _TorchvisionBackbone(net.features, net.last_channel, input_size, three_channels=stock, pooling=pooling)


def build_resnet50(input_size: int | tuple[int, int] = 56, width_mult: float = 1.0, small_stem: bool = False,
                   stem_maxpool: bool = True, pooling: str = "avg",
                   zero_init_residual: bool = False, channels: int = 1) -> _TorchvisionBackbone:
    """torchvision's ResNet50 (from scratch). Below 112 px the first convolution takes
    `channels` (1 or 3); by default the network is otherwise stock (7x7 stride-2 convolution and
    max-pool: net stride 32, 56 px -> 2x2). `small_stem` makes it 3x3 stride 1 and
    `stem_maxpool=False` drops the max-pool: both, the earlier layout, give net stride 8
    (56 px -> 7x7) at the stock network's cost at 224 px, 14x the default's.
    `zero_init_residual`: torchvision's zero-init of the last BN scale in each block.
    `width_mult` scales every stage's channels (1: stock)."""
    from torchvision.models import resnet50
    from torchvision.models.resnet import Bottleneck

    net = resnet50(weights=None, zero_init_residual=zero_init_residual)
    if width_mult != 1.0:  # rebuild the stages narrower, initialised as torchvision does
        c = max(8, int(round(64 * width_mult)))
        net.inplanes, net.conv1, net.bn1 = c, nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c)
        net.layer1 = net._make_layer(Bottleneck, c, 3)
        net.layer2 = net._make_layer(Bottleneck, 2 * c, 4, stride=2)
        net.layer3 = net._make_layer(Bottleneck, 4 * c, 6, stride=2)
        net.layer4 = net._make_layer(Bottleneck, 8 * c, 3, stride=2)
        net.fc = nn.Linear(8 * c * Bottleneck.expansion, 1000)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in net.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
    stock = _stock(input_size)
    if not stock:
        c = net.conv1.out_channels
        net.conv1 = (nn.Conv2d(channels, c, 3, 1, 1, bias=False) if small_stem
                     else nn.Conv2d(channels, c, 7, 2, 3, bias=False))
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if not stem_maxpool:
            net.maxpool = nn.Identity()
    features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return _TorchvisionBackbone(features, net.fc.in_features, input_size, three_channels=stock, pooling=pooling)


@register_backbone("mobilenet_v2")
def _mobilenet_v2(spec: BackboneSpec) -> Backbone:
    # zero-init residual: on the easy set of tests/models/test_backbones_learn.py, 77% digit
    # accuracy after 150 steps against 63% without (benchmarks/notes/2026-12-01-torchvision-backbones-at-chance.md)
    return build_mobilenet_v2(spec.input_size, spec.width_mult, pooling=spec.pooling or "avg", zero_init_residual=True,
                              channels=spec.channels)


@register_backbone("resnet50")
def _resnet50(spec: BackboneSpec) -> Backbone:
    # zero-init residual: at width 0.25 on the benchmark data, 31% digit accuracy after 400
    # steps of the default recipe against 12% without (benchmarks/notes/2026-12-04-resnet50-at-56px.md)
    return build_resnet50(spec.input_size, spec.width_mult, pooling=spec.pooling or "avg", zero_init_residual=True,
                          channels=spec.channels)
