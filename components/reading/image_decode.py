"""Decode untrusted image bytes into 8-bit grayscale, whatever their format, mode or size.

Only the formats batch prediction accepts are ever parsed (no Ghostscript, no exotic plugins).
Before any pixel is decoded, the header's size and mode are checked against two limits: the
pixel count (MAX_PIXELS) and the bytes held at once while decoding (MAX_DECODED_BYTES: the
decoded pixels in Pillow's storage of the mode, plus a conversion the reduction needs and a
decoder's own buffer: a progressive JPEG's coefficients, libtiff's strip or tile), so a 77 KB
file cannot make one request hold gigabytes. Large images are reduced while they are decoded
where the decoder can (JPEG, and MPO alike: at 1/2..1/8 scale; 16-bit grayscale: straight to
8 bits), and otherwise right after decoding, before any conversion copies them (smaller ones,
under 2 * WORK_SIDE a side, are converted as they are: at most about 50 MB). Every mode
(1-bit, palette, CMYK, 16-bit, alpha) becomes 0..255 luminance. Any failure becomes an
`ImageError` with a short reason for a CSV row.

The reduction and the conversion to gray live in grayscale.py; this module parses the bytes,
keeps every decode within the limits and turns every failure into an ImageError.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from components.common.errors import StepError
from components.reading.grayscale import (
    _draft,
    _eight_bit,
    _factor,
    _jpeg,
    _reduce,
    _reduction_copies,
    _to_gray,
)

MAX_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (decompression bombs)
MAX_DECODED_BYTES = 96 * 2**20  # held at once by one decode: a 12 MP RGBA PNG, reduced, fits
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "HEIF")  # HEIF: iPhone photos
KNOWN = "JPEG, PNG, BMP, GIF, TIFF, WebP or HEIF"
_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPOSE = {  # EXIF orientation -> the transposition that makes the image upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ONE_BYTE = ("1", "L", "P")  # Pillow stores these in 1 byte a pixel, I;16 in 2, the rest in 4
_WEBP_CANVASES = 8  # bytes a pixel: libwebp's animation decoder holds two RGBA canvases

# Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error it can raise, as
# Pillow's documentation suggests. Our own, lower limit (MAX_PIXELS) normally fires first.
warnings.simplefilter("error", Image.DecompressionBombWarning)
# PNG text chunks (tEXt, zTXt, iTXt) are decompressed into img.info: 64 MB by default.
PngImagePlugin.MAX_TEXT_MEMORY = 2 * 2**20


class ImageError(StepError, ValueError):
    """An image cannot be turned into a digit; the message is a short reason for a CSV row."""


def decode_gray(data: bytes, side: int | None = None) -> np.ndarray:
    """Decode into a 2-D uint8 grayscale array, reduced to about WORK_SIDE px (grayscale.py)
    when larger; with `side`, box-averaged to at most `side` px too (grayscale.fitted), before
    it is copied out of Pillow when Pillow makes it gray (JPEG, RGB, palette)."""
    if not data:
        raise ImageError("empty file")
    if _is_iso_media(data):  # HEIC, HEIF: only these need the plug-in, loaded on first use
        _register_heif()
    try:
        return _decode(data, side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large: declares over {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        kind = _sniff(data)
        reason = f"corrupt {kind} header" if kind else f"not a {KNOWN} image"
        raise ImageError(reason) from None
    except MemoryError:
        raise ImageError("not enough memory to decode the image") from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad image
        raise ImageError(f"corrupt or truncated image: {_short(e)}") from None


def _decode(data: bytes, side: int | None, low_byte: bool = False) -> np.ndarray:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # its decoder allocates on open
        webp = _webp_size(data)
        _check_size(webp)
        _check_bytes(webp, "WebP", (_WEBP_CANVASES + 4) * webp[0] * webp[1])
    formats = FORMATS if _is_iso_media(data) else FORMATS[:-1]  # no HEIF opener asked for
    img = Image.open(io.BytesIO(data), formats=formats)
    _check_size(img.size)
    declared, decoder_bytes = img.size, _decoder_bytes(img)
    _draft(img)
    eight_bit = _eight_bit(img, low_byte)
    _check_budget(img, declared, decoder_bytes)
    img.load()  # GIF: the first frame
    if eight_bit and not low_byte and img.getextrema()[1] == 0:
        del img  # 16-bit values all below 256: read them as 8-bit, one image at a time
        return _decode(data, side, low_byte=True)
    orientation = _orientation(img)  # read after load: a PNG's eXIf may follow its pixels
    img = _reduce(img)
    if orientation in _TRANSPOSE:  # a camera's EXIF orientation: a 7 is not read on its side
        img = img.transpose(_TRANSPOSE[orientation])
    return _to_gray(img, side)


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


def _is_iso_media(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


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


def _bytes_per_pixel(mode: str) -> int:
    return 1 if mode in _ONE_BYTE else 2 if mode.startswith("I;16") else 4


def _decoder_bytes(img: Image.Image) -> int:
    """Memory a decoder holds of its own, at the full declared size, before any draft."""
    width, height = img.size
    if img.format == "WEBP":
        return _WEBP_CANVASES * width * height
    if img.format == "HEIF":  # libheif's decoded RGB(A) picture, copied into Pillow's
        return 4 * width * height
    if _jpeg(img) and img.info.get("progressive"):
        # progressive scans keep every DCT coefficient (2 bytes) of every component in memory
        layers = getattr(img, "layer", None) or [(0, 1, 1, 0)]
        most = max(h * v for _, h, v, _ in layers) or 1
        return 2 * width * height * sum(h * v for _, h, v, _ in layers) // most
    if any(tile.codec_name == "libtiff" for tile in getattr(img, "tile", None) or ()):
        return _libtiff_buffer(img)
    return 0


def _libtiff_buffer(img: Image.Image) -> int:
    """libtiff's buffer of one strip (or tile) as decoded, at the sizes the tags declare: a
    TIFF written as one strip holds a second full-size copy of its pixels there. YCbCr and
    JPEG-compressed TIFFs are read as RGBA (4 bytes a pixel)."""
    tags = img.tag_v2  # type: ignore[attr-defined]
    width, height = img.size
    bits = tags.get(258) or (1,)
    bits = max(bits) if isinstance(bits, tuple) else int(bits)
    pixel = -(-(tags.get(277) or 1) * bits // 8)
    if tags.get(262) == 6 or tags.get(259) in (6, 7):
        pixel = max(pixel, 4)
    if tags.get(322) and tags.get(323):  # tiled: one tile, however large it is declared
        return int(tags[322]) * int(tags[323]) * pixel
    rows = min(int(tags.get(278) or height), height)  # no RowsPerStrip: one strip
    return rows * width * pixel


def _check_budget(img: Image.Image, declared: tuple[int, int], decoder_bytes: int) -> None:
    """Refuse, before decoding, an image whose decode would hold over MAX_DECODED_BYTES."""
    width, height = img.size  # after a JPEG draft: the reduced size
    modes = (img.mode, *_reduction_copies(img)) if _factor(img.size) >= 2 else (img.mode,)
    needed = decoder_bytes + width * height * sum(_bytes_per_pixel(mode) for mode in modes)
    progressive = _jpeg(img) and img.info.get("progressive")
    _check_bytes(declared, "progressive JPEG" if progressive else img.mode, needed)


def _check_bytes(size: tuple[int, int], kind: str, needed: int) -> None:
    if needed > MAX_DECODED_BYTES:
        raise ImageError(
            f"image too large: {size[0]}x{size[1]} pixels ({kind}) need "
            f"{needed / 2**20:.0f} MB to decode (limit {MAX_DECODED_BYTES // 2**20} MB)"
        )


def _webp_size(data: bytes) -> tuple[int, int]:
    """A WebP's canvas size from its first chunk (VP8, VP8L or VP8X)."""
    chunk = data[12:16] if len(data) >= 30 else b""
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ImageError("corrupt WebP header")


def _orientation(img: Image.Image) -> int:
    if "exif" not in img.info:
        return 1
    return int(img.getexif().get(_ORIENTATION, 1))


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]
