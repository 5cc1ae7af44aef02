"""Paper in a scene: a sheet photographed on a table, cropped out and squared up.

A phone photo of a note often shows the table around it. The sheet is then the brightest
large region, and everything after (clean.py, paper.py) would take the sheet itself for the
ink: the digit becomes a hole in a white quadrilateral. `unwarp` finds the sheet and returns
it alone, its perspective undone from its four corners, or None when the image is not a sheet
on a darker surround (a scan, a crop, a page under a shadow): then nothing changes.

The sheet is told from a shadow by its edge: paper meets table in a step, a shadow fades.
Pure numpy and Pillow, at a few hundred pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from components.reading import candidates, masks, paper

SIDE = 96  # the longest side the sheet is looked for at
MIN_AREA, MAX_AREA = 0.15, 0.92  # the sheet's share of the image
TABLE_SIDE = 0.6  # an image side where the table shows is at least this share table
STEP = 30  # how much brighter the sheet is than the table, at its edge and a few px beyond
SHARP = 0.4  # ... and that step is this share of the difference a few pixels further in
MIN_SIDE = 64  # smaller images are crops, not scenes
QUADRILATERAL = 0.96  # the sheet and the quadrilateral of its corners: intersection over union
MARGIN = 0.03  # the share cut from each side of the squared-up sheet (its blurred edge)


def unwarp(gray: np.ndarray) -> np.ndarray | None:
    """The sheet of paper in `gray` squared up, or None if there is no sheet on a table."""
    if min(gray.shape) < MIN_SIDE:
        return None
    small = paper.resized(gray, SIDE)
    sheet = _sheet(small)
    if sheet is None:
        return None
    corners = _corners(sheet)
    quad = _quad_mask(corners, sheet.shape)
    if (quad & sheet).sum() < QUADRILATERAL * (quad | sheet).sum():
        return None  # not four straight edges: a tight crop's background between strokes
    scale = max(gray.shape) / max(small.shape)
    corners = corners * scale
    top, bottom = np.hypot(*(corners[3] - corners[0])), np.hypot(*(corners[2] - corners[1]))
    left, right = np.hypot(*(corners[1] - corners[0])), np.hypot(*(corners[2] - corners[3]))
    width, height = max(8, round((top + bottom) / 2)), max(8, round((left + right) / 2))
    # Pillow's QUAD: the source's upper-left, lower-left, lower-right, upper-right as (x, y)
    quad = tuple(float(v) for corner in corners for v in corner[::-1])
    square = Image.fromarray(gray).transform(
        (width, height), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR
    )
    cut_y, cut_x = round(MARGIN * height), round(MARGIN * width)
    return np.asarray(square)[cut_y : height - cut_y, cut_x : width - cut_x]


def _sheet(small: np.ndarray) -> np.ndarray | None:
    """The mask of the sheet (holes filled: the writing on it) at `small`'s size, or None."""
    bright = small > paper.otsu(small.ravel().astype(np.float32))
    if _table_sides(bright) < 2 or bright.mean() < MIN_AREA:
        return None  # checked first on the bright pixels: most images stop here, cheaply
    labels, n = candidates.label(bright)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    sheet = _filled(labels == int(np.argmax(sizes)))
    if not MIN_AREA <= sheet.mean() <= MAX_AREA:
        return None
    if _table_sides(sheet) < 2:
        return None  # a sheet on a table shows the table on two sides at least
    near_in, far_in = _rings(sheet)
    near_out, far_out = _rings(~sheet)
    if not (near_in.any() and far_in.any() and near_out.any() and far_out.any()):
        return None
    near = float(small[near_in].mean()) - float(small[near_out].mean())
    far = float(small[far_in].mean()) - float(small[far_out].mean())
    if min(near, far) < STEP or near < SHARP * far:
        return None  # a shadow (the dark fades in) or a thin printed line (no table beyond it)
    return sheet


def _table_sides(sheet: np.ndarray) -> int:
    """How many of the image's four sides are mostly not the sheet."""
    sides = (sheet[0], sheet[-1], sheet[:, 0], sheet[:, -1])
    return sum(float(side.mean()) <= 1 - TABLE_SIDE for side in sides)


def _rings(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of `region` 1-2 px from its edge, and those 5-6 px from it."""
    grown, rings = ~region, []
    for _ in range(6):
        wider = masks.dilate(grown)
        rings.append(wider & ~grown & region)
        grown = wider
    return rings[0] | rings[1], rings[4] | rings[5]


def _filled(mask: np.ndarray) -> np.ndarray:
    """`mask` with its holes filled: what the outside cannot reach."""
    labels, n = candidates.label(~mask)
    outer = np.unique(masks.border(labels))
    return ~np.isin(labels, outer[outer > 0]) | mask


def _corners(sheet: np.ndarray) -> np.ndarray:
    """The sheet's upper-left, lower-left, lower-right and upper-right corners as (y, x): the
    extremes of y + x and y - x."""
    ys, xs = np.nonzero(sheet)
    total, diff = ys + xs, ys - xs
    picks = [np.argmin(total), np.argmax(diff), np.argmax(total), np.argmin(diff)]
    return np.array([[ys[i], xs[i]] for i in picks], dtype=np.float64)


def _quad_mask(corners: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The quadrilateral through `corners` (y, x) filled, as a mask of `shape`."""
    image = Image.new("1", shape[::-1], 0)
    ImageDraw.Draw(image).polygon([(float(x), float(y)) for y, x in corners], fill=1)
    return np.asarray(image)
