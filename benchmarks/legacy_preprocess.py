"""The preprocessing of the previous stage (before paper.py), kept as the benchmarks' reference.

Its crop counts anything above a low share of the peak as ink, and decides polarity from the
border's median: the behaviour issue 9 measured on photos of digits on paper. bench_photos.py
and bench_reading.py use it, to print today's figures next to it in the same run. Its scaling
(and the thickening of thin pen strokes) is copied here as it was, so that the reference stays
put while the product's scaling changes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from components.reading.image_decode import ImageError, decode_gray
from components.reading.images import BOX, SIZE, _centre, _mnist_like, _orient, _stretch

MIN_CONTRAST, INK = 32, 32
STROKE = 2.0


def _scale(crop: np.ndarray) -> np.ndarray:
    img = Image.fromarray(crop)
    factor = max(crop.shape) // (4 * BOX)
    if factor >= 2:
        img = Image.fromarray(_stretch(np.asarray(img.reduce(factor))))
    img = _thicken(img)
    scale = BOX / max(img.height, img.width)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return _stretch(np.asarray(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)))


def _thicken(img: Image.Image) -> Image.Image:
    arr = np.asarray(img) > 127
    area = int(arr.sum())
    if area == 0 or max(arr.shape) <= BOX:
        return img
    inner = arr.copy()
    inner[1:-1, 1:-1] &= arr[:-2, 1:-1] & arr[2:, 1:-1] & arr[1:-1, :-2] & arr[1:-1, 2:]
    edge = max(1, area - int(inner[1:-1, 1:-1].sum()))
    stroke = 2.0 * area / edge
    needed = STROKE * max(arr.shape) / BOX
    if stroke >= 0.75 * needed:
        return img
    size = min(7, int(needed - stroke) | 1)
    return img.filter(ImageFilter.MaxFilter(size)) if size >= 3 else img


def legacy_normalise(gray: np.ndarray) -> np.ndarray:
    gray, background = _orient(gray)
    ink = gray.astype(np.int16) - background
    peak = int(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("blank image: no digit found")
    stretched = np.clip(ink * (255.0 / peak), 0, 255).astype(np.uint8)
    mask = stretched > INK
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = stretched[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _centre(_scale(crop))


def legacy_to_mnist(data: bytes) -> np.ndarray:
    gray = decode_gray(data)
    if gray.shape == (SIZE, SIZE):
        fast = _mnist_like(gray)
        if fast is not None:
            return fast
    return legacy_normalise(gray)
