"""The preprocessing of the previous stage (before paper.py), kept as the benchmarks' reference.

Its crop counts anything above a low share of the peak as ink, and decides polarity from the
border's median: the behaviour issue 9 measured on photos of digits on paper. Only
bench_photos.py uses it, to print today's figures next to it in the same run.
"""

from __future__ import annotations

import numpy as np

from components.reading.image_decode import ImageError, decode_gray
from components.reading.images import SIZE, _centre, _mnist_like, _orient, _scale

MIN_CONTRAST, INK = 32, 32


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
