"""The MNIST files: names, expected digests and counts, and a strict IDX reader.

IDX is a big-endian header (magic, then one uint32 per dimension) followed by uint8 data.
Images have magic 2051 and dimensions (count, 28, 28); labels have magic 2049 and (count,).

Reading and checking (`read_idx`, `check`) need no numpy, so the slim image's download and
unpack-and-upload steps do without it; `read_idx_file` and `load_split` give arrays to train on.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.common.errors import StepError

if TYPE_CHECKING:
    import numpy as np

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
ROWS = COLS = 28
NUM_CLASSES = 10
# What an IDX file may declare: the largest MNIST file is 47 MB. A .gz file may inflate up to
# MAX_GZIP_RATIO times its size (real MNIST is about 5:1, synthetic test sets about 140:1,
# deflate bombs about 1000:1), and any file up to _RATIO_FREE_BYTES.
MAX_IDX_BYTES = 512 << 20
MAX_GZIP_RATIO = 250
_RATIO_FREE_BYTES = 16 << 20


@dataclass(frozen=True)
class IdxFile:
    """One of the four MNIST files, as published in the original release."""

    name: str  # uncompressed file name, e.g. train-images-idx3-ubyte
    magic: int
    count: int
    sha256: str  # of the uncompressed content

    @property
    def gz_name(self) -> str:
        return self.name + ".gz"

    @property
    def size(self) -> int:
        header = 16 if self.magic == IMAGE_MAGIC else 8
        per_item = ROWS * COLS if self.magic == IMAGE_MAGIC else 1
        return header + self.count * per_item


TRAIN_IMAGES = IdxFile(
    "train-images-idx3-ubyte",
    IMAGE_MAGIC,
    60000,
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
)
TRAIN_LABELS = IdxFile(
    "train-labels-idx1-ubyte",
    LABEL_MAGIC,
    60000,
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
)
TEST_IMAGES = IdxFile(
    "t10k-images-idx3-ubyte",
    IMAGE_MAGIC,
    10000,
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
)
TEST_LABELS = IdxFile(
    "t10k-labels-idx1-ubyte",
    LABEL_MAGIC,
    10000,
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SPLITS = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}


class IdxError(StepError, ValueError):
    """An IDX file is malformed; the message names the file and what is wrong."""


def _layout(header: bytes, name: str) -> tuple[tuple[int, ...], int]:
    """(shape, header length) from the first 16 bytes of an IDX file, or IdxError."""
    if len(header) < 8:
        raise IdxError(f"{name}: {len(header)} bytes is too short for an IDX header")
    magic, first = struct.unpack(">II", header[:8])
    if magic == LABEL_MAGIC:
        return (first,), 8
    if magic != IMAGE_MAGIC:
        raise IdxError(
            f"{name}: magic number {magic} is neither {IMAGE_MAGIC} (images) "
            f"nor {LABEL_MAGIC} (labels)"
        )
    if len(header) < 16:
        raise IdxError(f"{name}: truncated image header")
    count, rows, cols = struct.unpack(">III", header[4:16])
    if (rows, cols) != (ROWS, COLS):
        raise IdxError(f"{name}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    return (count, rows, cols), 16


@dataclass(frozen=True)
class Idx:
    """A parsed IDX file: its shape and its uint8 body, not yet an array."""

    shape: tuple[int, ...]
    body: bytes

    @property
    def count(self) -> int:
        return self.shape[0]


def split_idx(data: bytes, name: str) -> Idx:
    """Parse IDX bytes, checking the header against the body length."""
    shape, offset = _layout(data[:16], name)
    expected = offset + math.prod(shape)
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxError(f"{name}: body {kind}: {len(data)} bytes, header says {expected}")
    return Idx(shape, data[offset:])


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking the header against the body length."""
    return _array(split_idx(data, name))


def _array(idx: Idx) -> np.ndarray:
    import numpy as np

    return np.frombuffer(idx.body, dtype=np.uint8).reshape(idx.shape)


