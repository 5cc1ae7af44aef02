"""Making an image small and gray: reduced while it is decoded where it can be, then to 0..255.

A large JPEG (or MPO) is decoded at 1/2..1/8 scale straight to grayscale (`_draft`), a large
16-bit grayscale PNG straight to 8 bits (`_eight_bit`); anything else still large is reduced
by box averages right after decoding (`_reduce`), before a conversion could copy it at full
size. `_to_gray` then turns any mode (1-bit, palette, CMYK, 16/32-bit, alpha) into 8-bit
luminance. None of it parses bytes or decides what may be decoded: that, and the memory
budget that relies on `_factor` and `_reduction_copies`, is image_decode.py's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, JpegImagePlugin

WORK_SIDE = 1024  # larger images are reduced (JPEG: decoded at 1/2..1/8 scale) to about this
_EIGHT_BIT = {"I;16": "L;16", "I;16L": "L;16", "I;16B": "L;16B"}  # 16-bit gray: its top byte
_LOW_BYTE = {"L;16": "L;16B", "L;16B": "L;16"}  # ... or its low byte (values all below 256)


def median(values: np.ndarray) -> int:
    """The median of uint8 values, several times faster than np.median on small arrays."""
    middle = values.size // 2
    return int(np.partition(values, middle)[middle])


def _factor(size: tuple[int, int]) -> int:
    """The reduction that brings the longer side to about WORK_SIDE (1: none)."""
    return max(1, max(size) // WORK_SIDE)


def _jpeg(img: Image.Image) -> bool:
    """A JPEG-family image: a JPEG, or an MPO (a camera's multi-picture JPEG), whose first
    picture is decoded by the same decoder with the same buffers."""
    return isinstance(img, JpegImagePlugin.JpegImageFile)


def _draft(img: Image.Image) -> None:
    """Let the JPEG decoder produce grayscale directly, at 1/2..1/8 scale for large photos."""
    if not _jpeg(img):
        return
    width, height = img.size
    shrink = max(1.0, max(width, height) / WORK_SIDE)
    img.draft("L", (int(width / shrink), int(height / shrink)))


def _eight_bit(img: Image.Image, low_byte: bool) -> bool:
    """Decode a large 16-bit grayscale image straight to 8 bits (its top byte, or its low byte
    when `low_byte`), so it never exists at 16 bits, nor as float. True when it applied."""
    if _factor(img.size) < 2 or not img.mode.startswith("I;16"):
        return False
    tiles = []
    for tile in getattr(img, "tile", None) or ():
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        rawmode = _EIGHT_BIT.get(args[0]) if args and tile.codec_name in ("zip", "raw") else None
        if rawmode is None:
            return False  # another decoder (libtiff): decoded at 16 bits, within the budget
        rawmode = _LOW_BYTE[rawmode] if low_byte else rawmode
        args = (rawmode, *args[1:])
        tiles.append(tile._replace(args=args if isinstance(tile.args, tuple) else args[0]))
    if not tiles:
        return False
    img.tile = tiles
    img._mode = "L"
    return True


def fitted(img: Image.Image, side: int | None) -> Image.Image:
    """`img` box-averaged so its longer side is at most `side` px (`img` itself when it is
    already, or when `side` is None)."""
    width, height = img.size
    if side is None or max(width, height) <= side:
        return img
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.BOX)


def fitted_array(gray: np.ndarray, side: int | None) -> np.ndarray:
    """`gray` (uint8) box-averaged as `fitted` does, or `gray` itself when it fits."""
    if side is None or max(gray.shape) <= side:
        return gray
    return np.asarray(fitted(Image.fromarray(gray), side))


def _to_gray(img: Image.Image, side: int | None = None) -> np.ndarray:
    """Any mode to 8-bit grayscale: 16/32-bit scaled (not clipped), alpha composited; then
    `fitted` to `side`. Where the gray image is made in Pillow, it is fitted there, before it
    is copied into an array (copying a 2000x1500 photo out costs about what reducing it does)."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        return fitted_array(_scale_deep(np.asarray(img)), side)
    if mode == "LA":
        return fitted_array(_composite(np.asarray(img)), side)
    if mode in ("La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
        return fitted_array(_composite(np.asarray(img.convert("RGBA").convert("LA"))), side)
    if mode == "L":
        return np.asarray(fitted(img, side))
    if mode == "RGB":
        return np.asarray(fitted(img.convert("L"), side))
    return np.asarray(fitted(img.convert("RGB").convert("L"), side))  # 1, P, CMYK, YCbCr, LAB, HSV


def _scale_deep(arr: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels to 0..255 by their nominal range."""
    arr = arr.astype(np.float32)  # the one full-size float copy: the rest is in place
    top = float(arr.max()) if arr.size else 0.0
    full = 1.0 if top <= 1.0 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    arr *= 255.0 / full
    return np.clip(arr, 0, 255, out=arr).astype(np.uint8)


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
    weight = np.divide(alpha, np.float32(255.0), dtype=np.float32)
    out = lum * weight  # lum * w + background * (1 - w) + 0.5, in two float arrays
    np.subtract(np.float32(1.0), weight, out=weight)
    weight *= np.float32(background)
    out += weight
    out += np.float32(0.5)
    return out.astype(np.uint8)


def _touches(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in `mask`."""
    out = np.zeros_like(mask)
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _work_mode(img: Image.Image) -> str:
    """A mode `Image.reduce` averages to the same luminance (not palette indices, 1-bit or
    I;16, which it cannot reduce)."""
    mode = img.mode
    if mode == "P":
        return "LA" if "transparency" in img.info else "L"
    return {"1": "L", "PA": "LA"}.get(mode, "I" if mode.startswith("I;16") else mode)


def _reduction_copies(img: Image.Image) -> tuple[str, ...]:
    """The modes of the full-size copies made to reduce a large image: the conversion to its
    work mode, and the premultiplied copy `Image.reduce` makes of an image with alpha."""
    work = _work_mode(img)
    copies = (work,) if work != img.mode else ()
    return (*copies, work[:-1] + "a") if work in ("LA", "RGBA") else copies


def _reduce(img: Image.Image) -> Image.Image:
    """Reduce a large image to about WORK_SIDE by box averages, before any conversion copies
    it at full size (only a mode `reduce` cannot average is converted first)."""
    factor = _factor(img.size)
    if factor < 2:
        return img
    work = _work_mode(img)
    return (img.convert(work) if work != img.mode else img).reduce(factor)
