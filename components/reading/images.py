"""Turn any user image of one digit into a 28x28 MNIST-style array (white digit on black, centred).

The model was trained on MNIST, whose digits were cropped to their ink, scaled so the longer side
is 20 px, and pasted into a 28x28 field with their centre of mass at the centre. Photos and
scans look nothing like that (dark ink on light paper, any size, thin pen strokes), so every
image goes through the same steps before it reaches the model. `to_mnist` runs in the hot loop
of batch prediction, so a 28x28 image that already looks like MNIST (or its negative) takes a
cheap path. Decoding untrusted bytes lives in image_decode; any failure is an `ImageError`.
`thumbnail` gives the reports a small copy of a picture, decoded as `to_mnist` decodes it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from components.reading import masks
from components.reading.clean import clean_digit
from components.reading.grayscale import median
from components.reading.image_decode import ImageError, decode_gray
from components.reading.paper import WORK_SIDE, bounded, find_digit
from components.reading.sheet import unwarp

SIZE = 28  # MNIST field
BOX = 20  # the digit's longer side inside the field
CENTRE = 14.0  # where MNIST puts the centre of mass (measured on the test set: 13.99, 14.01)
MIN_CONTRAST = 32  # ink must differ from the background by this much (0..255) to count as a digit
INK = 32  # after contrast stretch, pixels above this count as ink for the bounding box
STROKE = 2.6  # MNIST's median stroke width, in pixels of the 20 px box (stroke_width)
STROKE_MIN, STROKE_MAX = 2.0, 4.2  # outside these (MNIST: 10% and 95%), strokes are adjusted
THINNED = 3.6  # a thick stroke is thinned to about this: a thick MNIST stroke, not a median one
WORK = 4 * BOX  # the side strokes are measured and adjusted at
MAX_GREY = (
    0.4  # of a digit's ink, at most this share is mid-grey (64..191): MNIST's 90th percentile
)
CRISPER = ((16, 224), (32, 192), (48, 160))  # grey ranges tried in turn on a blurred digit

_MOMENTS = np.stack(  # [784, 3]: pixel weights for the mass and its row and column moments
    [np.ones(SIZE * SIZE), np.repeat(np.arange(SIZE), SIZE), np.tile(np.arange(SIZE), SIZE)], axis=1
).astype(np.float32)
_RING = np.flatnonzero(np.pad(np.zeros((SIZE - 2, SIZE - 2), bool), 1, constant_values=True))


def to_mnist(data: bytes) -> np.ndarray:
    """Decode image bytes (JPEG, PNG, BMP, GIF) into a 28x28 uint8 array as MNIST draws digits."""
    gray = decode_gray(data, WORK_SIDE)  # what normalise works on, made before it is an array
    if gray.shape == (SIZE, SIZE):
        fast = _mnist_like(gray)
        if fast is not None:
            return fast
    return normalise(gray)


def _border(gray: np.ndarray) -> np.ndarray:
    if gray.shape == (SIZE, SIZE):
        return gray.ravel()[_RING]
    return masks.border(gray)


def _orient(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """White digit on black: invert a light background. Returns (image, background level)."""
    background = median(_border(gray))
    if background > 127:
        return 255 - gray, 255 - background
    return gray, background


def _mnist_like(gray: np.ndarray) -> np.ndarray | None:
    """The cheap path: a 28x28 digit already in a 20 px box and centred (or its negative)."""
    gray, background = _orient(gray)
    if background > INK // 2:
        return None
    mask = gray > INK
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or not BOX - 2 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= BOX:
        return None
    mass, y, x = gray.reshape(-1).astype(np.float32) @ _MOMENTS
    if abs(y / mass - CENTRE) > 1 or abs(x / mass - CENTRE) > 1:
        return None
    return gray


def normalise(gray: np.ndarray) -> np.ndarray:
    """The digit's ink, scaled to 20 px and centred by mass: on the sheet alone when the photo
    shows the table around it (sheet.py), measured against the one background of a clean
    image (clean.py), else found on the paper of a photo (paper.py). All of it works on a
    copy at most paper.WORK_SIDE px long, made once."""
    gray = bounded(gray)
    sheet = unwarp(gray)  # a sheet photographed on a table: the sheet alone, squared up
    if sheet is not None:
        gray = sheet
    crop = clean_digit(gray)
    return _centre(_scale(find_digit(gray) if crop is None else crop))


def _scale(crop: np.ndarray) -> np.ndarray:
    """Scale the longer side to 20 px with MNIST's stroke width, re-stretched: the crop is
    brought to about 4x the box (a large one reduced, a small one enlarged), where its strokes
    are measured and thinned or thickened by whole pixels, then resampled to the box."""
    img = Image.fromarray(crop)
    side = max(crop.shape)
    factor = side // WORK
    if factor >= 2:  # padded to whole blocks: a partial block would average fewer pixels
        pad = ((0, -crop.shape[0] % factor), (0, -crop.shape[1] % factor))
        img = Image.fromarray(
            _stretch(np.asarray(Image.fromarray(np.pad(crop, pad)).reduce(factor)))
        )
    elif side < WORK // 2:
        scale = WORK / side
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC)
    return _crisp(_boxed(_stroke_width(img)))


def _stretch(arr: np.ndarray) -> np.ndarray:
    """Scale so the brightest ink is 255, as in MNIST (box filters dim thin strokes)."""
    peak = int(arr.max())
    if 0 < peak < 255:
        return (arr * (255.0 / peak)).astype(np.uint8)
    return arr


def _stroke_width(img: Image.Image) -> Image.Image:
    """Strokes to MNIST's width (STROKE px of the 20 px box): a fine pen on a large photo
    thickened, a felt-tip or an enlarged small image thinned, by grey dilation or erosion."""
    arr = np.asarray(img) > 127
    if not arr.any() or max(arr.shape) <= BOX:
        return img
    per_px = BOX / max(arr.shape)  # one working pixel in pixels of the box
    stroke = masks.stroke_width(arr) * per_px
    if stroke < 0.75 * STROKE_MIN:
        size = min(7, int((STROKE_MIN - stroke) / per_px) | 1)  # odd kernel, bounded cost
        return img.filter(ImageFilter.MaxFilter(size)) if size >= 3 else img
    if _boxed_stroke(img) <= STROKE_MAX:  # as MNIST's strokes are measured: in the box
        return img
    thinned = img
    for size in range(3, 15, 2):  # the widest erosion that leaves THINNED: into MNIST's range
        trial = img.filter(ImageFilter.MinFilter(size))
        if _boxed_stroke(trial) < THINNED:
            break
        thinned = trial
    return thinned


def _boxed_stroke(img: Image.Image) -> float:
    return masks.stroke_width(_boxed(img) > 127)


def _crisp(box: np.ndarray) -> np.ndarray:
    """A blurred digit (an enlarged small image) given MNIST's crisp edges: when more of its
    ink is mid-grey than in nine of ten MNIST digits, the grey range is narrowed until not."""
    out = box
    for low, high in CRISPER:
        if _grey_share(out) <= MAX_GREY:
            break
        out = np.clip((box.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255)
        out = out.astype(np.uint8)
    return out


def _grey_share(box: np.ndarray) -> float:
    ink = box[box > INK]
    return float(((ink > 64) & (ink < 192)).mean()) if ink.size else 0.0


def _boxed(img: Image.Image) -> np.ndarray:
    """`img` resampled so its longer side is the 20 px box, its brightest ink at 255."""
    scale = BOX / max(img.height, img.width)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return _stretch(np.asarray(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)))


def _centre_of_mass(arr: np.ndarray) -> tuple[float, float]:
    weights = arr.astype(np.float32)
    total = float(weights.sum())
    if total == 0:
        raise ImageError("blank image: no digit found")
    cy = float(weights.sum(axis=1) @ np.arange(arr.shape[0], dtype=np.float32)) / total
    cx = float(weights.sum(axis=0) @ np.arange(arr.shape[1], dtype=np.float32)) / total
    return cy, cx


def _centre(box: np.ndarray) -> np.ndarray:
    """Paste into the 28x28 field so the centre of mass lands on MNIST's centre, within bounds."""
    height, width = box.shape
    cy, cx = _centre_of_mass(box)
    top = min(max(round(CENTRE - cy), 0), SIZE - height)
    left = min(max(round(CENTRE - cx), 0), SIZE - width)
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[top : top + height, left : left + width] = box
    return out


def thumbnail(data: bytes, side: int = 96) -> Image.Image | None:
    """A small grey copy of an image file's bytes (decoded as every reader here decodes
    them), or None when it cannot be read: a picture that cannot be shown is left out."""
    try:
        image = Image.fromarray(decode_gray(data))
    except ImageError:
        return None
    image.thumbnail((side, side))
    return image
