"""Style variants of the Combo generator for a style-shift benchmark: each differs
from the calibrated default (`ComboStyle()`) by one change."""

from __future__ import annotations

import dataclasses

from semilabel.data.combo import ComboStyle
from semilabel.errors import ConfigError

FONT_LETTERS = "font_letters"  # the default style; letters from the built-in font bank (embedded.py)

# name -> (what changes, ComboStyle overrides)
STYLE_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "default": ("the calibrated default (in-style)", {}),
    "rotate45": ("every symbol turned by up to 45 degrees (uniform)",
                 {"far_rotation_prob": 1.0, "far_rotation_deg": (0.0, 45.0)}),
    "sideways": ("every symbol turned 45-90 degrees either way (as a tenth of the original's are turned far)",
                 {"far_rotation_prob": 1.0, "far_rotation_deg": (45.0, 90.0)}),
    "thin": ("every stroke thin and faint", {"stroke_probs": (1.0, 0.0, 0.0)}),
    "thick": ("every stroke a pixel thicker", {"stroke_probs": (0.0, 0.0, 1.0)}),
    "dense_dots": ("salt-and-pepper at 6-10% instead of 2.3-2.7%", {"dot_density": (0.06, 0.10)}),
    "grey_background": ("every image on a grey grainy background", {"noise_probs": (0.0, 0.0, 1.0)}),
    "touching": ("every pair touching or overlapping", {"touch_prob": 1.0}),
    FONT_LETTERS: ("letters from the built-in fonts instead of handwriting", {}),
}


def style_variant(name: str) -> ComboStyle:
    """The ComboStyle of a variant (for `font_letters` the default: its change is the letter bank)."""
    if name not in STYLE_VARIANTS:
        raise ConfigError(f"unknown style variant {name!r}; choose from {', '.join(STYLE_VARIANTS)}")
    return dataclasses.replace(ComboStyle(), **STYLE_VARIANTS[name][1])
