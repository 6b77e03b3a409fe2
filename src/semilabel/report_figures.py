"""The report's charts: label histograms, training curves, confusion matrices, galleries
of mistakes, class-activation maps and pseudo-label admission. Each function draws one
PNG (matplotlib's Agg, no pyplot state) and returns its path; plain image grids use
`plots.save_image_grid`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from semilabel.data.schema import LabelSchema
from semilabel.io_utils import atomic_write

Row = dict[str, object]  # one metrics.csv row: numbers as float, empty cells as None


def show_image(ax, image: np.ndarray) -> None:
    """Draw one uint8 image on `ax`: grey (H, W) on a fixed 0-255 scale, colour (H, W, 3) as RGB."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    return path


def label_histograms(labels: np.ndarray, schema: LabelSchema, path: str | Path, what: str = "training images") -> Path:
    """Bars of class counts per group, and a heat map of the first two groups' pairs."""
    groups = schema.groups
    pairs = len(groups) >= 2
    fig = Figure(figsize=(12, 7.5 if pairs else 3.2))
    # a few-class group keeps room for its title and axis beside a many-class one
    grid = fig.add_gridspec(2 if pairs else 1, len(groups), width_ratios=[max(g.size, 8) for g in groups],
                            height_ratios=[1, 1.5] if pairs else [1])
    for g, group in enumerate(groups):
        ax = fig.add_subplot(grid[0, g])
        counts = np.bincount(labels[:, g], minlength=group.size)
        ax.bar(np.arange(group.size), counts, color="tab:blue")
        ax.set_xticks(np.arange(group.size), group.classes, rotation=_tick_rotation(group.classes))
        ax.set_xlim(-0.6, group.size - 0.4)
        ax.set_title(f"{group.name} classes")
        ax.set_xlabel(group.name)
        ax.set_ylabel("images")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if pairs:
        a, b = groups[0], groups[1]
        table = np.zeros((a.size, b.size), dtype=np.int64)
        np.add.at(table, (labels[:, 0], labels[:, 1]), 1)
        ax = fig.add_subplot(grid[1, :])
        im = ax.imshow(table, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_xticks(np.arange(b.size), b.classes, rotation=_tick_rotation(b.classes))
        ax.set_yticks(np.arange(a.size), a.classes)
        ax.set_xlabel(b.name)
        ax.set_ylabel(a.name)
        ax.set_title(f"{a.name}-{b.name} pairs (images per pair; min {table.min()}, max {table.max()})")
        fig.colorbar(im, ax=ax, label="images", fraction=0.03, pad=0.01)
    fig.suptitle(f"{len(labels)} {what}")
    fig.tight_layout()
    return _save(fig, path)


def _tick_rotation(classes: tuple[str, ...]) -> int:
    """Vertical tick labels where horizontal ones would run into each other."""
    return 90 if len(classes) * max(map(len, classes), default=0) > 40 else 0  # Combo's 26 letters stay level


def _series(rows: list[Row], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float) and isinstance(r.get("step"), float)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x), np.asarray(y)


def _phase_marks(ax, rows: list[Row]) -> None:
    """Dashed lines where one phase ends and the next begins; phase names above the plot.

    Rows are logged at the end of each epoch, so phase i spans from the last step of
    phase i-1 (or 0) to its own last step."""
    spans: list[list] = []  # [name, start step, end step]
    for r in rows:
        step = r.get("step")
        if not isinstance(step, float):
            continue
        if spans and spans[-1][0] == r.get("phase"):
            spans[-1][2] = step
        else:
            spans.append([r.get("phase"), spans[-1][2] if spans else 0.0, step])
    if not spans:
        return
    ax.set_xlim(0, spans[-1][2] * 1.03 + 0.5)
    for i, (name, lo, hi) in enumerate(spans):
        if i:
            ax.axvline(lo, color="grey", linestyle="--", linewidth=1)
        ax.text((lo + hi) / 2, 1.01, str(name), transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8, color="dimgrey", clip_on=False)


