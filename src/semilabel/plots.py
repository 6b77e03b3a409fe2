"""Small figure helpers shared by the generator and the report (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semilabel.io_utils import atomic_write


def save_image_grid(images: np.ndarray, titles: list[str], path: str | Path, title: str = "",
                    columns: int = 8, title_colors: list[str] | None = None, dpi: int = 90) -> None:
    """Save uint8 images, grey (N, H, W) or colour (N, H, W, 3), as one PNG grid with a
    caption over each image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.45 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            if images[i].ndim == 2:
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:  # colour, channels last
                ax.imshow(images[i], interpolation="nearest")
            color = title_colors[i] if title_colors else "black"
            ax.set_title(titles[i], fontsize=8, color=color)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)