_DIGITS = bytes(range(NUM_CLASSES))


def check(idx: Idx, spec: IdxFile, name: str | None = None, canonical: bool = True) -> None:
    """Check a parsed file against what the MNIST file `spec` must hold.

    `canonical` also requires the record count of the original release (60000 or 10000); a custom
    IDX set (for example a small one made for tests) only has to be well formed.
    """
    name = name or spec.name
    is_images = spec.magic == IMAGE_MAGIC
    if (len(idx.shape) == 3) != is_images:
        raise IdxError(f"{name}: holds {'labels' if is_images else 'images'}, expected the other")
    if canonical and idx.count != spec.count:
        raise IdxError(f"{name}: {idx.count} records, expected {spec.count}")
    if idx.count == 0:
        raise IdxError(f"{name}: holds no records")
    if not is_images and idx.body.translate(None, _DIGITS):  # what is left is not 0-9
        raise IdxError(f"{name}: label {max(idx.body)} is outside 0-9")


def read_idx_file(path: str | os.PathLike) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file into a uint8 array (see `read_idx`)."""
    return _array(read_idx(path))


def read_idx(path: str | os.PathLike) -> Idx:
    """Read a raw or gzip-compressed IDX file.

    The header is checked first, and no more than it declares is read (one byte more, to see
    trailing bytes): a raw file may declare no more than its size, a .gz file no more than
    MAX_GZIP_RATIO times its size (past a small allowance) and MAX_IDX_BYTES, so a lying header
    or a gzip bomb is refused before its body is read.
    """
    path = Path(path)
    gzipped = path.suffix == ".gz"
    try:
        size = path.stat().st_size
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            header = f.read(16)
            shape, offset = _layout(header, path.name)
            expected = offset + math.prod(shape)
            _check_declared(path.name, expected, size, gzipped)
            data = header + _read_at_most(f, expected + 1 - len(header))
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path.name}: cannot be read: {e}") from e
    return split_idx(data, path.name)


def _check_declared(name: str, expected: int, size: int, gzipped: bool) -> None:
    """Refuse a header that declares more bytes than the file can hold or sensibly inflate to."""
    if not gzipped:
        if expected > size:
            raise IdxError(f"{name}: body truncated: {size} bytes, header says {expected}")
        return
    bound = min(MAX_IDX_BYTES, max(MAX_GZIP_RATIO * size, _RATIO_FREE_BYTES))
    if expected > bound:
        raise IdxError(
            f"{name}: header says {expected} bytes, more than the {bound} a {size}-byte gzip "
            f"file may inflate to (max {MAX_IDX_BYTES} bytes, ratio {MAX_GZIP_RATIO}:1: "
            "a gzip bomb?)"
        )


def _read_at_most(f, count: int) -> bytes:
    """Up to `count` bytes of `f`, read in chunks: a short stream allocates only what it has."""
    data = bytearray()
    while len(data) < count:
        chunk = f.read(min(count - len(data), 1 << 20))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _find(folder: Path, spec: IdxFile) -> Path:
    """The raw file if present, else its .gz version."""
    raw = folder / spec.name
    return raw if raw.exists() or not (folder / spec.gz_name).exists() else folder / spec.gz_name


def load_split(
    folder: str | os.PathLike, split: str, limit: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Load (images, labels) of `split` ('train' or 'test') from a folder of IDX (or .gz) files."""
    image_spec, label_spec = SPLITS[split]
    image_path, label_path = _find(Path(folder), image_spec), _find(Path(folder), label_spec)
    images, labels = read_idx(image_path), read_idx(label_path)
    check(images, image_spec, image_path.name, canonical=False)
    check(labels, label_spec, label_path.name, canonical=False)
    if images.count != labels.count:
        raise IdxError(f"{split}: {images.count} images but {labels.count} labels")
    images, labels = _array(images), _array(labels)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (used to make small data sets for tests and demos)."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IMAGE_MAGIC if array.ndim == 3 else LABEL_MAGIC
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