def training_curves(rows: list[Row], group_names: tuple[str, ...], path: str | Path) -> Path:
    """Loss, validation exact-match and per-group validation accuracy against steps."""
    fig = Figure(figsize=(13, 4.9))
    axes = fig.subplots(1, 3)
    loss_keys = [("train_loss", "train (all heads)", "-"), ("val_loss", "validation (groups)", "-")]
    loss_keys += [(f"train_loss_{n}", f"train {n}", "--") for n in group_names]
    loss_keys += [("train_loss_pretext", "train SESEMI pretext", ":")]
    for key, label, style in loss_keys:
        x, y = _series(rows, key)
        if len(x):
            axes[0].plot(x, y, style, marker="o", markersize=3, label=label)
    axes[0].set_title("loss", pad=16)
    axes[0].set_ylabel("cross-entropy")
    x, y = _series(rows, "val_exact")
    if len(x):
        axes[1].plot(x, y, "-o", markersize=3, color="tab:green", label="validation exact-match")
    axes[1].set_title("exact-match (every group right)", pad=16)
    for name in group_names:
        x, y = _series(rows, f"val_{name}")
        if len(x):
            axes[2].plot(x, y, "-o", markersize=3, label=f"validation {name}")
    axes[2].set_title("per-group accuracy", pad=16)
    for ax in axes[1:]:
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        _phase_marks(ax, rows)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


MAX_CONFUSION_CLASSES = 30  # a larger group's matrix shows only its most confused classes


