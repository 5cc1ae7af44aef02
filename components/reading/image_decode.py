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
"""

from __future__ import annotations

import functools
import io
import struct
import warnings

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from components.common.errors import StepError

MAX_PIXELS = 40_000_000  # larger declared sizes are refused before decoding (decompression bombs)
MAX_DECODED_BYTES = 96 * 2**20  # held at once by one decode: a 12 MP RGBA PNG, reduced, fits
WORK_SIDE = 1024  # larger images are reduced (JPEG: decoded at 1/2..1/8 scale) to about this
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
_EIGHT_BIT = {"I;16": "L;16", "I;16L": "L;16", "I;16B": "L;16B"}  # 16-bit gray: its top byte
_LOW_BYTE = {"L;16": "L;16B", "L;16B": "L;16"}  # ... or its low byte (values all below 256)
_WEBP_CANVASES = 8  # bytes a pixel: libwebp's animation decoder holds two RGBA canvases

# Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error it can raise, as
# Pillow's documentation suggests. Our own, lower limit (MAX_PIXELS) normally fires first.
warnings.simplefilter("error", Image.DecompressionBombWarning)
# PNG text chunks (tEXt, zTXt, iTXt) are decompressed into img.info: 64 MB by default.
PngImagePlugin.MAX_TEXT_MEMORY = 2 * 2**20


def median(values: np.ndarray) -> int:
    """The median of uint8 values, several times faster than np.median on small arrays."""
    middle = values.size // 2
    return int(np.partition(values, middle)[middle])


class ImageError(StepError, ValueError):
    """An image cannot be turned into a digit; the message is a short reason for a CSV row."""


def decode_gray(data: bytes) -> np.ndarray:
    """Decode into a 2-D uint8 grayscale array, reduced to about WORK_SIDE px when larger."""
    if not data:
        raise ImageError("empty file")
    _register_heif()
    try:
        return _decode(data)
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


def _decode(data: bytes, low_byte: bool = False) -> np.ndarray:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # its decoder allocates on open
        webp = _webp_size(data)
        _check_size(webp)
        _check_bytes(webp, "WebP", (_WEBP_CANVASES + 4) * webp[0] * webp[1])
    img = Image.open(io.BytesIO(data), formats=FORMATS)
    _check_size(img.size)
    declared, decoder_bytes = img.size, _decoder_bytes(img)
    _draft(img)
    eight_bit = _eight_bit(img, low_byte)
    _check_budget(img, declared, decoder_bytes)
    img.load()  # GIF: the first frame
    if eight_bit and not low_byte and img.getextrema()[1] == 0:
        del img  # 16-bit values all below 256: read them as 8-bit, one image at a time
        return _decode(data, low_byte=True)
    orientation = _orientation(img)  # read after load: a PNG's eXIf may follow its pixels
    img = _reduce(img)
    if orientation in _TRANSPOSE:  # a camera's EXIF orientation: a 7 is not read on its side
        img = img.transpose(_TRANSPOSE[orientation])
    return _to_gray(img)


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


def _factor(size: tuple[int, int]) -> int:
    """The reduction that brings the longer side to about WORK_SIDE (1: none)."""
    return max(1, max(size) // WORK_SIDE)


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


def _jpeg(img: Image.Image) -> bool:
    """A JPEG-family image: a JPEG, or an MPO (a camera's multi-picture JPEG), whose first
    picture is decoded by the same decoder with the same buffers."""
    return isinstance(img, JpegImagePlugin.JpegImageFile)


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


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any mode to 8-bit grayscale: 16/32-bit scaled (not clipped), alpha composited."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img)
    if mode.startswith("I") or mode == "F":
        return _scale_deep(np.asarray(img))
    if mode == "LA":
        return _composite(np.asarray(img))
    if mode in ("La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
        return _composite(np.asarray(img.convert("RGBA").convert("LA")))
    if mode == "RGB":
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB").convert("L"))  # 1, P, CMYK, YCbCr, LAB, HSV


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


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]


def thumbnail(data: bytes, side: int = 96) -> Image.Image | None:
    """A small grey copy of an image file's bytes (decoded as every reader here decodes
    them), or None when it cannot be read: a picture that cannot be shown is left out."""
    try:
        image = Image.fromarray(decode_gray(data))
    except ImageError:
        return None
    image.thumbnail((side, side))
    return image
