"""Find one handwritten digit on a photo or scan of paper: the ink, without the paper.

What people upload is a phone photo or a scan: ink on paper that may be ruled, squared or a
printed form, under a shadow, turned a little, compressed hard. `find_digit` returns the digit's
ink alone (white on black, cropped), ready to be scaled into MNIST's 20 px box:

1. bounded work: the longer side is brought to at most WORK_SIDE px, so a 12 MP photo costs
   about what a small one does;
2. illumination: the paper level is estimated per block (a high or low percentile, so strokes
   inside a block do not count), smoothed, and ink is taken relative to it, so shadows,
   gradients and vignetting disappear;
3. polarity: dark ink on light paper or the reverse, decided on that flattened image by which
   side of the paper level the strong tail lies, so a shadow across the border cannot flip it;
4. threshold: Otsu on the pixels above the noise floor;
5. paper structure: the page's rotation (a few degrees) is estimated from the mask's projection
   profiles; rows and columns that ink spans across most of the page (ruled lines, grid lines,
   a margin line) are removed, except where a pen stroke crosses them;
6. the digit: connected components; structure touching the border and hollow frames (a printed
   box) are dropped, and the heaviest central component is kept with its near neighbours.

Pillow and numpy only; every step is vectorised. Nothing here is tuned to particular colours,
sizes or positions: bounds are fractions of the image or of the ink's own statistics.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from components.reading.image_decode import ImageError

WORK_SIDE = 512  # longest side the search works at
LABEL_SIDE = 128  # longest side connected components are labelled at
LEVEL_SIDE = 160  # longest side the paper level is measured at
MIN_CONTRAST = 32  # ink must differ from the paper by this much (0..255) to count
LINE_SHARE = 0.7  # a row or column with ink across this share of the page is paper structure
LINE_PAGE = 64  # smaller images are crops of a digit, not pages: no ruled or grid lines there
MAX_SKEW = 6.0  # degrees of page rotation searched, in both directions
MIN_DIGIT = 0.06  # a digit spans at least this share of the image's shorter side


def find_digit(gray: np.ndarray) -> np.ndarray:
    """The digit's ink in `gray` (2-D uint8), white on black, cropped; ImageError if none."""
    work = _bounded(gray)
    ink = _ink(work)
    mask, parts = _remove_frames(_threshold(ink))
    if min(mask.shape) >= LINE_PAGE:
        angle = _skew(mask)
        if angle:
            ink, mask = _rotate(ink, -angle), _rotate(mask.astype(np.float32), -angle) > 0.5
        cleaned = _remove_lines(mask)
        if angle or not np.array_equal(cleaned, mask):
            mask, parts = cleaned, None  # the components changed: label them again
    keep = _digit_components(mask, parts)
    if not keep.any():
        raise ImageError("no digit found: only lines or specks on the page")
    return _crop(ink, keep)


def _bounded(gray: np.ndarray) -> np.ndarray:
    return _resized(gray, WORK_SIDE)


