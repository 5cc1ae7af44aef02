"""Turn any user image of one digit into a 28x28 MNIST-style array (white digit on black, centred).

The model was trained on MNIST, whose digits were cropped to their ink, scaled so the longer side
is 20 px, and pasted into a 28x28 field with their centre of mass at the centre. Photos and
scans look nothing like that (dark ink on light paper, any size, colour, alpha, 16-bit), so every
image goes through the same steps before it reaches the model. `to_mnist` runs in the hot loop of
batch prediction: images that already look like MNIST take a cheap path, large JPEGs are decoded
at reduced scale, and only the formats we accept are ever parsed (no Ghostscript, no exotic
plugins). Any failure on untrusted bytes becomes an `ImageError` with a short reason.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

SIZE = 28  # MNIST field
BOX = 20  # the digit's longer side inside the field
CENTRE = 14.0  # where MNIST puts the centre of mass (measured on the test set: 13.99, 14.01)
MAX_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (decompression bombs)
WORK_SIDE = 1024  # larger images are reduced (JPEG: decoded at 1/2..1/8 scale) to about this
FORMATS = ("JPEG", "PNG", "BMP", "GIF")
MIN_CONTRAST = 32  # ink must differ from the background by this much (0..255) to count as a digit
INK = 32  # after contrast stretch, pixels above this count as ink for the bounding box
STROKE = 2.0  # minimal stroke width, in pixels of the 20 px box (MNIST strokes are 2-3 px)

# Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error it can raise, as
# Pillow's documentation suggests. Our own, lower limit (MAX_PIXELS) normally fires first.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image cannot be turned into a digit; the message is a short reason for a CSV row."""


def to_mnist(data: bytes) -> np.ndarray:
    """Decode image bytes (JPEG, PNG, BMP, GIF) into a 28x28 uint8 array as MNIST draws digits."""
    gray = decode_gray(data)
    if gray.shape == (SIZE, SIZE):
        fast = _mnist_like(gray)
        if fast is not None:
            return fast
    return normalise(gray)


def decode_gray(data: bytes) -> np.ndarray:
    """Decode into a 2-D uint8 grayscale array, reduced to about WORK_SIDE px when larger."""
    if not data:
        raise ImageError("empty file")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        _check_size(img.size)
        _draft(img)
        img.load()  # GIF: the first frame
        return _reduce(_to_gray(img))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large: more than {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ImageError("not a JPEG, PNG, BMP or GIF image") from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad image
        raise ImageError(f"corrupt or truncated image: {_short(e)}") from None


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"invalid image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError(f"image too large: {width}x{height} pixels (limit {MAX_PIXELS:,})")


def _draft(img: Image.Image) -> None:
    """Let the JPEG decoder produce grayscale directly, at 1/2..1/8 scale for large photos."""
    if img.format != "JPEG":
        return
    width, height = img.size
    shrink = max(1.0, max(width, height) / WORK_SIDE)
    img.draft("L", (int(width / shrink), int(height / shrink)))


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any mode to 8-bit grayscale: 16/32-bit scaled (not clipped), alpha composited."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img)
    if mode.startswith("I") or mode == "F":
        return _scale_deep(np.asarray(img))
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        mode == "P" and "transparency" in img.info
    ):
        return _composite(np.asarray(img.convert("RGBA").convert("LA")))
    if mode == "RGB":
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB").convert("L"))  # 1, P, CMYK, YCbCr, LAB, HSV


