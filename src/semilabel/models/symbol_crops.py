"""Find the two symbols of an image without labels, and crop each to a glyph-sized picture.

Batched tensor ops, no learning: the `crops` backbone reads each symbol from its crop,
so that the network sees every symbol centred and at one size, as a glyph classifier
does, instead of searching a 56 px canvas for two small symbols.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

INK_LEVEL = 0.2  # ink: brighter than the image's median by this share of the way to its top (0.3: more dim symbols lost)
MIN_NEIGHBOURS = 2  # an ink pixel with fewer ink neighbours is a noise dot
BOX_QUANTILES = (0.01, 0.99)  # a symbol's box spans these quantiles of its ink, per axis
GLYPH_FILL = 20 / 28  # a crop holds its symbol's longer side in this share of its side (as MNIST)
_TINY = 1e-6  # a weight sum below this is no ink (an ink pixel weighs at least 3/25, 3/100 at half size)


def ink_mask(x: torch.Tensor, level: float = INK_LEVEL, min_neighbours: int = MIN_NEIGHBOURS) -> torch.Tensor:
    """(B, 1, H, W) images in 0-1 -> (B, H, W) bool: pixels brighter than the median by
    `level` of the way to the image's brightest, and with at least `min_neighbours` such
    pixels among their eight neighbours (strokes are lines; salt dots stand alone)."""
    flat = x.flatten(1)
    top = flat.amax(1).clamp(min=1e-6)
    median = flat.topk((flat.shape[1] + 1) // 2, dim=1, largest=False).values[:, -1] / top  # (exports, unlike median)
    bright = x[:, 0] / top[:, None, None] > (median + level * (1 - median))[:, None, None]
    count = 9 * F.avg_pool2d(bright[:, None].float(), 3, 1, 1, count_include_pad=True)[:, 0] - bright.float()
    return bright & (count >= min_neighbours)


def _nearer_second(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(P, 2) points and (B, 2, 2) centres -> (B, P) bool: nearer the second centre
    (|p - c1|^2 < |p - c0|^2, which is linear in p)."""
    diff = centres[:, 1] - centres[:, 0]
    bias = (centres[:, 1].square().sum(1) - centres[:, 0].square().sum(1)) / 2
    return points[None, :, 0] * diff[:, :1] + points[None, :, 1] * diff[:, 1:] > bias[:, None]


def _two_means(points: torch.Tensor, weight: torch.Tensor, iterations: int) -> torch.Tensor:
    """(P, 2) pixel centres and (B, P) ink weights -> (B, 2, 2) centres of weighted k-means with
    two clusters, started at the two extreme inked pixels along the ink's longer principal axis.
    The weights are ink shares in 0-1, so a thin, short symbol weighs under 1 in all: every
    weighted mean divides by its own weight sum, never by at least 1 (which pulled a light
    cluster's centre toward the corner at 0, 0)."""
    total = weight.sum(1, keepdim=True)
    mean = weight @ points / total.clamp(min=_TINY)  # (B, 2); no ink: 0, 0 (such images get the frame)
    d = points[None] - mean[:, None]  # (B, P, 2)
    cov = torch.einsum("bp,bpi,bpj->bij", weight, d, d)
    angle = 0.5 * torch.atan2(2 * cov[:, 0, 1], cov[:, 0, 0] - cov[:, 1, 1])
    along = d[..., 0] * angle.cos()[:, None] + d[..., 1] * angle.sin()[:, None]  # (B, P)
    ink = weight > 0
    lo = along.masked_fill(~ink, float("inf")).argmin(1)
    hi = along.masked_fill(~ink, float("-inf")).argmax(1)
    centres = torch.stack([points[lo], points[hi]], dim=1)  # (B, 2, 2)
    for _ in range(iterations):
        second = _nearer_second(points, centres)
        member = torch.stack([weight * ~second, weight * second], dim=1)  # (B, 2, P)
        count = member.sum(2, keepdim=True)
        centres = torch.where(count > _TINY, member @ points / count.clamp(min=_TINY), centres)
    return centres