def _block_grids(gray: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Per block (a 10x10 grid over the image), the given quantiles (0..1) of its pixels.

    Measured on a copy at most LEVEL_SIDE px wide: the paper level varies slowly, and the
    quantiles of a few hundred pixels a block are as good as those of thousands.
    """
    small = _resized(gray, LEVEL_SIDE)
    h, w = small.shape
    block = max(2, max(h, w) // 10)
    rows, cols = -(-h // block), -(-w // block)
    padded = np.pad(small, ((0, rows * block - h), (0, cols * block - w)), mode="edge")
    blocks = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    ranks = [round(q * (blocks.shape[2] - 1)) for q in quantiles]
    ordered = np.partition(blocks, sorted(set(ranks)), axis=2)
    return [ordered[..., rank].astype(np.float32) for rank in ranks]


def _level(grid: np.ndarray, close: int, shape: tuple[int, int]) -> np.ndarray:
    """A block grid as a smooth level at `shape`. `close` +1 fills the dips thick strokes leave
    in the grid (a grey closing: the paper is the brighter level), -1 the bumps (an opening)."""
    if close:
        first, then = (np.maximum, np.minimum) if close > 0 else (np.minimum, np.maximum)
        grid = _grid_filter(_grid_filter(grid, first.reduce), then.reduce)
    grid = _grid_filter(grid, lambda near: np.median(near, axis=0))
    return np.asarray(Image.fromarray(grid, "F").resize(shape[::-1], Image.BILINEAR))


def _resized(gray: np.ndarray, side: int) -> np.ndarray:
    scale = side / max(gray.shape)
    if scale >= 1:
        return gray
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))


def _grid_filter(grid: np.ndarray, reduce) -> np.ndarray:
    """`reduce` over each cell's 3x3 neighbourhood (edges repeated)."""
    return np.asarray(reduce(np.stack(_neighbours(grid, mode="edge"))), np.float32)


def _neighbours(arr: np.ndarray, **pad) -> list[np.ndarray]:
    """The nine views of `arr` shifted by -1..1 in each direction, its border padded by `pad`
    (np.pad's options): what every 3x3 filter here reduces over."""
    h, w = arr.shape
    padded = np.pad(arr, 1, **pad)
    return [padded[i : i + h, j : j + w] for i in range(3) for j in range(3)]


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength (float32, 0 = paper) relative to a paper level that follows the light."""
    middle, light, dark = _block_grids(gray, (0.5, 0.9, 0.1))
    small = _resized(gray, LEVEL_SIDE)
    flat = small.astype(np.float32) - _level(middle, 0, small.shape)
    noise = max(8.0, 4 * 1.4826 * float(np.median(np.abs(flat))))
    # ink is the heavier tail beyond the noise, however few pixels it covers
    dark_ink = float(np.clip(-flat - noise, 0, None).sum()) > float(
        np.clip(flat - noise, 0, None).sum()
    )
    ink = (
        (_level(light, 1, gray.shape) - gray) if dark_ink else (gray - _level(dark, -1, gray.shape))
    )
    return np.clip(ink, 0, None).astype(np.float32)


def _threshold(ink: np.ndarray) -> np.ndarray:
    """Ink pixels: above the noise floor and Otsu's threshold of what is above it."""
    sample = ink[::2, ::2]  # a quarter of the pixels tell the noise as well as all of them
    spread = float(np.median(sample))
    floor = max(MIN_CONTRAST / 2, spread + 4 * 1.4826 * float(np.median(np.abs(sample - spread))))
    strong = ink[ink > floor]
    if strong.size == 0 or float(np.percentile(strong, 99)) < MIN_CONTRAST:
        raise ImageError("blank image: no digit found")
    return ink > max(floor, _otsu(strong))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of `values` (between-class variance, 64 bins)."""
    counts, edges = np.histogram(values, bins=64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        below = mass / weight
        above = (total_mass - mass) / (total - weight)
        between = weight * (total - weight) * (below - above) ** 2
    if not np.isfinite(between[:-1]).any():  # a single level: nothing to split
        return float(values.min()) - 1.0
    return float(centres[int(np.nanargmax(between[:-1]))])


def _skew(mask: np.ndarray) -> float:
    """The page's rotation in degrees, from the sharpest projection profiles; 0 if no lines."""
    small = _shrink(mask, 256).astype(np.float32)
    if not _has_lines(small > 0.5):
        return 0.0
    best, best_score = 0.0, _profile_score(small)
    for angle in np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 0.5):
        if angle:
            score = _profile_score(_rotate(small, float(angle)))
            if score > best_score * 1.02:
                best, best_score = float(angle), score
    return best


def _profile_score(mask: np.ndarray) -> float:
    return float((mask.sum(axis=1) ** 2).sum() + (mask.sum(axis=0) ** 2).sum())


