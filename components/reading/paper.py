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
4. threshold: Otsu on the pixels above the noise floor (a faint pen whose strokes break into
   specks at that level is taken at half of it);
5. paper structure: the page's rotation (a few degrees) is estimated from the mask's projection
   profiles; rows and columns that ink spans across most of the page (ruled lines, grid lines,
   a margin line) are removed, except where a pen stroke crosses them;
6. the digit: connected components; structure touching the border and hollow frames (a printed
   box) are dropped, and the heaviest central component is kept with its near neighbours;
   lines of type (far finer strokes than the pen's) are neither the digit nor a neighbour.

Steps 5 and 6 live in lines.py and candidates.py, the 3x3 operations they share in masks.py.
Pillow and numpy only; every step is vectorised. Nothing here is tuned to particular colours,
sizes or positions: bounds are fractions of the image or of the ink's own statistics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from components.reading import candidates, lines, masks
from components.reading.grayscale import fitted_array
from components.reading.image_decode import ImageError

WORK_SIDE = 512  # longest side the search works at
LEVEL_SIDE = 160  # longest side the paper level is measured at
MIN_CONTRAST = 32  # ink must differ from the paper by this much (0..255) to count
LINE_PAGE = 128  # smaller images are crops of a digit, not pages: no ruled or grid lines there
WEAK = 0.5  # a stroke's fainter stretches, down to this share of the ink level, stay with it


def find_digit(gray: np.ndarray) -> np.ndarray:
    """The digit's ink in `gray` (2-D uint8), white on black, cropped; ImageError if none."""
    work = bounded(gray)
    ink = _ink(work)
    level, floor = _threshold(ink)
    mask, parts = candidates.remove_frames(ink > level)
    structure = lined = None  # the faint mask where lines were found, the mask they were in
    if min(mask.shape) >= LINE_PAGE:
        faint = ink > floor
        angle = lines.skew(faint)
        if angle:
            ink, mask, faint = (
                lines.rotate(ink, angle),
                lines.rotate(mask.astype(np.float32), angle) > 0.5,
                lines.rotate(faint.astype(np.float32), angle) > 0.5,
            )
        cleaned = lines.remove_segments(lines.remove_lines(mask, faint))
        if angle or not np.array_equal(cleaned, mask):
            lined = mask
            mask, parts, structure = cleaned, None, faint  # label the components again
    weak = ink > max(floor, WEAK * level)
    if structure is not None:  # no faint stretch along a removed line
        weak = lines.remove_segments(weak & ~lines.bands(structure))
    keep = candidates.digit_components(mask, parts)
    if not keep.any():  # a faint pen's stroke broke into specks at the ink level: the weak one
        keep = candidates.digit_components(weak)
    if not keep.any() and lined is not None:  # all the ink went as lines: a lone straight
        keep = candidates.digit_components(lined)  # stroke short of the page's edges is a 1
        if masks.border(keep).any():
            keep[...] = False  # a rule or a margin line reaches the edge
    if not keep.any():
        raise ImageError("no digit found: only lines or specks on the page")
    return crop(ink, keep | candidates.connected(weak, keep))


def bounded(gray: np.ndarray) -> np.ndarray:
    return resized(gray, WORK_SIDE)


def _block_grids(small: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Per block (a 10x10 grid over the image), the given quantiles (0..1) of its pixels.

    Measured on a copy at most LEVEL_SIDE px wide (`small`): the paper level varies slowly,
    and the quantiles of a few hundred pixels a block are as good as those of thousands.
    """
    h, w = small.shape
    block = max(2, max(h, w) // 10)
    rows, cols = -(-h // block), -(-w // block)
    padded = np.pad(small, ((0, rows * block - h), (0, cols * block - w)), mode="edge")
    blocks = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    ranks = [round(q * (blocks.shape[2] - 1)) for q in quantiles]
    ordered = np.partition(blocks, sorted(set(ranks)), axis=2)
    return [ordered[..., rank].astype(np.float32) for rank in ranks]


def _level(grid: np.ndarray, close: int, shape: tuple[int, int], smooth: bool = True) -> np.ndarray:
    """A block grid as a smooth level at `shape`. `close` +1 fills the dips thick strokes leave
    in the grid (a grey closing: the paper is the brighter level), -1 the bumps (an opening).
    `smooth` takes each cell's 3x3 median after that (which also flattens a narrow peak)."""
    if close:
        first, then = (np.maximum, np.minimum) if close > 0 else (np.minimum, np.maximum)
        grid = _grid_filter(_grid_filter(grid, first.reduce), then.reduce)
    if smooth:
        grid = _grid_filter(grid, lambda near: np.median(near, axis=0))
    rows, cols = grid.shape
    level = _bilinear(rows, shape[0]).T @ grid @ _bilinear(cols, shape[1])
    # within the grid's range, as an interpolation is: weights summing to 1 + 1e-7 would put
    # a white page's level above 255, and clean._through_glare would divide by no headroom
    return np.clip(level, grid.min(), grid.max(), out=level)


@lru_cache(maxsize=64)
def _bilinear(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's bilinear resampling of n_in samples to n_out, as an (n_in, n_out) float32
    matrix: each row is a unit vector resized. Pillow resizes one axis, then the other, so a
    grid between two of these is what Image.resize makes of it (to 1e-6), at a quarter of the
    cost of resizing a float image to the full size."""
    eye = Image.fromarray(np.eye(n_in, dtype=np.float32), "F")
    return np.asarray(eye.resize((n_out, n_in), Image.Resampling.BILINEAR))


def light_level(gray: np.ndarray) -> np.ndarray:
    """The paper's brighter level at each pixel of `gray` (float32): each block's 90th
    percentile, closed over strokes, without the median, so the peak of a glare a few blocks
    wide is kept (clean.py measures ink under glare against it)."""
    (light,) = _block_grids(resized(gray, LEVEL_SIDE), (0.9,))
    return _level(light, 1, gray.shape, smooth=False)


def resized(gray: np.ndarray, side: int) -> np.ndarray:
    """`gray` box-averaged to at most `side` px, or itself if it is (grayscale.fitted)."""
    return fitted_array(gray, side)


def _grid_filter(grid: np.ndarray, reduce) -> np.ndarray:
    """`reduce` over each cell's 3x3 neighbourhood (edges repeated)."""
    return np.asarray(reduce(np.stack(masks.neighbours(grid, mode="edge"))), np.float32)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength (float32, 0 = paper) relative to a paper level that follows the light."""
    small = resized(gray, LEVEL_SIDE)
    middle, light, dark = _block_grids(small, (0.5, 0.9, 0.1))
    flat = small.astype(np.float32) - _level(middle, 0, small.shape)
    noise = max(8.0, 4 * 1.4826 * float(np.median(np.abs(flat))))
    # ink is the heavier tail beyond the noise, however few pixels it covers
    dark_ink = float(np.clip(-flat - noise, 0, None).sum()) > float(
        np.clip(flat - noise, 0, None).sum()
    )
    ink = (
        (_level(light, 1, gray.shape) - gray) if dark_ink else (gray - _level(dark, -1, gray.shape))
    )
    return np.clip(ink, 0, None, out=ink)  # float32: the level is, and the pixels are uint8


def _threshold(ink: np.ndarray) -> tuple[float, float]:
    """(the ink level, the noise floor): ink is above the noise floor and Otsu's threshold
    of what is above it; all that is above the floor is faint structure (a light grid)."""
    sample = ink[::2, ::2]  # a quarter of the pixels tell the noise as well as all of them
    # the noise from the lower half: where strokes cover half a tight crop, its median is ink
    lower = sample[sample <= np.median(sample)]
    spread = float(np.median(lower))
    floor = max(MIN_CONTRAST / 2, spread + 4 * 1.4826 * float(np.median(np.abs(lower - spread))))
    strong = ink[ink > floor]
    if strong.size == 0 or float(np.percentile(strong, 99)) < MIN_CONTRAST:
        raise ImageError("blank image: no digit found")
    return max(floor, otsu(strong)), floor


def otsu(values: np.ndarray) -> float:
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


def crop(ink: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The kept ink with its soft edges, cropped to the strokes, strong strokes at 255."""
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    area = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)  # nothing kept beyond
    box = np.where(masks.dilate(keep[area]), ink[area], 0)
    top = float(np.percentile(box[box > 0], 95)) if (box > 0).any() else 0.0
    if top <= 0:
        raise ImageError("blank image: no digit found")
    return np.clip(box * (255.0 / top), 0, 255).astype(np.uint8)
