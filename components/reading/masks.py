"""Small operations on 2-D arrays that the page search (paper.py, lines.py, candidates.py)
shares: the 3x3 neighbourhood every filter reduces over, a dilation, a bounded downscale, the
stroke width of a mask and an array's border."""

from __future__ import annotations

import numpy as np
from PIL import Image


def neighbours(arr: np.ndarray, **pad) -> list[np.ndarray]:
    """The nine views of `arr` shifted by -1..1 in each direction, its border padded by `pad`
    (np.pad's options): what every 3x3 filter here reduces over."""
    h, w = arr.shape
    padded = np.pad(arr, 1, **pad)
    return [padded[i : i + h, j : j + w] for i in range(3) for j in range(3)]


def shrink(mask: np.ndarray, side: int) -> np.ndarray:
    """`mask` with its longer side at most `side`, a pixel set where any source pixel was."""
    factor = -(-max(mask.shape) // side)
    if factor <= 1:
        return mask
    # Pillow's box reduction rounds the size up, as the padding here would: mean > 0 is "any"
    return np.asarray(Image.fromarray(mask.view(np.uint8) * 255).reduce(factor)) > 0


def dilate(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one pixel in every direction: along the columns, then along the rows
    (the 3x3 square is the two at once), by shifted ORs in place, not nine padded copies."""
    tall = mask.copy()
    tall[1:] |= mask[:-1]
    tall[:-1] |= mask[1:]
    out = tall.copy()
    out[:, 1:] |= tall[:, :-1]
    out[:, :-1] |= tall[:, 1:]
    return out


def stroke_width(mask: np.ndarray) -> float:
    """The mean width of the strokes in `mask`: its area over half its perimeter."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = int((mask & ~inner).sum())
    return 2.0 * int(mask.sum()) / max(edge, 1)


def border(arr: np.ndarray) -> np.ndarray:
    """The values along `arr`'s four edges, each pixel once."""
    return np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])
