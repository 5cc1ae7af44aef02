"""Clean first: an image that already looks like MNIST skips the search for paper.

Most images people classify are not photos: a digit drawn in an app, exported from a data set,
cropped tight from a scan. One level of background (in either polarity), ink on one side of
it, one digit's worth of components and nothing like a ruled line or a printed box. For those,
paper.py's per-block paper level is worse than none: on a small image a block is narrower than
a stroke, so the strokes are taken for paper and a tight crop turns into a filled rectangle.

`clean_digit` decides whether an image is clean and, if it is, returns the digit's ink cropped
as paper.find_digit returns it (white on black, strong strokes at 255), measured against the
one background level instead of a local one. Whatever it is unsure of, it leaves to paper.py
(None). Numpy, and Pillow for a histogram, on the array it is given.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from components.reading import candidates, lines, masks, paper
from components.reading.grayscale import median

BAND = 24  # a pixel within this of the background level is background (0..255)
BACKGROUND_SHARE = 0.3  # at least this share of the pixels is background ...
BORDER_BACKGROUND_SHARE = 0.2  # ... or this, when most of the border is and ink crosses it
CUT_INK = 0.05  # (at least this share of the border): a thick 8 cut tight to its ink
OTHER_SIDE = 0.03  # ink on the wrong side of the background: at most this share of the ink
MAX_PARTS = 5  # a digit is one stroke, or a few (a 5's bar, a broken 4, a 9 in pieces)
PART_SHARE = 0.08  # a part weighs at least this share of the heaviest one; less is a speck
SPECKS = 0.1  # specks together weigh at most this share of the ink
THIN = 10  # a part this many times longer than wide is a rule, not a stroke
SOLID = 0.8  # a part filling this share of its box, half the image each way, is a surface
EDGE = 0.08  # the share of the rows at either edge where a band of ink is the digit's own
GLARE_GAIN = 2.0  # ink under glare is restored by at most this factor: beyond, the error of
# the local level (a block's percentile, interpolated) is amplified into ink along bright edges
GLARE_SIDE = paper.LINE_PAGE  # smaller images are crops: their blocks are narrower than strokes


def clean_digit(gray: np.ndarray) -> np.ndarray | None:
    """The digit's ink (uint8, white on black, cropped) if `gray` is clean, else None."""
    work = paper.bounded(gray)
    level = background(work)
    if level is None:
        return None
    signed = work.astype(np.float32) - level
    far = np.abs(signed) > 2 * BAND
    if not far.any():
        return None  # no ink at all: paper.py says so in its words
    lighter = int((far & (signed > 0)).sum())
    darker = int(far.sum()) - lighter
    light_ink = lighter > darker
    ink = np.clip(signed if light_ink else -signed, 0, None)
    if not light_ink and min(work.shape) >= GLARE_SIDE:
        ink = _through_glare(work, level, ink)
    if min(lighter, darker) > OTHER_SIDE * (lighter + darker):
        return None  # glare beside dark ink, a shadow beside light: a photo
    if not _flat(ink):
        return None
    level = max(paper.MIN_CONTRAST, paper.otsu(ink[ink > BAND]))
    mask = ink > level
    weak = ink > max(paper.MIN_CONTRAST, paper.WEAK * level)  # a stroke's fainter stretches
    if min(mask.shape) >= paper.LINE_PAGE and (_ruled(weak) or _ruled(weak.T) or _ruler(mask)):
        return None  # ruled or printed lines across the page, however light, or an underline
    keep = _digit(mask)
    if keep is None:
        return None
    return paper.crop(ink, keep | candidates.connected(weak, keep))


