"""Paper structure in a page's ink mask: the page's small rotation, and the ruled lines, grid
lines and margin lines that ink spans across most of the page, removed except where a pen stroke
crosses them (paper.py, step 5)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from components.reading import masks

LINE_SHARE = 0.7  # a row or column with ink across this share of the page is paper structure
SEGMENT = 0.2  # a straight thin run this share of the page's longer side long is a rule
MAX_SKEW = 6.0  # degrees of page rotation searched, in both directions


def skew(mask: np.ndarray) -> float:
    """The rotation in degrees that levels the page's lines (`rotate(mask, skew(mask))`),
    from the sharpest projection profiles; 0 if there are no lines."""
    small = masks.shrink(mask, 256).astype(np.float32)
    if not _has_lines(small > 0.5):
        return 0.0
    best, best_score = 0.0, _profile_score(small)
    for angle in np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 2.0):  # coarse: every 2 degrees
        best, best_score = _better(small, float(angle), best, best_score)
    centre = best
    for step in (-1.5, -1.0, -0.5, 0.5, 1.0, 1.5):  # then the half degrees around the best
        best, best_score = _better(small, centre + step, best, best_score)
    return best


def _better(small: np.ndarray, angle: float, best: float, best_score: float):
    """(angle, its score) if turning by `angle` sharpens the profiles by 2% over the best so
    far, else the best so far."""
    if not angle or abs(angle) > MAX_SKEW:
        return best, best_score
    score = _profile_score(rotate(small, angle))
    return (angle, score) if score > best_score * 1.02 else (best, best_score)


def _profile_score(mask: np.ndarray) -> float:
    """How sharp the row and column profiles are: the squared steps between neighbouring
    sums (Postl's measure), which a level line makes large, and a broad shadow band barely
    touches wherever the lines turn."""
    rows, cols = mask.sum(axis=1), mask.sum(axis=0)
    return float((np.diff(rows) ** 2).sum() + (np.diff(cols) ** 2).sum())


def _has_lines(mask: np.ndarray) -> bool:
    """Whether ink spans most of some row or column band (allowing for a few degrees' tilt)
    that is a line or a grid: thin with paper on both sides, or (a grid's lines merged by the
    band) over half the page. Not the dark band a shadow or vignette leaves along an edge."""
    thin = line_thickness(mask.shape)
    for spans, band in ((mask, mask.shape[0] // 16), (mask.T, mask.shape[1] // 16)):
        band, n = max(1, band), spans.shape[0]
        rows = _band_any(spans, band, axis=0).mean(axis=1) > LINE_SHARE
        for first, last in _runs_of(rows):
            line = first > 0 and last < n - 1 and last - first < band + thin
            if line or last - first >= n // 2:
                return True
    return False


def _band_any(mask: np.ndarray, width: int, axis: int) -> np.ndarray:
    """OR of `mask` over a sliding band `width` pixels wide along `axis`. The copy keeps the
    memory order of `mask`, often a transposed view: copying that row by row costs more than
    the ORs."""
    out = mask.copy(order="K")
    for shift in range(1, width):
        if axis == 0:
            out[:-shift] |= mask[shift:]
        else:
            out[:, :-shift] |= mask[:, shift:]
    return out


def rotate(arr: np.ndarray, angle: float) -> np.ndarray:
    img = Image.fromarray(np.asarray(arr, np.float32), "F")  # no copy of a float32 array
    return np.asarray(img.rotate(angle, Image.Resampling.BILINEAR, fillcolor=0.0))


def remove_lines(mask: np.ndarray, faint: np.ndarray | None = None) -> np.ndarray:
    """Drop rows and columns of ink across most of the page, keeping strokes that cross them.
    `faint`: the mask of all ink down to the noise, where a light printed grid is whole (in
    `mask` it may be only the pieces that passed the threshold); lines are found in it."""
    faint = mask if faint is None else faint
    rows = _remove_rows(mask, faint)
    return _remove_rows(rows.T, faint.T).T


def bands(faint: np.ndarray) -> np.ndarray:
    """The pixels on or beside (2 px) a row or column line of `faint`, as remove_lines finds
    them: where faint ink must not join strokes, since there it may be the line's own."""
    rows, cols = _line_rows(faint), _line_rows(faint.T)
    near_rows = _band_any(_band_any(rows[:, None], 3, axis=0)[::-1], 5, axis=0)[::-1]
    near_cols = _band_any(_band_any(cols[:, None], 3, axis=0)[::-1], 5, axis=0)[::-1]
    return near_rows | near_cols.T


def _line_rows(faint: np.ndarray) -> np.ndarray:
    # over three rows: a line the rotation left a fraction of a degree off spans two or three
    return _band_any(faint, 3, axis=0).mean(axis=1) > LINE_SHARE


def line_thickness(shape: tuple[int, int]) -> int:
    """The thickest a printed or ruled line is on a page of `shape` (px): a band of ink along
    a row any thicker is a pen stroke."""
    return max(3, max(shape) // 40)


def thin_bands(rows: np.ndarray, shape: tuple[int, int]) -> list[tuple[int, int]]:
    """(first, last) of each run of set `rows` no thicker than a printed or ruled line of a
    page of `shape` (line_thickness)."""
    thin = line_thickness(shape)
    return [(first, last) for first, last in _runs_of(rows) if last - first + 1 <= thin]


def _runs_of(rows: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of set values in the 1-D bool array `rows`."""
    starts = np.flatnonzero(rows & ~np.r_[False, rows[:-1]])
    ends = np.flatnonzero(rows & ~np.r_[rows[1:], False])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _remove_rows(mask: np.ndarray, faint: np.ndarray) -> np.ndarray:
    lines = _line_rows(faint)
    if not lines.any():
        return mask
    out = mask.copy(order="K")  # a transposed view stays one (see _band_any)
    h = mask.shape[0]
    for top, bottom in thin_bands(lines, mask.shape):
        reach = bottom - top + 3  # a stroke crossing the line continues beyond it
        above = (
            mask[max(0, top - reach) : top].any(axis=0) if top else np.zeros(mask.shape[1], bool)
        )
        below = mask[bottom + 1 : min(h, bottom + 1 + reach)].any(axis=0)
        out[top : bottom + 1] &= above & below
    return out


def remove_segments(mask: np.ndarray) -> np.ndarray:
    """Drop straight thin segments of ink however short of the page they stop (an underline,
    the borders of a table cell, a form's rules), keeping strokes that cross or rest on them:
    a pixel in a row run of at least SEGMENT of the page's longer side whose column run is
    thin goes, and the same with rows and columns swapped."""
    long = max(8, round(SEGMENT * max(mask.shape)))
    thin = max(3, max(mask.shape) // 100)
    rows, cols = mask.sum(axis=1) >= long, mask.sum(axis=0) >= long
    if not rows.any() and not cols.any():
        return mask  # no row or column holds that much ink: no segment (most photos)
    across, down = _runs(mask), _runs(mask.T).T
    lines = (across >= long) & (down <= thin) | (down >= long) & (across <= thin)
    return mask & ~lines


def _runs(mask: np.ndarray) -> np.ndarray:
    """For each pixel of `mask`, the length of the run of ink along its row (0 off the ink):
    the rows laid end to end with a gap after each, every run's length repeated over it."""
    h, w = mask.shape
    gapped = np.zeros((h, w + 1), bool)
    gapped[:, :w] = mask
    steps = np.flatnonzero(np.diff(gapped.ravel(), prepend=False))  # each run's start and end
    lengths = steps[1::2] - steps[::2]
    out = np.zeros((h, w), np.int64)
    out[mask] = np.repeat(lengths, lengths)
    return out
