"""Decode untrusted image bytes into 8-bit grayscale, whatever their format, mode or size.

Only the formats batch prediction accepts are ever parsed (no Ghostscript, no exotic plugins),
declared sizes are checked before any pixel is decoded (decompression bombs), large JPEGs are
decoded at reduced scale, and every mode (1-bit, palette, CMYK, 16-bit, alpha) becomes 0..255
luminance. Any failure becomes an `ImageError` with a short reason for a CSV row.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (decompression bombs)
WORK_SIDE = 1024  # larger images are reduced (JPEG: decoded at 1/2..1/8 scale) to about this
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "HEIF")  # HEIF: iPhone photos
KNOWN = "JPEG, PNG, BMP, GIF, TIFF, WebP or HEIF"
_ORIENTATION = 0x0112  # the EXIF tag

# Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error it can raise, as
# Pillow's documentation suggests. Our own, lower limit (MAX_PIXELS) normally fires first.
warnings.simplefilter("error", Image.DecompressionBombWarning)


def median(values: np.ndarray) -> int:
    """The median of uint8 values, several times faster than np.median on small arrays."""
    middle = values.size // 2
    return int(np.partition(values, middle)[middle])


class ImageError(ValueError):
    """An image cannot be turned into a digit; the message is a short reason for a CSV row."""


def decode_gray(data: bytes) -> np.ndarray:
    """Decode into a 2-D uint8 grayscale array, reduced to about WORK_SIDE px when larger."""
    if not data:
        raise ImageError("empty file")
    _register_heif()
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        _check_size(img.size)
        _draft(img)
        img.load()  # GIF: the first frame
        return _reduce(_to_gray(_upright(img)))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large: declares over {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        kind = _sniff(data)
        reason = f"corrupt {kind} header" if kind else f"not a {KNOWN} image"
        raise ImageError(reason) from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad image
        raise ImageError(f"corrupt or truncated image: {_short(e)}") from None


_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG": "PNG",
    b"BM": "BMP",
    b"GIF8": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
}


def _sniff(data: bytes) -> str:
    """The format a file claims by its first bytes, to tell a broken image from a non-image."""
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heif"):
        return "HEIF"
    return next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), "")


@functools.cache
def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (the pillow-heif plug-in), once per process."""
    import pillow_heif

    pillow_heif.register_heif_opener()


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


def _upright(img: Image.Image) -> Image.Image:
    """Apply a camera's EXIF orientation, so a phone photo of a 7 is not read on its side."""
    if "exif" not in img.info or img.getexif().get(_ORIENTATION, 1) == 1:
        return img
    return ImageOps.exif_transpose(img)


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any mode to 8-bit grayscale: 16/32-bit scaled (not clipped), alpha composited."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img)
    if mode.startswith("I") or mode == "F":
        return _scale_deep(np.asarray(img))
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
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

    When the opaque pixels are all one colour, the digit's shape lives in the alpha channel, so
    the background is the opposite colour. Otherwise it is the colour of the opaque pixels that
    touch the transparent ones: the paper of a scan with transparent margins, or the light
    fringe of dark ink anti-aliased onto a transparent sheet.
    """
    lum, alpha = la[..., 0], la[..., 1]
    if int(alpha.min()) >= 250:
        return lum
    opaque = alpha > 127
    if not opaque.any():
        return np.zeros(lum.shape, np.uint8)  # fully transparent: blank
    values = lum[opaque]
    if int(values.max()) - int(values.min()) < 64:
        background = 255.0 if median(values) < 128 else 0.0
    else:
        edge = lum[opaque & _touches(~opaque)]
        background = float(median(edge if edge.size else values))
    weight = alpha.astype(np.float32) / 255.0
    return (lum * weight + background * (1.0 - weight) + 0.5).astype(np.uint8)


def _touches(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in `mask`."""
    out = np.zeros_like(mask)
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _reduce(gray: np.ndarray) -> np.ndarray:
    factor = max(gray.shape) // WORK_SIDE
    if factor < 2:
        return gray
    return np.asarray(Image.fromarray(gray).reduce(factor))


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]