def background(gray: np.ndarray) -> float | None:
    """The one background level, or None if there is not one: the border's median when most
    of the border is background, else the densest level (a tight crop's border is mostly ink);
    either way it must cover BACKGROUND_SHARE of the pixels, or BORDER_BACKGROUND_SHARE when
    the border is mostly that level and strokes cut by the edge cross it (a tight crop of a
    thick digit: more ink than paper). Counted in the image's histogram (Pillow's, a pass in
    C), not in copies of it."""
    border = masks.border(gray)
    level = median(border)
    counts = np.array(Image.fromarray(gray).histogram())  # pixels of each level 0..255
    share = BACKGROUND_SHARE
    off = np.abs(border.astype(np.int16) - level)
    if np.mean(off <= BAND) >= 0.5:
        if np.mean(off > 2 * BAND) >= CUT_INK:  # strokes cut by the edge: a tight crop, whose
            share = BORDER_BACKGROUND_SHARE  # thick digit may outweigh the paper
    else:
        densest = int(np.argmax(counts.reshape(32, 8).sum(axis=1)))  # of 32 bands of 8 levels
        low = 8 * densest
        below = np.cumsum(counts[low : low + 8])  # the band's median, as median() takes it
        level = low + int(np.searchsorted(below, below[-1] // 2, side="right"))
    near = int(counts[max(0, level - BAND) : level + BAND + 1].sum())
    return float(level) if near / gray.size >= share else None


def _through_glare(work: np.ndarray, level: float, ink: np.ndarray) -> np.ndarray:
    """Dark ink where glare brightens the background, about as strong as it is without glare.

    Glare blends each pixel toward white, p + g * (255 - p): a stroke's contrast against the
    background shrinks to (1 - g) of itself, and so does the background's headroom to white.
    Measured against the paper's local level where that is brighter than `level`, scaled by
    the headroom lost, (local - p) * (255 - level) / (255 - local), the ink is what it was
    without glare: a stroke under glare stays above the weak threshold, joined to the digit,
    and is not dimmed in the crop (a 6's loop under glare read as a 5's, a 7's bar lost).
    The gain is at most GLARE_GAIN, and the ink is lifted at most to that of the strokes
    outside glare (the 95th percentile of the ink beyond 2 * BAND), never lowered: a sheet
    lit more on one side is not glare, its strokes are darker there, not fainter, and lifted
    further they would raise the threshold above the strokes on the dim side.
    """
    local = np.maximum(paper.light_level(work), level)
    if not (local > level).any():
        return ink
    headroom = 255 - level
    gain = headroom / np.maximum(255 - local, headroom / GLARE_GAIN)
    restored = np.clip((local - work) * gain, 0, None)
    strong = ink[ink > 2 * BAND]
    ceiling = float(np.percentile(strong, 95)) if strong.size else 0.0
    return np.maximum(ink, np.minimum(restored, ceiling)).astype(np.float32)


def _flat(ink: np.ndarray) -> bool:
    """Whether the background is one level everywhere: no block of a 4x4 grid without strokes
    sits between background and ink (the half-light of a shadow, a gradient, a table)."""
    h, w = ink.shape
    for i in range(4):
        for j in range(4):
            block = ink[h * i // 4 : h * (i + 1) // 4, w * j // 4 : w * (j + 1) // 4]
            if block.size == 0:
                continue
            low, high = np.percentile(block, (50, 90))
            if low > BAND and high <= 3 * BAND:
                return False
    return True


def _ruled(mask: np.ndarray) -> bool:
    """Whether a thin band of rows has ink across most of the image and the rows beside it
    do not (a ruled or printed line; the bottom of a thick 0 fades out over many rows). The
    outer rows do not count: there a tight crop's digit meets the edge."""
    h = mask.shape[0]
    share = mask.mean(axis=1)
    across = share > lines.LINE_SHARE
    edge = max(1, round(EDGE * h))
    across[:edge] = across[h - edge :] = False
    thin = lines.line_thickness(mask.shape)  # the rows beside a line: as far off as it is thick
    for top, bottom in lines.thin_bands(across, mask.shape):
        beside = np.r_[share[max(0, top - 2 * thin) : max(0, top - thin)],
                       share[bottom + 1 + thin : bottom + 1 + 2 * thin]]  # fmt: skip
        if beside.max(initial=0) < lines.LINE_SHARE / 2:
            return True
    return False


def _ruler(mask: np.ndarray) -> bool:
    """Whether a straight thin segment short of the page (lines.remove_segments) is a rule
    the digit stands on or crosses, an underline or a cell's border, not a stroke of its own.

    Counted away from the edges (a stroke of a tight crop that the edge cut is thin and long)
    and at least half of lines.SEGMENT long in one row or column. A digit's own bar (a 7's, a
    5's, a 2's base) ends where its other strokes are; a rule reaches past the strokes it
    touches (the rest of its component) on both sides, by a quarter of their extent. Ink it
    does not touch (a printed label beside the line) does not count."""
    segments = mask & ~lines.remove_segments(mask)
    long = lines.SEGMENT * max(mask.shape) / 2
    labels, _ = candidates.label(mask)
    for seg, parts in ((segments, labels), (segments.T, labels.T)):
        rows = seg.sum(axis=1) >= long
        edge = max(1, round(EDGE * len(rows)))
        rows[:edge] = rows[len(rows) - edge :] = False
        for first, last in lines._runs_of(rows):  # each line, a few rows thick
            rule = np.zeros_like(seg)
            rule[first : last + 1] = seg[first : last + 1]
            touching = np.isin(parts, np.unique(parts[rule])) & ~rule & (parts > 0)
            if not touching.any():
                continue  # a line on its own: _digit tells a rule (THIN) from a stroke
            cols, near = np.flatnonzero(rule.any(axis=0)), np.flatnonzero(touching.any(axis=0))
            reach = (near[-1] - near[0] + 1) / 4
            if cols[0] < near[0] - reach and cols[-1] > near[-1] + reach:
                return True
    return False


def _digit(mask: np.ndarray) -> np.ndarray | None:
    """The mask of the digit's parts when the ink is one digit's worth and nothing else."""
    small = masks.shrink(mask, candidates.LABEL_SIDE)
    labels, n = candidates.label(small)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    parts = np.flatnonzero(sizes >= PART_SHARE * sizes.max()) + 1
    if len(parts) > MAX_PARTS or sizes.sum() - sizes[parts - 1].sum() > SPECKS * sizes.sum():
        return None
    boxes = candidates.bounding_boxes(labels, n)
    h, w = small.shape
    for k in parts:
        tall, wide = boxes[k, 2] - boxes[k, 0] + 1, boxes[k, 3] - boxes[k, 1] + 1
        if max(tall, wide) > THIN * min(tall, wide) or candidates.encloses(boxes[k], boxes):
            return None  # a rule or a printed box: paper.py takes those apart
        if tall >= h / 2 and wide >= w / 2 and sizes[k - 1] > SOLID * tall * wide:
            return None  # a solid region half the image wide and tall: a surface, not strokes
    if len(parts) > 1:
        main = parts[np.argmax(sizes[parts - 1])]
        pen = masks.stroke_width(candidates.grow(labels == main, mask.shape) & mask)
        for k in parts:
            if k != main and candidates.printed(mask, labels == k, boxes[main], pen):
                return None  # a line of type beside the digit: paper.py leaves it out
    return candidates.grow(np.isin(labels, parts), mask.shape) & mask