def _has_lines(mask: np.ndarray) -> bool:
    """Whether ink spans most of some row or column band (allowing for a few degrees' tilt)."""
    band = max(1, mask.shape[0] // 16), max(1, mask.shape[1] // 16)
    rows = _band_any(mask, band[0], axis=0).mean(axis=1)
    cols = _band_any(mask, band[1], axis=1).mean(axis=0)
    return bool(rows.max(initial=0) > LINE_SHARE or cols.max(initial=0) > LINE_SHARE)


def _band_any(mask: np.ndarray, width: int, axis: int) -> np.ndarray:
    """OR of `mask` over a sliding band `width` pixels wide along `axis`."""
    out = mask.copy()
    for shift in range(1, width):
        if axis == 0:
            out[:-shift] |= mask[shift:]
        else:
            out[:, :-shift] |= mask[:, shift:]
    return out


def _rotate(arr: np.ndarray, angle: float) -> np.ndarray:
    img = Image.fromarray(arr.astype(np.float32), "F")
    return np.asarray(img.rotate(angle, Image.Resampling.BILINEAR, fillcolor=0.0))


def _remove_lines(mask: np.ndarray) -> np.ndarray:
    """Drop rows and columns of ink across most of the page, keeping strokes that cross them."""
    return _remove_rows(_remove_rows(mask).T).T


def _remove_rows(mask: np.ndarray) -> np.ndarray:
    lines = mask.mean(axis=1) > LINE_SHARE
    if not lines.any():
        return mask
    out = mask.copy()
    h = mask.shape[0]
    thin = max(3, max(mask.shape) // 40)  # a printed or ruled line, not a pen stroke along it
    starts = np.flatnonzero(lines & ~np.r_[False, lines[:-1]])
    ends = np.flatnonzero(lines & ~np.r_[lines[1:], False])
    for top, bottom in zip(starts, ends, strict=True):
        if bottom - top + 1 > thin:
            continue
        reach = bottom - top + 3  # a stroke crossing the line continues beyond it
        above = (
            mask[max(0, top - reach) : top].any(axis=0) if top else np.zeros(mask.shape[1], bool)
        )
        below = mask[bottom + 1 : min(h, bottom + 1 + reach)].any(axis=0)
        out[top : bottom + 1] &= above & below
    return out


def _shrink(mask: np.ndarray, side: int) -> np.ndarray:
    """`mask` with its longer side at most `side`, a pixel set where any source pixel was."""
    factor = -(-max(mask.shape) // side)
    if factor <= 1:
        return mask
    # Pillow's box reduction rounds the size up, as the padding here would: mean > 0 is "any"
    return np.asarray(Image.fromarray(mask.view(np.uint8) * 255).reduce(factor)) > 0


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components (vectorised label propagation with pointer jumping, which
    converges in a few passes); labels 1..n, 0 for background."""
    index = np.arange(mask.size).reshape(mask.shape)
    big = mask.size
    labels = np.where(mask, index, big)
    while True:
        lowest = np.minimum.reduce(_neighbours(labels, constant_values=big))
        lowest = np.where(mask, lowest, big)
        flat = np.append(lowest.ravel(), big)
        while True:  # point each pixel at its label's label until nothing moves
            jumped = flat[flat]
            if np.array_equal(jumped, flat):
                break
            flat = jumped
        lowest = flat[:-1].reshape(mask.shape)
        if np.array_equal(lowest, labels):
            break
        labels = lowest
    values, dense = np.unique(np.where(mask, labels, -1), return_inverse=True)
    dense = dense.reshape(mask.shape) + (values[0] != -1)  # background, if any, is 0
    return dense, int(dense.max())


def _remove_frames(mask: np.ndarray):
    """Drop hollow outlines (a printed box around the digit): components whose pixels nearly
    all lie along the edges of their own bounding box. Returns the mask and its components
    (labels at LABEL_SIDE, frames removed), which the digit's choice reuses."""
    small = _shrink(mask, LABEL_SIDE)
    labels, n = _label(small)
    if n == 0:
        return mask, (labels, n)
    boxes = _boxes(labels, n)
    ys, xs = np.indices(small.shape)
    own = boxes[labels]  # each pixel's component box
    edge_distance = np.minimum.reduce(
        [ys - own[..., 0], own[..., 2] - ys, xs - own[..., 1], own[..., 3] - xs]
    )
    tall, wide = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    band = np.maximum(2, 0.08 * np.minimum(tall, wide))
    on_edge = np.bincount(labels.ravel(), (edge_distance <= band[labels]).ravel(), n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = (tall >= 0.1 * small.shape[0]) & (wide >= 0.1 * small.shape[1])
    hollow = on_edge >= 0.9 * np.maximum(sizes, 1)
    # a rectangle reaches all four corners of its box; a ring (a 0) reaches none
    near_y = np.minimum(ys - own[..., 0], own[..., 2] - ys) <= 1
    near_x = np.minimum(xs - own[..., 1], own[..., 3] - xs) <= 1
    corner = 2 * (ys - own[..., 0] > own[..., 2] - ys) + (xs - own[..., 1] > own[..., 3] - xs)
    at_corner = (near_y & near_x).ravel()
    corners = np.zeros((n + 1, 4), bool)
    corners[labels.ravel()[at_corner], corner.ravel()[at_corner]] = True
    square = corners.all(axis=1)
    frames = [
        k
        for k in np.flatnonzero(big & hollow & square & (tall >= 8) & (wide >= 8))
        if k > 0 and _encloses(boxes[k], boxes)
    ]
    if not frames:
        return mask, (labels, n)
    framed = np.isin(labels, frames)
    return mask & ~_grow(framed, mask.shape), (np.where(framed, 0, labels), n)


def _digit_components(mask: np.ndarray, parts=None) -> np.ndarray:
    """The mask of the digit's components, at `mask`'s resolution (`parts`: the labels of
    `mask` at LABEL_SIDE when already known)."""
    labels, n = parts if parts is not None else _label(_shrink(mask, LABEL_SIDE))
    if n == 0:
        return np.zeros_like(mask)
    boxes = _boxes(labels, n)
    h, w = labels.shape
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    present = [k for k in range(1, n + 1) if sizes[k]]  # frames' labels were emptied
    candidates = [
        k
        for k in present
        if not _touches_border(boxes[k], h, w) and not _is_frame(boxes[k], sizes[k], boxes)
    ]
    if not candidates:  # a digit cropped tightly touches the border: keep what is not a line
        candidates = [k for k in present if not _is_line(boxes[k], h, w)]
    if not candidates:
        return np.zeros_like(mask)
    main = max(candidates, key=lambda k: sizes[k] * _centrality(boxes[k], h, w))
    extent = max(boxes[main][2] - boxes[main][0], boxes[main][3] - boxes[main][1]) + 1
    if extent < MIN_DIGIT * min(h, w):  # what is left is a speck, such as where lines crossed
        return np.zeros_like(mask)
    stroke = _stroke_width(labels == main)
    chosen = [
        k
        for k in candidates
        if k == main
        or (
            _near(boxes[k], boxes[main], sizes[k], sizes[main])
            and not _printed_line(boxes[k], sizes[k], stroke)
        )
    ]
    return _grow(np.isin(labels, chosen), mask.shape) & mask


def _stroke_width(component: np.ndarray) -> float:
    """A component's mean stroke width: its area over half its perimeter."""
    padded = np.pad(component, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = int((component & ~inner).sum())
    return 2.0 * int(component.sum()) / max(edge, 1)


def _printed_line(box, size: int, stroke: float) -> bool:
    """A straight fragment much thinner than the pen's strokes: a piece of a printed line."""
    length = max(box[2] - box[0], box[3] - box[1]) + 1
    thickness = size / length
    return length >= 6 * thickness and thickness <= 0.5 * stroke


def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """[n + 1, 4] of (top, left, bottom, right) per label."""
    ys, xs = np.indices(labels.shape)
    flat = labels.ravel()
    boxes = np.zeros((n + 1, 4), np.int64)
    boxes[:, 0] = boxes[:, 1] = np.iinfo(np.int64).max
    np.minimum.at(boxes[:, 0], flat, ys.ravel())
    np.minimum.at(boxes[:, 1], flat, xs.ravel())
    np.maximum.at(boxes[:, 2], flat, ys.ravel())
    np.maximum.at(boxes[:, 3], flat, xs.ravel())
    return boxes


def _touches_border(box, h: int, w: int) -> bool:
    return box[0] == 0 or box[1] == 0 or box[2] == h - 1 or box[3] == w - 1


def _is_line(box, h: int, w: int) -> bool:
    tall, wide = box[2] - box[0] + 1, box[3] - box[1] + 1
    return (wide > 0.8 * w and tall < 0.1 * h) or (tall > 0.8 * h and wide < 0.1 * w)


def _is_frame(box, size: int, boxes: np.ndarray) -> bool:
    """A sparse outline enclosing another component (what is left of a printed box)."""
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    return size <= 0.2 * area and _encloses(box, boxes)


def _encloses(box, boxes: np.ndarray) -> bool:
    """Whether some component's box lies strictly inside `box`."""
    inner = boxes[1:]
    present = inner[:, 0] <= inner[:, 2]  # a label with no pixels has no box
    inside_rows = (inner[:, 0] > box[0]) & (inner[:, 2] < box[2])
    inside_cols = (inner[:, 1] > box[1]) & (inner[:, 3] < box[3])
    return bool((present & inside_rows & inside_cols).any())


def _centrality(box, h: int, w: int) -> float:
    cy, cx = (box[0] + box[2]) / 2 / h - 0.5, (box[1] + box[3]) / 2 / w - 0.5
    return 1.0 / (1.0 + 4.0 * (cy * cy + cx * cx))


def _near(box, main, size: int, main_size: int) -> bool:
    """Part of the digit (the separate bar of a 5, a broken stroke): it overlaps the main
    component's box grown by half its size, and is not a speck far smaller than it."""
    grow_y, grow_x = (main[2] - main[0] + 1) // 2, (main[3] - main[1] + 1) // 2
    overlaps = (
        box[2] >= main[0] - grow_y
        and box[0] <= main[2] + grow_y
        and box[3] >= main[1] - grow_x
        and box[1] <= main[3] + grow_x
    )
    return overlaps and size >= 0.02 * main_size


def _grow(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A `_shrink`-ed mask back at `shape`, widened by one cell so stroke edges are kept."""
    factor = -(-max(shape) // LABEL_SIDE)
    wide = _dilate(small)
    if factor > 1:
        wide = wide.repeat(factor, axis=0).repeat(factor, axis=1)
    return wide[: shape[0], : shape[1]]


def _dilate(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one pixel in every direction."""
    return np.logical_or.reduce(_neighbours(mask))


def _crop(ink: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The kept ink with its soft edges, cropped to the strokes, strong strokes at 255."""
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    box = np.where(_dilate(keep), ink, 0)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    top = float(np.percentile(box[box > 0], 95)) if (box > 0).any() else 0.0
    if top <= 0:
        raise ImageError("blank image: no digit found")
    return np.clip(box * (255.0 / top), 0, 255).astype(np.uint8)