def _scale_deep(arr: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels to 0..255 by their nominal range."""
    arr = arr.astype(np.float32)
    top = float(arr.max()) if arr.size else 0.0
    full = 1.0 if top <= 1.0 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.clip(arr * (255.0 / full), 0, 255).astype(np.uint8)


def _composite(la: np.ndarray) -> np.ndarray:
    """Flatten luminance+alpha over the image's own background.

    When the opaque pixels hold both paper and ink (a scan with transparent corners), the
    background is the paper: their median. When they are all one colour, the digit's shape lives
    in the alpha channel, so the background is the opposite of that colour.
    """
    lum = la[..., 0].astype(np.float32)
    alpha = la[..., 1].astype(np.float32) / 255.0
    if alpha.min() >= 0.98:
        return la[..., 0]
    opaque = lum[alpha > 0.5]
    if opaque.size == 0:
        return np.zeros(lum.shape, np.uint8)  # fully transparent: blank
    lo, mid, hi = np.percentile(opaque, (10, 50, 90))
    background = mid if hi - lo >= 64 else (255.0 if mid < 128 else 0.0)
    return (lum * alpha + background * (1.0 - alpha) + 0.5).astype(np.uint8)


def _reduce(gray: np.ndarray) -> np.ndarray:
    factor = max(gray.shape) // WORK_SIDE
    if factor < 2:
        return gray
    return np.asarray(Image.fromarray(gray).reduce(factor))


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]


def _border(gray: np.ndarray, width: int = 1) -> np.ndarray:
    return np.concatenate(
        [
            gray[:width].ravel(),
            gray[-width:].ravel(),
            gray[width:-width, :width].ravel(),
            gray[width:-width, -width:].ravel(),
        ]
    )


def _orient(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """White digit on black: invert a light background. Returns (image, background level)."""
    background = int(np.median(_border(gray)))
    if background > 127:
        return 255 - gray, 255 - background
    return gray, background


def _mnist_like(gray: np.ndarray) -> np.ndarray | None:
    """The cheap path: a 28x28 digit already cropped, 20 px tall or wide and centred."""
    gray, background = _orient(gray)
    if background > INK // 2 or int(gray.max()) < 128:
        return None
    ink = gray > INK
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0 or not BOX - 2 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= BOX:
        return None
    cy, cx = _centre_of_mass(gray)
    if abs(cy - CENTRE) > 1.0 or abs(cx - CENTRE) > 1.0:
        return None
    return np.ascontiguousarray(gray, dtype=np.uint8)


def normalise(gray: np.ndarray) -> np.ndarray:
    """Orient, stretch contrast, crop to the ink, scale to 20 px and centre by mass in 28x28."""
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


def _scale(crop: np.ndarray) -> np.ndarray:
    """Scale the longer side to 20 px, thickening pen strokes that would vanish, re-stretched."""
    img = Image.fromarray(crop)
    factor = max(crop.shape) // (4 * BOX)
    if factor >= 2:  # work at about 4x the target size: fast, and fine enough for thickening
        img = Image.fromarray(_stretch(np.asarray(img.reduce(factor))))
    img = _thicken(img)
    height, width = img.height, img.width
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _stretch(np.asarray(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)))


def _stretch(arr: np.ndarray) -> np.ndarray:
    """Scale so the brightest ink is 255, as in MNIST (box filters dim thin strokes)."""
    peak = int(arr.max())
    if 0 < peak < 255:
        return (arr * (255.0 / peak)).astype(np.uint8)
    return arr


def _thicken(img: Image.Image) -> Image.Image:
    """Dilate strokes thinner than STROKE px of the final box (a fine pen on a large photo)."""
    arr = np.asarray(img) > 127
    area = int(arr.sum())
    if area == 0 or max(arr.shape) <= BOX:
        return img
    inner = arr.copy()
    inner[1:-1, 1:-1] &= arr[:-2, 1:-1] & arr[2:, 1:-1] & arr[1:-1, :-2] & arr[1:-1, 2:]
    edge = max(1, area - int(inner[1:-1, 1:-1].sum()))
    stroke = 2.0 * area / edge  # area / (perimeter / 2) for a thin stroke
    needed = STROKE * max(arr.shape) / BOX
    if stroke >= 0.75 * needed:
        return img
    size = min(7, int(needed - stroke) | 1)  # odd kernel, bounded cost
    return img.filter(ImageFilter.MaxFilter(size)) if size >= 3 else img


def _centre_of_mass(arr: np.ndarray) -> tuple[float, float]:
    weights = arr.astype(np.float32)
    total = float(weights.sum())
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