def _span(mass: torch.Tensor, quantiles: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) ink per row or column -> first and one-past-last index between the quantiles."""
    cdf = mass.cumsum(1) / mass.sum(1, keepdim=True).clamp(min=1e-6)
    first = (cdf <= quantiles[0]).sum(1)
    last = (cdf < quantiles[1]).sum(1) + 1
    return first.float(), last.clamp(max=mass.shape[1]).float()


def _pixel_centres(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(h * w, 2) x, y of each pixel's centre, row by row."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1).float() + 0.5


def find_symbols(x: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """(B, 1, H, W) images in 0-1 -> (B, 2, 4) ink boxes x0, y0, x1, y1 (x1, y1 exclusive) of
    the two symbols, in no particular order: the ink (`ink_mask`), each pixel weighted by the
    share of ink around it (5 x 5), split in two by k-means on pixel positions, each box
    spanning `BOX_QUANTILES` of its part's weight. On generated sets the boxes overlap the
    drawn ones by 0.90 (intersection over union) on average. An image with under four ink
    pixels gets the whole frame twice. Runs in float32 whatever the autocast around it
    (its matrix products sum pixel positions)."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return _find_symbols(x.float(), iterations)


def _find_symbols(x: torch.Tensor, iterations: int) -> torch.Tensor:
    b, _, h, w = x.shape
    ink = ink_mask(x)
    mass = ink.float() * F.avg_pool2d(ink[:, None].float(), 5, 1, 2)[:, 0]  # stray ink weighs little
    weight = mass.flatten(1)
    # the centres from the ink at half resolution (a quarter of the points), then every pixel
    coarse = F.avg_pool2d(mass[:, None], 2, ceil_mode=True)[:, 0]
    centres = 2 * _two_means(_pixel_centres(*coarse.shape[1:], x.device), coarse.flatten(1), iterations)
    points = _pixel_centres(h, w, x.device)
    second = _nearer_second(points, centres)
    boxes = []
    for k in (0, 1):
        part = (weight * (second if k else ~second)).view(b, h, w)
        part = torch.where(part.sum((1, 2), keepdim=True) > 0, part, mass)  # an empty part: all the ink
        x0, x1 = _span(part.sum(1), BOX_QUANTILES)
        y0, y1 = _span(part.sum(2), BOX_QUANTILES)
        boxes.append(torch.stack([x0, y0, x1, y1], dim=1))
    boxes = torch.stack(boxes, dim=1)
    frame = torch.tensor([0.0, 0.0, w, h], device=x.device)
    return torch.where((ink.flatten(1).sum(1) < 4)[:, None, None], frame, boxes)


def crop_boxes(x: torch.Tensor, boxes: torch.Tensor, side: int, fill: float = GLYPH_FILL) -> torch.Tensor:
    """(B, C, H, W) images and (B, 4) boxes -> (B, C, side, side): a square around each box's
    centre whose longer side fills `fill` of the crop, bilinear, black beyond the image."""
    b, c, h, w = x.shape
    boxes = boxes.float()
    half = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clamp(min=4) / fill / 2
    theta = x.new_zeros(b, 2, 3, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 1, 1] = half / (w / 2), half / (h / 2)
    theta[:, 0, 2], theta[:, 1, 2] = (boxes[:, 0] + boxes[:, 2]) / w - 1, (boxes[:, 1] + boxes[:, 3]) / h - 1
    grid = F.affine_grid(theta, [b, c, side, side], align_corners=False)
    return F.grid_sample(x.float(), grid, align_corners=False).to(x.dtype)


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) intersection over union of boxes a[i] and b[i], each (N, 4) x0, y0, x1, y1."""
    inter = ((torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
             * (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


def matched_overlap(found: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """(N,) how well two found boxes per image (N, 2, 4), in no particular order, cover the
    two true ones: the intersection over union averaged over the two symbols, in the better
    of the two orders."""
    found, true = found.float(), true.float()
    same = (_box_iou(found[:, 0], true[:, 0]) + _box_iou(found[:, 1], true[:, 1])) / 2
    swapped = (_box_iou(found[:, 0], true[:, 1]) + _box_iou(found[:, 1], true[:, 0])) / 2
    return torch.maximum(same, swapped)