def most_confused_classes(cm: np.ndarray, limit: int = MAX_CONFUSION_CLASSES) -> np.ndarray:
    """Indices (ascending) of at most `limit` classes: those of the largest off-diagonal
    counts first (both the true and the predicted class of each), then, while places are
    left, the classes with the most images. All of them when there are `limit` or fewer."""
    n = len(cm)
    if n <= limit:
        return np.arange(n)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    chosen: list[int] = []
    for cell in np.argsort(-off, axis=None, kind="stable"):
        t, p = np.unravel_index(cell, off.shape)
        if off[t, p] == 0 or len(chosen) >= limit:
            break
        chosen += [int(c) for c in (t, p) if c not in chosen][: limit - len(chosen)]
    by_images = np.argsort(-(cm.sum(axis=0) + cm.sum(axis=1)), kind="stable")
    chosen += [int(c) for c in by_images if c not in chosen][: limit - len(chosen)]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def confusion_plot(cm: np.ndarray, classes: tuple[str, ...], name: str, what: str = "validation split",
                   limit: int = MAX_CONFUSION_CLASSES) -> Figure:
    """Counts annotated; colour is the share of each true class (row-normalised, over all
    its images). A group of more than `limit` classes shows only `most_confused_classes`."""
    keep = most_confused_classes(cm, limit)
    rates = (cm / np.maximum(cm.sum(axis=1, keepdims=True), 1))[np.ix_(keep, keep)]
    shown, labels = cm[np.ix_(keep, keep)], [classes[k] for k in keep]
    n = len(keep)
    side = max(5.0, 0.42 * n + 1.5)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    size = 10 if n <= 12 else 9 if n <= 20 else 7
    for t, p in zip(*np.nonzero(shown)):
        ax.text(p, t, str(shown[t, p]), ha="center", va="center", fontsize=size,
                color="white" if rates[t, p] > 0.6 else "black")
    ax.set_xticks(np.arange(n), labels, rotation=_tick_rotation(tuple(labels)))
    ax.set_yticks(np.arange(n), labels)
    ax.set_xlabel(f"predicted {name}")
    ax.set_ylabel(f"true {name}")
    part = f"; the {n} most confused of {len(classes)} classes" if n < len(classes) else ""
    ax.set_title(f"{name} confusion on the {what} ({int(cm.sum())} images{part})")
    fig.colorbar(im, ax=ax, label="share of the true class", fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def confusion_figure(cm: np.ndarray, classes: tuple[str, ...], name: str, path: str | Path,
                     what: str = "validation split") -> Path:
    """`confusion_plot` saved as a PNG."""
    return _save(confusion_plot(cm, classes, name, what), path)


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mistakes_figure(images: np.ndarray, true: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
                    schema: LabelSchema, path: str | Path, title: str, columns: int = 8) -> Path:
    """A gallery of wrongly predicted images (uint8, grey or colour): under each, one line
    per group, `group: true → predicted p%` in red where the group is wrong, `group: class
    p%` in grey where it is right; p is the predicted class's probability."""
    n, groups = len(images), schema.groups
    h, w = images.shape[1:3]
    cell_w = 1.55
    image_h = min(cell_w * 0.92 * h / w, 2.2)
    text_h = 0.15 * len(groups) + 0.08
    rows = max(1, -(-n // columns))
    head = 0.55
    fig = Figure(figsize=(columns * cell_w, rows * (image_h + text_h) + head))
    width, height = fig.get_size_inches()
    for i in range(n):
        r, c = divmod(i, columns)
        top = height - head - r * (image_h + text_h)
        ax = fig.add_axes([(c * cell_w + 0.04 * cell_w) / width, (top - image_h) / height,
                           0.92 * cell_w / width, image_h / height])
        ax.axis("off")
        show_image(ax, images[i])
        for g, group in enumerate(groups):
            wrong = true[i, g] != predicted[i, g]
            guess = _short(group.classes[predicted[i, g]])
            text = (f"{_short(group.name, 8)}: {_short(group.classes[true[i, g]])} → {guess}" if wrong
                    else f"{_short(group.name, 8)}: {guess}") + f" {confidence[i, g]:.0%}"
            ax.annotate(text, (0.5, 0), xycoords="axes fraction", xytext=(0, -2 - 10.5 * g),
                        textcoords="offset points", ha="center", va="top", fontsize=7,
                        color="firebrick" if wrong else "dimgrey", fontweight="bold" if wrong else "normal")
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    return _save(fig, path)


def cam_figure(images: np.ndarray, maps: np.ndarray, true: list[str] | None, predicted: list[str],
               confidence: np.ndarray, group: str, path: str | Path) -> Path:
    """Grad-CAM of one group: the images (uint8, grey or colour) on top, under each its
    map (N, H, W) in 0-1 as a heat map over a greyed copy, titled with the predicted class
    and its probability (red when it is wrong; the true class above, when known)."""
    n = len(images)
    h, w = images.shape[1:3]
    cell = 1.8
    fig = Figure(figsize=(n * cell, 2 * cell * min(h / w, 1.5) + 0.9))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        top, bottom = axes[0, i], axes[1, i]
        show_image(top, images[i])
        top.set_title(f"true {_short(true[i])}" if true is not None else "", fontsize=8)
        grey = images[i] if images[i].ndim == 2 else images[i].mean(axis=2)
        bottom.imshow(grey, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        bottom.imshow(maps[i], cmap="jet", vmin=0, vmax=1, alpha=0.5, interpolation="bilinear")
        empty = " (no evidence)" if maps[i].max() <= 0 else ""  # nothing raises the class's probability
        bottom.set_title(f"{_short(predicted[i])} {confidence[i]:.0%}{empty}", fontsize=8,
                         color="firebrick" if true is not None and true[i] != predicted[i] else "black")
        for ax in (top, bottom):
            ax.axis("off")
    fig.suptitle(f"{group}: where the predicted class finds its evidence (Grad-CAM; red = most)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def pseudo_figure(rows: list[Row], path: str | Path) -> Path:
    """Admitted pseudo-labels per relabelling (bars, with the share of the unlabelled
    set) and their accuracy against hidden labels when known (line)."""
    picked = [r for r in rows if isinstance(r.get("pseudo_admitted"), float)]
    counts = np.array([r["pseudo_admitted"] for r in picked])
    fig = Figure(figsize=(9, 4.2))
    ax = fig.subplots()
    x = np.arange(len(picked))
    bars = ax.bar(x, counts, color="tab:purple", alpha=0.75, label="admitted images")
    shares = [f"{r['pseudo_fraction']:.0%}" if isinstance(r.get("pseudo_fraction"), float) else "" for r in picked]
    ax.bar_label(bars, [f"{c:.0f} ({s})" if s else f"{c:.0f}" for c, s in zip(counts, shares)], fontsize=8, padding=2)
    ax.set_ylim(0, max(1.0, counts.max(initial=0)) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(x, [f"{r['epoch']:g}" if isinstance(r.get("epoch"), float) else str(i + 1) for i, r in enumerate(picked)])
    ax.set_xlabel("epoch (pseudo-labels recomputed at its start)")
    ax.set_ylabel("admitted unlabelled images")
    ax.set_title("pseudo-label admission (share of the unlabelled set in brackets)")
    handles, labels = ax.get_legend_handles_labels()
    acc = [(i, r["pseudo_accuracy"]) for i, r in enumerate(picked) if isinstance(r.get("pseudo_accuracy"), float)]
    if acc:
        right = ax.twinx()
        right.plot(*zip(*acc), "-o", color="tab:orange", label="exact-match of admitted labels (hidden labels)")
        right.set_ylim(0, 1.02)
        right.set_ylabel("accuracy of admitted labels")
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def consistency_figure(rows: list[Row], group_names: tuple[str, ...], path: str | Path) -> Path:
    """FixMatch per epoch: the share of unlabelled rows whose label each group admitted,
    and how often each group's admitted labels were right (hidden labels, when known)."""
    picked = [r for r in rows if isinstance(r.get("train_fixmatch_admit_0"), float)]
    x = [r["epoch"] if isinstance(r.get("epoch"), float) else i + 1 for i, r in enumerate(picked)]
    fig = Figure(figsize=(9, 4.2))
    ax = fig.subplots()
    for g, name in enumerate(group_names):
        line, = ax.plot(x, [r.get(f"train_fixmatch_admit_{g}", np.nan) for r in picked], "-o", label=f"{name} admitted")
        if any(isinstance(r.get(f"train_fixmatch_correct_{g}"), float) for r in picked):
            ax.plot(x, [r.get(f"train_fixmatch_correct_{g}", np.nan) for r in picked], "--", color=line.get_color(),
                    label=f"{name}: admitted labels right (hidden labels)")
    if not any(isinstance(r.get("train_fixmatch_correct_0"), float) for r in picked) and \
            any(isinstance(r.get("train_fixmatch_correct"), float) for r in picked):  # runs before per-group counts
        ax.plot(x, [r.get("train_fixmatch_correct", np.nan) for r in picked], "--", color="black",
                label="admitted labels right (hidden labels)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of unlabelled rows")
    ax.set_title("consistency training: teacher labels admitted per group (mean over the epoch's steps)")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def label_curve_figure(series: list[tuple[str, str, list[tuple[int, float]]]], path: str | Path,
                       ringed: list[tuple[int, float]] = (), title: str = "", xlabel: str = "labelled images") -> Path:
    """Test exact-match (0-1) against labelled images: per series (label, colour, a (labels,
    exact) pair per run) a line through each count's mean and a dot per run; `ringed` runs circled."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, colour, runs in series:
        if not runs:
            continue
        counts = sorted({n for n, _ in runs})
        ax.plot(counts, [100 * np.mean([e for n, e in runs if n == c]) for c in counts], "-o", color=colour, label=label)
        ax.scatter([n for n, _ in runs], [100 * e for _, e in runs], s=12, color=colour, alpha=0.5)
    if ringed:
        ax.scatter([n for n, _ in ringed], [100 * e for _, e in ringed], s=140, facecolors="none", edgecolors="black",
                   label="this run")
    if len({n for _, _, runs in series for n, _ in runs}) > 1:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test exact-match (%)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
