"""What the network sees: its input size (H, W) and channel count, from the config and the data.

`input_size` (Config, `--input-size`) is a side (`56`) or a height and width (`40x64`,
`[40, 64]` in YAML). The rule (`network_shape`):

- `[H, W]`: the network sees H x W pixels, whatever the data's size.
- a side S, square images (or images of unknown size, as in checkpoints that predate the
  record): S x S, as always (Combo's 56 px at 56: no resize; `--input-size 224` enlarges).
- a side S, images H x W that are not square: their own size when they hold at most S x S
  pixels (the data is already small: a resize would only blur it or cost time), else
  shrunk to about S x S pixels at their aspect ratio. Either way each side is then at
  least MIN_SIDE (enlarged at the aspect ratio), so that the compact net's three stride-2
  steps leave a map of at least 4 px.
"""

from __future__ import annotations

import math
import re

from semilabel.errors import ConfigError

MIN_SIDE = 32  # the compact net halves the image three times: 32 px leave a 4 x 4 map
InputSize = int | tuple[int, ...]


def parse_input_size(text: str) -> InputSize:
    """`56` -> 56, `40x64` (or `40,64`) -> (40, 64); ConfigError naming --input-size otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?", text)
    if match is None:
        raise ConfigError(f"--input-size {text!r}: expected a side such as 56, or HxW such as 40x64")
    h, w = match.groups()
    return int(h) if w is None else (int(h), int(w))


def input_size_ok(size: InputSize, smallest: int = 16) -> bool:
    """A side, or (H, W), every value at least `smallest`."""
    sides = (size,) if isinstance(size, int) else tuple(size)
    return len(sides) in (1, 2) and all(isinstance(s, int) and s >= smallest for s in sides)


def network_shape(input_size: InputSize, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) the network sees for `input_size` and images of `image_shape` (see the module's rule)."""
    if not isinstance(input_size, int):
        h, w = input_size
        return int(h), int(w)
    side = int(input_size)
    if image_shape is None or image_shape[0] == image_shape[1]:
        return side, side
    h, w = (int(v) for v in image_shape)
    if h * w > side * side:  # larger than asked: about side^2 pixels at the images' aspect ratio
        factor = side / math.sqrt(h * w)
        h, w = max(1, round(h * factor)), max(1, round(w * factor))
    if min(h, w) < MIN_SIDE:
        factor = MIN_SIDE / min(h, w)
        h, w = max(MIN_SIDE, round(h * factor)), max(MIN_SIDE, round(w * factor))
    return h, w


def colour_word(channels: int) -> str:
    """'grey (1 channel)' / 'colour (3 channels)' for messages."""
    kind = {1: "grey", 3: "colour"}.get(channels, "other")
    return f"{kind} ({channels} channel{'s' if channels != 1 else ''})"
