"""Property-based tests of decode_gray (components.reading.image_decode), the one parser of
untrusted image bytes, used by the web page and by batch-predict.

Arbitrary bytes, valid images with bytes changed, and valid-looking headers (PNG IHDR, GIF,
BMP, TIFF) with fuzzed width, height, bit depth and mode: each gives a 2-D uint8 array or an
ImageError in one line, never another exception, and the decode never holds more memory than
MAX_DECODED_BYTES (its peak RSS, measured by resetting the kernel's high-water mark). The
builders of hostile files here also serve tests/local/test_ui_hostile.py and
benchmarks/bench_ui_load.py.
"""

from __future__ import annotations

import ctypes
import functools
import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from components.reading.image_decode import MAX_DECODED_BYTES, ImageError, decode_gray
from tests.fuzz import fuzz

pytestmark = pytest.mark.timeout(300)
FUZZ = fuzz(200)
SLACK = 48 * 2**20  # the interpreter's own allocations while decoding, and allocator rounding
MAX_RAW = 80 * 2**20  # generated pixel data is capped here (a larger image is truncated)
PNG_MODES = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_LIBC = ctypes.CDLL("libc.so.6")


# -- builders of hostile files ----------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zeros_deflated(size: int) -> bytes:
    """zlib of `size` zero bytes, a piece at a time (no full-size buffer here either)."""
    z, piece = zlib.compressobj(1), b"\0" * 2**22
    out = [z.compress(piece) for _ in range(size // len(piece))]
    return b"".join([*out, z.compress(b"\0" * (size % len(piece))), z.flush()])


def png(width: int, height: int, depth: int = 8, color: int = 0, rows: int | None = None) -> bytes:
    """A PNG of zero pixels (filter byte 0), `rows` rows of them (all by default)."""
    row = 1 + (width * CHANNELS[color] * depth + 7) // 8
    rows = height if rows is None else rows
    rows = min(rows, MAX_RAW // row)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    palette = _chunk(b"PLTE", bytes(range(3)) * (1 << depth)) if color == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + palette
        + _chunk(b"IDAT", _zeros_deflated(row * rows))
        + _chunk(b"IEND", b"")
    )


def png_text_bomb(chunks: int = 200) -> bytes:
    """A tiny PNG with `chunks` zTXt chunks of 1 MB of zeros each (Pillow's limit was 64 MB)."""
    text = _chunk(b"zTXt", b"note\0\0" + zlib.compress(b"\0" * 2**20, 9))
    good = png(28, 28)
    return good[:33] + text * chunks + good[33:]


def gif(screen: tuple[int, int], frame: tuple[int, int], frames: int = 1) -> bytes:
    """A GIF with a 2-colour table and `frames` image blocks of a short LZW stream."""
    head = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    block = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0) + b"\x02\x02\x4c\x01\x00"
    return head + block * frames + b"\x3b"


def bmp(width: int, height: int, bits: int, compression: int = 0, rows: int = 4) -> bytes:
    """A BMP (BITMAPINFOHEADER) with a few rows of zero pixels; height < 0 is top-down."""
    colours = 1 << bits if bits <= 8 else 0
    offset = 54 + 4 * colours
    stride = ((abs(width) * bits + 31) // 32) * 4
    pixels = b"\0" * min(stride * rows, MAX_RAW)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, 0, 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + b"\0" * (4 * colours) + pixels


def tiff(width: int, height: int, bits: int, samples: int, photometric: int, rows: int = 4):
    """A little-endian TIFF, one uncompressed strip holding `rows` rows of zeros."""
    stride = (width * bits * samples + 7) // 8
    pixels = b"\0" * min(stride * rows, MAX_RAW)
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, bits),
        (259, 3, 1),
        (262, 3, photometric),
        (273, 4, 0),  # the strip's offset, set below
        (277, 3, samples),
        (278, 4, height),
        (279, 4, len(pixels)),
    ]
    data_at = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = data_at if tag == 273 else value
        ifd += struct.pack("<HHI", tag, kind, 1) + struct.pack(
            "<I" if kind == 4 else "<HH", value, *([0] if kind == 3 else [])
        )
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + pixels


