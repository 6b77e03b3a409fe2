"""Style statistics of any image set: the figures ORIGINAL_DATA.md gives for the
original Combo images, measured without labels or boxes.

Per image: ink = pixels above the background median plus 35% of the way from it to
the image's maximum (on a black background: above 35% of the maximum, as the
original figures are measured). The two symbols are the two largest 8-connected ink
components (small fragments close to one are merged into it; bright dots are
components of at most `DOT_MAX` pixels). An image whose second component is missing
or tiny counts as "touching" (its two symbols form one blob) and gives no size or
offset. The noise regime is read from the background: grey when its median is at
least `GREY_MEDIAN`, salt-and-pepper when bright dots are found, else clean. Dark
dots are counted as holes in strokes (a dark pixel between two bright opposite
neighbours) per stroke pixel; small loops of clean symbols give a baseline, shown
beside it.
Rotation is not measured (it needs the upright glyph).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from semilabel.errors import DataError

INK_LEVEL = 0.35  # as ORIGINAL_DATA.md measures ink
MIN_SYMBOL = 6  # px: smaller components are dots or fragments
SECOND_SHARE = 0.12  # a second component under this share of the first is a fragment, not a symbol
MERGE_GAP = 2  # px between boxes: a fragment this close joins the symbol
DOT_MAX = 3  # px: bright components this small are dots
DOT_CLEARANCE = 3  # px: dots are counted this far from other ink
GREY_MEDIAN = 8  # grey level: a background median at least this high is a grey background
DOTTED_BRIGHT = 0.003  # share of free pixels in bright dots above which an image has salt-and-pepper noise
GREY_SPLIT = 38  # grey backgrounds below this median are "dark", above it "light"
STYLE_SAMPLE = 5000  # images measured for style statistics
_CHUNK = 2048
_PLANE = np.zeros((3, 3, 3), bool)
_PLANE[1] = True  # 8-connectivity within an image, none across the stack


@dataclass(frozen=True)
class StyleStats:
    """Measured style of an image set (NaN where no image qualifies)."""

    count: int
    size_p10: float  # longer side of a symbol's ink box (px), percentiles over both symbols
    size_p50: float
    size_p90: float
    centre_x_p5: float  # symbol centres (px), percentiles
    centre_x_p95: float
    centre_y_p5: float
    centre_y_p95: float
    dy_median: float  # |vertical| and |horizontal| centre offset between the two symbols (px)
    dx_median: float
    stacked_share: float  # share of pairs with |dx| < 2.5 px
    touching_share: float  # share of images whose symbols form one blob
    dim_ratio_median: float  # peak of the dimmer symbol / the brighter (images without dots)
    clean_share: float  # noise regimes
    salt_pepper_share: float
    grey_share: float
    bright_dots_p10: float  # salt-and-pepper images: share of free pixels that are bright dots
    bright_dots_p50: float
    bright_dots_p90: float
    dark_holes_median: float  # salt-and-pepper images: holes in strokes per stroke pixel, median
    dark_holes_clean: float  # the same on clean images (small loops): the baseline
    dots_at_255_share: float  # salt-and-pepper images whose dots are at 255 (rather than below the ink)
    dot_level_below_ink: float  # median dot level where the dots are below 255
    grey_dark_median: float  # grey images: background median of the dark ones ...
    grey_light_median: float  # ... and of the light ones
    grey_rel_std: float  # grey images: background std / mean, median
    clean_grey_levels: float  # clean images: distinct grey levels, median (dim ink scaled up has few)

    def table(self, name: str = "data", reference: bool = True) -> str:
        """A markdown table of these figures (with the original's when `reference`)."""
        return format_table({name: self}, reference=reference)

    def summary(self) -> str:
        """The main figures in four lines, the original's in brackets."""
        f = {k: _fmt(k, getattr(self, k)) for k in _LABELS}
        return "\n".join([
            f"  symbol size p10/50/90 {f['size_p10']}/{f['size_p50']}/{f['size_p90']} px [12/15/17]; centres x "
            f"{f['centre_x_p5']}-{f['centre_x_p95']}, y {f['centre_y_p5']}-{f['centre_y_p95']} px [12-44]",
            f"  centre offsets |dy| {f['dy_median']}, |dx| {f['dx_median']} px [16, 13]; stacked {f['stacked_share']}"
            f" [~10%]; touching {f['touching_share']} [a minority]; dimmer/brighter {f['dim_ratio_median']} [~0.75]",
            f"  noise: clean {f['clean_share']}, salt-and-pepper {f['salt_pepper_share']}, grey {f['grey_share']}"
            f" [26/57/17%]",
            f"  bright dots p10/50/90 {f['bright_dots_p10']}/{f['bright_dots_p50']}/{f['bright_dots_p90']} [0.5-2.7%];"
            f" grey medians {f['grey_dark_median']} / {f['grey_light_median']} [21-28 / 49-63],"
            f" std/mean {f['grey_rel_std']} [~0.3]",
        ])


# What ORIGINAL_DATA.md says, row by row (text for tables).
ORIGINAL_FIGURES = {
    "size_p10": "12", "size_p50": "15", "size_p90": "17",
    "centre_x_p5": "~12", "centre_x_p95": "~44", "centre_y_p5": "~12", "centre_y_p95": "~44",
    "dy_median": "16", "dx_median": "13", "stacked_share": "~10%", "touching_share": "a minority",
    "dim_ratio_median": "~0.75",
    "clean_share": "~26%", "salt_pepper_share": "~57%", "grey_share": "~17%",
    "bright_dots_p10": "0.5-1.5% (dim-dot images)", "bright_dots_p50": "2.3-2.7%", "bright_dots_p90": "2.3-2.7%",
    "dark_holes_median": "as many dark dots as bright", "dark_holes_clean": "–", "dots_at_255_share": "some (255, or ~176)",
    "dot_level_below_ink": "~176", "grey_dark_median": "21-28", "grey_light_median": "49-63",
    "grey_rel_std": "~0.3", "clean_grey_levels": "few (dim, grainy)",
}
_PERCENT = {"stacked_share", "touching_share", "clean_share", "salt_pepper_share", "grey_share", "bright_dots_p10",
            "bright_dots_p50", "bright_dots_p90", "dark_holes_median", "dark_holes_clean", "dots_at_255_share"}
_LABELS = {
    "size_p10": "symbol size p10 (px)", "size_p50": "symbol size p50 (px)", "size_p90": "symbol size p90 (px)",
    "centre_x_p5": "centre x p5 (px)", "centre_x_p95": "centre x p95 (px)",
    "centre_y_p5": "centre y p5 (px)", "centre_y_p95": "centre y p95 (px)",
    "dy_median": "median vertical offset (px)", "dx_median": "median horizontal offset (px)",
    "stacked_share": "stacked (horizontal offset < 2.5 px)", "touching_share": "touching (one blob)",
    "dim_ratio_median": "dimmer / brighter symbol",
    "clean_share": "clean", "salt_pepper_share": "salt-and-pepper", "grey_share": "grey background",
    "bright_dots_p10": "bright dots p10", "bright_dots_p50": "bright dots p50", "bright_dots_p90": "bright dots p90",
    "dark_holes_median": "holes in strokes (dotted)", "dark_holes_clean": "holes in strokes (clean)", "dots_at_255_share": "dots at 255",
    "dot_level_below_ink": "dot level when ink is brighter", "grey_dark_median": "dark grey median",
    "grey_light_median": "light grey median", "grey_rel_std": "grey std / mean",
    "clean_grey_levels": "grey levels, clean images",
}


def _fmt(name: str, value: float) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "–"
    if name in _PERCENT:
        return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"
    return f"{value:.2f}" if abs(value) < 2 else f"{value:.1f}"


def format_table(columns: dict[str, StyleStats], reference: bool = True) -> str:
    """Markdown table: one row per statistic, one column per image set (and the
    original data's figure when `reference`)."""
    names = list(columns)
    header = ["statistic", *names] + (["original (ORIGINAL_DATA.md)"] if reference else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append("| images measured | " + " | ".join(str(c.count) for c in columns.values())
                 + (" | |" if reference else " |"))
    for f in fields(StyleStats):
        if f.name == "count":
            continue
        row = [_LABELS[f.name], *(_fmt(f.name, getattr(c, f.name)) for c in columns.values())]
        if reference:
            row.append(ORIGINAL_FIGURES[f.name])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def stats_rows(columns: dict[str, StyleStats]) -> tuple[list[str], list[list[str]]]:
    """The same table as header and rows (for HTML)."""
    lines = format_table(columns).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


# ---- measurement -------------------------------------------------------------------
@dataclass
class _Measured:
    """Per-image measurements of one chunk (NaN where not found)."""

    boxes: np.ndarray  # (n, 2, 4) x0, y0, x1, y1 (exclusive) of the two symbols
    two: np.ndarray  # (n,) bool: two symbols found
    peaks: np.ndarray  # (n, 2) symbol peaks
    regime: np.ndarray  # (n,) 0 clean, 1 salt-and-pepper, 2 grey
    bright: np.ndarray  # (n,) bright dot share of free pixels
    dark: np.ndarray  # (n,) dark dot share of in-stroke pixels
    dot_level: np.ndarray  # (n,) median bright dot value
    bg_median: np.ndarray
    bg_rel_std: np.ndarray
    levels: np.ndarray  # (n,) distinct grey levels


def _measure_chunk(images: np.ndarray) -> _Measured:
    """Per-image measurements of (n, H, W) uint8 images, in the steps the module's docstring names."""
    ink = _find_ink(images)
    boxes, two, peaks = _two_symbols(ink)
    bright, dot_level, free, dot_mask, solid = _bright_dots(ink)
    dark = _dark_holes(ink, solid)
    regime = np.where(ink.level >= GREY_MEDIAN, 2, np.where(bright > DOTTED_BRIGHT, 1, 0))
    bg_median, bg_rel_std = _background(ink, regime, free & ~dot_mask)
    ordered = np.sort(images.reshape(ink.n, -1), axis=1)
    levels = (np.diff(ordered.astype(np.int16), axis=1) != 0).sum(1) + 1
    return _Measured(boxes, two, peaks, regime, bright, dark, dot_level, bg_median, bg_rel_std, levels)


@dataclass
class _Ink:
    """The ink of one chunk of n images and its 8-connected components."""

    n: int
    x: np.ndarray  # (n, H, W) float32 images
    flat: np.ndarray  # (n, H * W) the same
    level: np.ndarray  # (n,) background: the median
    top: np.ndarray  # (n,) the maximum
    mask: np.ndarray  # (n, H, W) bool: ink
    labels: np.ndarray  # (n, H, W) component ids, 0 off ink
    count: int  # components
    sizes: np.ndarray  # (count + 1,) pixels per component id (id 0: off ink)


def _find_ink(images: np.ndarray) -> _Ink:
    n = len(images)
    x = images.astype(np.float32)
    flat = x.reshape(n, -1)
    level = np.median(flat, axis=1)
    top = flat.max(axis=1)
    thr = (level + INK_LEVEL * (top - level))[:, None, None]
    mask = (x > thr) & (top > level)[:, None, None]
    labels, count = ndimage.label(mask, structure=_PLANE)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return _Ink(n, x, flat, level, top, mask, labels, count, sizes)


def _two_symbols(ink: _Ink) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (n, 2, 4), whether two symbols were found (n,) and peaks (n, 2): each image's
    two largest components, the second only where it is not a fragment, close fragments merged."""
    n = ink.n
    image_of, boxes_all, peaks_all = _components(ink.labels, ink.x, ink.count)
    big = np.flatnonzero(ink.sizes[1:] >= 4)  # component ids - 1
    boxes_big, peaks_big, img_big, size_big = boxes_all[big], peaks_all[big], image_of[big], ink.sizes[big + 1]
    # rank components by size within each image
    order = np.lexsort((-size_big, img_big))
    img_sorted = img_big[order]
    first_of = np.searchsorted(img_sorted, np.arange(n))
    has = np.bincount(img_sorted, minlength=n)
    rank = np.arange(len(order)) - first_of[img_sorted]
    ranked = np.empty(len(order), np.int64)
    ranked[order] = rank
    boxes = np.full((n, 2, 4), np.nan)
    peaks = np.full((n, 2), np.nan)
    size = np.zeros((2, n))  # the first and second symbol's pixels
    for r in (0, 1):
        sel = (ranked == r) & (size_big >= MIN_SYMBOL)
        boxes[img_big[sel], r] = boxes_big[sel]
        peaks[img_big[sel], r] = peaks_big[sel]
        size[r, img_big[sel]] = size_big[sel]
    two = (has >= 2) & (size[1] >= np.maximum(MIN_SYMBOL, SECOND_SHARE * size[0]))
    boxes[~two, 1] = np.nan
    peaks[~two, 1] = np.nan
    _merge_fragments(boxes, boxes_big, img_big, ranked >= np.where(two[img_big], 2, 1))
    return boxes, two, peaks


def _merge_fragments(boxes: np.ndarray, boxes_big: np.ndarray, img_big: np.ndarray, rest: np.ndarray) -> None:
    """Grow `boxes` (n, 2, 4) in place over the `rest` components (pieces of broken strokes,
    the dot of an i) within MERGE_GAP px of a symbol: first symbol first, each piece once."""
    rest = rest.copy()
    for r in (0, 1):
        target = boxes[img_big[rest], r]
        gap = np.max(np.stack([boxes_big[rest, 0] - target[:, 2], target[:, 0] - boxes_big[rest, 2],
                                  boxes_big[rest, 1] - target[:, 3], target[:, 1] - boxes_big[rest, 3]]), axis=0) \
            if rest.any() else np.zeros(0)  # NaN (no such symbol) never merges
        near = np.flatnonzero(rest)[np.nan_to_num(gap, nan=np.inf) <= MERGE_GAP]
        for k, fn in ((0, np.fmin), (1, np.fmin), (2, np.fmax), (3, np.fmax)):
            column = boxes[:, r, k]
            fn.at(column, img_big[near], boxes_big[near, k])
            boxes[:, r, k] = column
        rest[near] = False


def _bright_dots(ink: _Ink) -> tuple[np.ndarray, ...]:
    """Tiny bright components away from the symbols, counted where no ink is within
    DOT_CLEARANCE px (so that broken strokes do not count): their share of the free pixels
    (n,), their median value (n,), and the masks (n, H, W) of free pixels, dot pixels and
    the solid ink."""
    n, mask, labels, sizes = ink.n, ink.mask, ink.labels, ink.sizes
    tiny = np.zeros(ink.count + 1, bool)
    tiny[1:] = sizes[1:] <= DOT_MAX
    dot_mask = tiny[labels]
    solid = mask & ~dot_mask
    near_ink = ndimage.binary_dilation(solid, structure=_PLANE, iterations=DOT_CLEARANCE)
    free = ~near_ink
    dot_pixels = (dot_mask & free).reshape(n, -1)
    bright = dot_pixels.sum(1) / np.maximum(free.reshape(n, -1).sum(1), 1)
    dot_level = np.full(n, np.nan)
    has_dots = dot_pixels.any(1)
    if has_dots.any():
        values = np.where(dot_pixels[has_dots], ink.flat[has_dots], np.nan)
        dot_level[has_dots] = np.nanmedian(values, axis=1)
    return bright, dot_level, free, dot_mask, solid


def _dark_holes(ink: _Ink, solid: np.ndarray) -> np.ndarray:
    """Dark dots: dark pixels between two bright opposite neighbours (holes punched into
    strokes), as a share of the stroke pixels (n,)."""
    n, x, level, top = ink.n, ink.x, ink.level, ink.top
    bright_px = np.pad(solid & (x > (level + 0.5 * (top - level))[:, None, None]), ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]
    across = np.zeros(x.shape, bool)  # bright on two opposite sides: inside a stroke
    for dy, dx in ((0, 1), (1, 0)):  # left and right, or above and below (not the inner corner of a stroke)
        across |= bright_px[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] & bright_px[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
    holes = across & (x < (level + 0.15 * (top - level))[:, None, None])
    n_holes = holes.reshape(n, -1).sum(1)
    return n_holes / np.maximum(solid.reshape(n, -1).sum(1) + n_holes, 1)


def _background(ink: _Ink, regime: np.ndarray, away: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and std/mean (n,) of the pixels `away` (n, H, W) from any ink, on grey images only (else NaN)."""
    bg_median, bg_rel_std = np.full(ink.n, np.nan), np.full(ink.n, np.nan)
    grey = np.flatnonzero(regime == 2)
    if len(grey):
        background = np.where(away[grey].reshape(len(grey), -1), ink.flat[grey], np.nan)
        bg_median[grey] = np.nanmedian(background, axis=1)
        bg_rel_std[grey] = np.nanstd(background, axis=1) / np.nanmean(background, axis=1)
    return bg_median, bg_rel_std


def _components(labels: np.ndarray, values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For components 1..count of a (n, H, W) label stack: image index (count,), box
    x0, y0, x1, y1 (exclusive) (count, 4) and peak value (count,)."""
    if count == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0)
    where = np.flatnonzero(labels)
    lab = labels.ravel()[where]
    order = np.argsort(lab, kind="stable")
    where, lab = where[order], lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    n, h, w = labels.shape
    z, rest = np.divmod(where, h * w)
    y, xs = np.divmod(rest, w)
    boxes = np.stack([np.minimum.reduceat(xs, starts), np.minimum.reduceat(y, starts),
                      np.maximum.reduceat(xs, starts) + 1, np.maximum.reduceat(y, starts) + 1], axis=1)
    peaks = np.maximum.reduceat(values.ravel()[where], starts)
    return z[starts].astype(np.int64), boxes.astype(np.float64), peaks


def _nan_percentile(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _share(mask: np.ndarray, among: np.ndarray | None = None) -> float:
    if among is not None:
        mask = mask[among]
    return float(mask.mean()) if len(mask) else float("nan")


def measure_style(images: np.ndarray) -> StyleStats:
    """Measure StyleStats on (N, H, W) uint8 images, white ink on black (any N >= 1)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise DataError(f"style statistics need (N, H, W) uint8 images, got {images.shape} {images.dtype}")
    parts = [_measure_chunk(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)]
    m = _Measured(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Measured)))
    boxes = m.boxes[m.two]  # (k, 2, 4)
    side = np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]).ravel()
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # (k, 2, 2)
    offset = np.abs(centre[:, 1] - centre[:, 0])
    quiet = m.two & (m.regime != 1)
    peaks = m.peaks[quiet]
    ratio = peaks.min(1) / np.maximum(peaks.max(1), 1) if len(peaks) else np.zeros(0)
    sp, grey, clean = m.regime == 1, m.regime == 2, m.regime == 0
    at_255 = m.dot_level >= 240
    return StyleStats(
        count=len(images),
        size_p10=_nan_percentile(side, 10), size_p50=_nan_percentile(side, 50), size_p90=_nan_percentile(side, 90),
        centre_x_p5=_nan_percentile(centre[..., 0].ravel(), 5),
        centre_x_p95=_nan_percentile(centre[..., 0].ravel(), 95),
        centre_y_p5=_nan_percentile(centre[..., 1].ravel(), 5),
        centre_y_p95=_nan_percentile(centre[..., 1].ravel(), 95),
        dy_median=_nan_percentile(offset[:, 1], 50), dx_median=_nan_percentile(offset[:, 0], 50),
        stacked_share=_share(offset[:, 0] < 2.5), touching_share=_share(~m.two),
        dim_ratio_median=_nan_percentile(ratio, 50),
        clean_share=_share(clean), salt_pepper_share=_share(sp), grey_share=_share(grey),
        bright_dots_p10=_nan_percentile(m.bright[sp], 10), bright_dots_p50=_nan_percentile(m.bright[sp], 50),
        bright_dots_p90=_nan_percentile(m.bright[sp], 90), dark_holes_median=_nan_percentile(m.dark[sp], 50),
        dark_holes_clean=_nan_percentile(m.dark[clean], 50),
        dots_at_255_share=_share(at_255, sp & np.isfinite(m.dot_level)),
        dot_level_below_ink=_nan_percentile(m.dot_level[sp & ~at_255], 50),
        grey_dark_median=_nan_percentile(m.bg_median[grey & (m.bg_median < GREY_SPLIT)], 50),
        grey_light_median=_nan_percentile(m.bg_median[grey & (m.bg_median >= GREY_SPLIT)], 50),
        grey_rel_std=_nan_percentile(m.bg_rel_std[grey], 50),
        clean_grey_levels=_nan_percentile(m.levels[clean].astype(np.float64), 50),
    )


def spread_sample(images: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` images, evenly spaced through the set (deterministic)."""
    if len(images) <= limit:
        return images
    return images[np.linspace(0, len(images) - 1, limit).round().astype(np.int64)]