def _photo(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    img = Image.new(mode, size, "white")
    ImageDraw.Draw(img).line([(0, 0), size], fill="black", width=max(4, size[0] // 100))
    return img


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


@functools.cache
def worst_cases() -> dict[str, bytes]:
    """The uploads that cost the most to decode, each a few KB to a few MB."""
    many = encoded(_photo((64, 64), "L"), "GIF")
    frame = many[many.index(b"\x2c") : -1]  # one frame's block, appended 2000 times below
    big_gif = encoded(Image.new("P", (6000, 6000)), "GIF")
    return {
        "16-bit 6300x6300 PNG": png(6300, 6300, 16),
        "8-bit 6300x6300 PNG": png(6300, 6300, 8),
        "RGBA 3400x3400 PNG": png(3400, 3400, 8, 6),
        "16-bit RGBA 6000x6000 PNG": png(6000, 6000, 16, 6),
        "pixel-bomb PNG 100000x100000": png(100_000, 100_000, rows=10),
        "zTXt bomb PNG": png_text_bomb(),
        "progressive 6000x6000 JPEG": encoded(_photo((6000, 6000)), "JPEG", progressive=True),
        "baseline 8000x5000 JPEG": encoded(_photo((8000, 5000)), "JPEG", quality=50),
        "6000x6000 GIF, 2000 frames": big_gif[:-1] + frame * 2000 + b"\x3b",
        "GIF screen 65535x65535": gif((65535, 65535), (65535, 65535)),
        "TIFF 60000x60000 RGBA 16-bit": tiff(60000, 60000, 16, 4, 2),
        "TIFF 6000x6000 RGBA 16-bit": tiff(6000, 6000, 16, 4, 2, rows=6000),
        "BMP 6000x-6000 32-bit": bmp(6000, -6000, 32, rows=6000),
        "WebP 4000x4000": encoded(_photo((4000, 4000)), "WEBP", quality=10, method=0),
        "progressive 6000x4000 MPO": mpo((6000, 4000), progressive=True),
        "baseline 8000x5000 MPO": mpo((8000, 5000)),
        **{f"TIFF {name}, one strip": one_strip(*case) for name, case in _ONE_STRIP.items()},
    }


def mpo(size: tuple[int, int], **options) -> bytes:
    """A camera's multi-picture JPEG: the photo, then a 64x64 second picture."""
    options = {"save_all": True, "append_images": [_photo((64, 64))], "subsampling": 0, **options}
    return encoded(_photo(size), "MPO", **options)


_ONE_STRIP = {  # libtiff decodes each into a strip buffer as large as the image
    "5000x4800 RGB deflate": ((5000, 4800), "RGB", "tiff_deflate"),
    "5000x4800 RGB JPEG": ((5000, 4800), "RGB", "jpeg"),
    "4000x4000 16-bit LZW": ((4000, 4000), "I;16", "tiff_lzw"),
}


def one_strip(size: tuple[int, int], mode: str, compression: str) -> bytes:
    """A TIFF whose pixels are all in one strip (RowsPerStrip = its height)."""
    img = _photo(size, "L").convert(mode) if mode == "I;16" else _photo(size, mode)
    return encoded(img, "TIFF", compression=compression, tiffinfo={278: size[1]})


# -- what every input must give -----------------------------------------------------------------


def _status(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())[1]) * 1024


def peak_growth(data: bytes) -> tuple[np.ndarray | ImageError, int]:
    """decode_gray's result (or its ImageError) and the peak RSS it added, in bytes."""
    _LIBC.malloc_trim(0)  # freed memory kept by malloc would hide what the decode reuses
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from now
    before = _status("VmRSS")
    try:
        result = decode_gray(data)
    except ImageError as e:
        result = e
    return result, _status("VmHWM") - before


@pytest.fixture(scope="module", autouse=True)
def _high_water_mark_resets():
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a decode's peak memory")


def check(data: bytes) -> None:
    result, growth = peak_growth(data)
    if isinstance(result, ImageError):
        text = str(result)
        assert text and "\n" not in text and len(text) < 200, text
    else:
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8, type(result)
        assert result.ndim == 2 and result.size > 0, result.shape
    assert growth <= MAX_DECODED_BYTES + SLACK, f"{growth / 2**20:.0f} MB held to decode"


@pytest.mark.parametrize("name", list(worst_cases()))
def test_the_worst_uploads_decode_within_the_budget_or_are_refused(name):
    check(worst_cases()[name])


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data):
    check(data)


@functools.cache
def _valid_small() -> list[bytes]:
    img = _photo((40, 30))
    return [encoded(img, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]


@FUZZ
@given(st.data())
def test_valid_images_with_bytes_changed(data):
    original = bytearray(data.draw(st.sampled_from(_valid_small())))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    check(bytes(original[:cut]))


SIDES = st.integers(1, 9000)


@FUZZ
@given(SIDES, SIDES, st.sampled_from([(c, d) for c, ds in PNG_MODES.items() for d in ds]))
@example(6300, 6300, (0, 16))  # 77 KB: it held 611 MB to decode
@example(6000, 6000, (6, 16))
def test_png_headers(width, height, mode):
    color, depth = mode
    check(png(width, height, depth, color))


@FUZZ
@given(
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    st.integers(1, 300),
)
def test_gif_headers(screen, frame, frames):
    check(gif(screen, frame, frames))


@FUZZ
@given(
    st.integers(-20000, 20000),
    st.integers(-20000, 20000),
    st.sampled_from([1, 2, 4, 8, 16, 24, 32, 64]),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6]),
    st.integers(0, 9000),
)
def test_bmp_headers(width, height, bits, compression, rows):
    check(bmp(width, height, bits, compression, rows))


@FUZZ
@given(
    st.integers(1, 20000),
    st.integers(1, 20000),
    st.sampled_from([1, 2, 4, 8, 12, 16, 32]),
    st.integers(1, 5),
    st.sampled_from([0, 1, 2, 3, 5, 6, 8]),
    st.integers(0, 9000),
)
@example(6000, 6000, 16, 4, 2, 6000)
def test_tiff_headers(width, height, bits, samples, photometric, rows):
    check(tiff(width, height, bits, samples, photometric, rows))


@pytest.mark.parametrize("scale", [257, 1])  # the full 16-bit range, or values all below 256
def test_a_large_16_bit_digit_reads_as_its_8_bit_original(scale):
    from tests.unit.digit_images import render

    original = render(4, (2100, 2100))  # over 2 * WORK_SIDE: decoded straight to 8 bits
    deep = Image.fromarray(np.asarray(original, dtype=np.uint16) * scale)
    assert deep.mode == "I;16"
    gray = decode_gray(encoded(deep, "PNG"))
    expected = np.asarray(original.reduce(2))
    assert gray.shape == expected.shape and np.abs(gray.astype(int) - expected).max() <= 1
