"""Property-based tests of the IDX reader (components.dataset.mnist) and of unpack's validation.

Every IDX file comes from outside. Generated files, valid and mutated: a valid one reads back as
the array it encodes; anything else is refused with one IdxError naming the file, never another
exception, and never after reading (or allocating) more than the file's size justifies.
"""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from components.dataset import mnist
from components.dataset.bounded import ArchiveError
from components.dataset.mnist import IdxError
from components.unpack_upload import unpack
from tests.fuzz import FUZZ, fuzz

pytestmark = pytest.mark.timeout(120)
MAGICS = {1: mnist.LABEL_MAGIC, 3: mnist.IMAGE_MAGIC}


def encode(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None):
    """IDX bytes written here, independently of mnist.write_idx."""
    magic = MAGICS[array.ndim] if magic is None else magic
    dims = array.shape if dims is None else dims
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


LABELS = hnp.arrays(np.uint8, st.integers(0, 40).map(lambda n: (n,)), elements=st.integers(0, 9))
IMAGES = hnp.arrays(np.uint8, st.integers(0, 3).map(lambda n: (n, 28, 28)))
ARRAYS = st.one_of(LABELS, IMAGES)
U32 = st.integers(0, 2**32 - 1)
HUGE = st.sampled_from([2**31, 2**32 - 1, 2**31 - 1, 2**24, 10**9])


@st.composite
def invalid_idx(draw) -> bytes:
    """IDX bytes with one thing wrong."""
    array = draw(ARRAYS)
    good = encode(array)
    offset = 16 if array.ndim == 3 else 8
    kind = draw(
        st.sampled_from(
            ["magic", "dtype", "ndims", "dims", "huge", "truncate", "trailing", "short header"]
        )
    )
    if kind == "magic":
        magic = draw(U32.filter(lambda m: m not in MAGICS.values()))
        return struct.pack(">I", magic) + good[4:]
    if kind == "dtype":  # 0x08 is unsigned byte; 0x09, 0x0B to 0x0E are the others
        code = draw(st.sampled_from([0x00, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0xFF]))
        return bytes([0, 0, code]) + good[3:]
    if kind == "ndims":  # zero, two, or absurd dimension counts
        ndims = draw(st.sampled_from([0, 2, 4, 255]).filter(lambda n: n != array.ndim))
        return bytes([0, 0, 8, ndims]) + good[4:]
    if kind == "dims":  # image rows and cols other than 28x28, or a count that disagrees
        if array.ndim == 3:
            rows, cols = draw(st.tuples(U32, U32).filter(lambda rc: rc != (28, 28)))
            return encode(array, dims=(len(array), rows, cols))
        count = draw(U32.filter(lambda n: n != len(array)))
        return encode(array, dims=(count,))
    if kind == "huge":  # a count or shape whose product is far beyond the bytes there
        dims = (draw(HUGE),) if array.ndim == 1 else (draw(HUGE), draw(HUGE), draw(HUGE))
        return encode(array, dims=dims)
    if kind == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "trailing":
        return good + draw(st.binary(min_size=1, max_size=50))
    return good[: draw(st.integers(0, offset - 1))]


def write(tmp: Path, name: str, data: bytes, gz: bool) -> Path:
    path = tmp / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, 6, mtime=0) if gz else data)
    return path


def assert_one_line_naming(error: Exception, name: str) -> None:
    assert type(error) is IdxError, f"{type(error).__name__} leaked out: {error}"
    text = str(error)
    assert text.startswith(f"{name}: ") and "\n" not in text, text


# --- valid files read back as the array they encode ------------------------------------------


@FUZZ
@given(array=ARRAYS, gz=st.booleans())
def test_a_valid_file_reads_back_as_its_array(tmp_path_factory, array, gz):
    data = encode(array)
    assert np.array_equal(mnist.parse_idx(data, "x"), array)
    path = write(tmp_path_factory.mktemp("idx"), "x-idx-ubyte", data, gz)
    read = mnist.read_idx_file(path)
    assert read.dtype == np.uint8 and read.shape == array.shape and np.array_equal(read, array)
    mnist.write_idx(path, array)  # and mnist's own writer agrees with this encoder
    assert np.array_equal(mnist.read_idx_file(path), array)


# --- invalid files: IdxError, one line, naming the file ---------------------------------------


@FUZZ
@given(data=invalid_idx())
@example(data=struct.pack(">IIII", mnist.IMAGE_MAGIC, 2**31, 2**31, 2**31) + bytes(84))
@example(data=b"")
def test_invalid_bytes_raise_idx_error_only(data):
    with pytest.raises(Exception) as raised:
        mnist.parse_idx(data, "bad-idx3-ubyte")
    assert_one_line_naming(raised.value, "bad-idx3-ubyte")


@FUZZ
@given(data=invalid_idx(), gz=st.booleans())
@example(data=struct.pack(">IIII", mnist.IMAGE_MAGIC, 2**31, 28, 28) + bytes(84), gz=True)
@example(data=struct.pack(">II", mnist.LABEL_MAGIC, 0) + bytes(8), gz=True)
def test_invalid_files_raise_idx_error_only(tmp_path_factory, data, gz):
    path = write(tmp_path_factory.mktemp("idx"), "t10k-labels-idx1-ubyte", data, gz)
    with pytest.raises(Exception) as raised:
        mnist.read_idx_file(path)
    assert_one_line_naming(raised.value, path.name)


@FUZZ
@given(
    data=st.one_of(ARRAYS.map(encode), invalid_idx()),
    cut=st.integers(1, 200),
    flip=st.integers(0, 10_000),
    how=st.sampled_from(["truncate", "flip", "garbage"]),
)
@example(data=encode(np.zeros(0, np.uint8)), cut=1, flip=0, how="flip")  # shrunk: zlib.error
def test_damaged_gzip_raises_idx_error_only(tmp_path_factory, data, cut, flip, how):
    """A .gz cut short, with a flipped byte in its deflate stream, or not gzip at all."""
    packed = bytearray(gzip.compress(data, 6, mtime=0))
    if how == "truncate":
        packed = packed[: max(len(packed) - cut, 0)]
    elif how == "flip":
        packed[10 + flip % (len(packed) - 10)] ^= 0xFF  # past the gzip header
    else:
        packed = bytearray(data)
    path = Path(tmp_path_factory.mktemp("idx")) / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(packed))
    try:
        array = mnist.read_idx_file(path)
    except Exception as e:  # noqa: BLE001 - the point is which exceptions come out
        assert_one_line_naming(e, path.name)
    else:  # a flip the CRC cannot see is rare, but then the bytes must still be a valid file
        assert how == "flip" and array.dtype == np.uint8


def test_a_corrupt_deflate_stream_is_an_idx_error(tmp_path):
    """Shrunk: a flipped byte in the deflate data made zlib.error leak out of read_idx_file."""
    packed = bytearray(gzip.compress(encode(np.zeros(0, np.uint8)), 6, mtime=0))
    packed[10] ^= 0xFF
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(IdxError, match=r"^train-labels-idx1-ubyte\.gz: cannot be read: "):
        mnist.read_idx_file(path)


# --- nothing is read or allocated beyond what the file's size justifies ----------------------


def peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def refused_reading(path) -> tuple[list[str], int]:
    """Read the IDX file at `path`: (the IdxError messages it raised, peak traced bytes)."""
    errors = []

    def read():
        try:
            mnist.read_idx_file(path)
        except IdxError as e:
            errors.append(str(e))

    return errors, peak_while(read)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "dims", [(2**31, 28, 28), (2**32 - 1, 28, 28), (2**31, 2**31, 2**31), (10**6, 28, 28)]
)
def test_a_lying_header_is_refused_before_its_body_is_read(tmp_path, dims, gz):
    """2^31 images declared in a 100-byte file: refused from the header, no allocation."""
    data = struct.pack(">IIII", mnist.IMAGE_MAGIC, *dims) + bytes(84)
    path = write(tmp_path, "train-images-idx3-ubyte", data, gz)
    errors, peak = refused_reading(path)
    assert peak < 1 << 20
    assert len(errors) == 1 and errors[0].startswith(path.name)


ZEROS = 200 << 20


@pytest.fixture(scope="module")
def deflated_zeros() -> bytes:
    """One gzip member holding 200 MB of zeros (about 200 KB), compressed as a stream."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(ZEROS >> 20)) + packer.flush()


@pytest.mark.parametrize(
    "header, phrase",
    [
        (b"", "magic number 0"),  # just the zeros
        (struct.pack(">IIII", mnist.IMAGE_MAGIC, 2**32 - 1, 28, 28), "a gzip bomb?"),
        # a header that matches the zeros exactly: a well-formed file at about 1000:1
        (struct.pack(">IIII", mnist.IMAGE_MAGIC, ZEROS // 784, 28, 28), "a gzip bomb?"),
        (struct.pack(">II", mnist.LABEL_MAGIC, 3), "has trailing bytes"),
        (struct.pack(">II", mnist.LABEL_MAGIC, 0), "has trailing bytes"),
    ],
    ids=["no header", "4G images", "consistent header", "3 labels", "0 labels"],
)
def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path, deflated_zeros, header, phrase):
    """A small .gz that inflates to 200 MB: refused by a bound, with little memory used.

    The file is two gzip members (the header, then the zeros), which gzip reads as one stream.
    """
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes((gzip.compress(header, mtime=0) if header else b"") + deflated_zeros)
    assert path.stat().st_size < 1 << 20
    errors, peak = refused_reading(path)
    assert peak < 4 << 20
    assert len(errors) == 1 and phrase in errors[0] and errors[0].startswith(path.name)


# --- a folder's split: labels 0-9, images and labels in agreement -----------------------------


@FUZZ
@given(
    images=IMAGES.filter(len),
    labels=hnp.arrays(np.uint8, st.integers(1, 6).map(lambda n: (n,))),
    swap=st.booleans(),
)
def test_load_split_refuses_bad_labels_and_disagreeing_counts(
    tmp_path_factory, images, labels, swap
):
    folder = tmp_path_factory.mktemp("split")
    image_file, label_file = (s.name for s in mnist.SPLITS["test"])
    if swap:  # the two files exchanged: images where labels belong
        image_file, label_file = label_file, image_file
    (folder / image_file).write_bytes(encode(images))
    (folder / label_file).write_bytes(encode(labels))
    good = not swap and len(images) == len(labels) and int(labels.max()) <= 9
    if good:
        got_images, got_labels = mnist.load_split(folder, "test")
        assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
        return
    with pytest.raises(Exception) as raised:
        mnist.load_split(folder, "test")
    assert type(raised.value) is IdxError and "\n" not in str(raised.value)


def test_load_split_refuses_a_label_above_9(tmp_path):
    """Shrunk: load_split returned label 10 to the trainer (only unpack checked the range)."""
    mnist.write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8))
    mnist.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([10], np.uint8))
    with pytest.raises(IdxError, match="^t10k-labels-idx1-ubyte: label 10 is outside 0-9$"):
        mnist.load_split(tmp_path, "test")


# --- unpack's validation of the four files ----------------------------------------------------


@fuzz(200)
@given(
    target=st.sampled_from([f.name for f in mnist.FILES]),
    data=st.one_of(invalid_idx(), LABELS.map(lambda a: encode(a + 10)), IMAGES.map(encode)),
    gz=st.booleans(),
)
def test_unpack_refuses_any_bad_file_before_uploading(tmp_path_factory, target, data, gz):
    """One of four good files replaced: unpack raises IdxError or ArchiveError, one line,
    and nothing reaches the store."""
    work = tmp_path_factory.mktemp("unpack")
    src = work / "src"
    src.mkdir()
    counts = {"train": 3, "test": 2}
    for split, (image_spec, label_spec) in mnist.SPLITS.items():
        n = counts[split]
        (src / image_spec.name).write_bytes(encode(np.zeros((n, 28, 28), np.uint8)))
        (src / label_spec.name).write_bytes(encode(np.arange(n, dtype=np.uint8)))
    (src / target).unlink()
    write(src, target, data, gz)
    store = _RecordingStore()
    try:
        unpack.unpack_and_upload(src, store, "p", canonical=False, workdir=work / "w")
    except (IdxError, ArchiveError) as e:
        assert "\n" not in str(e) and store.writes == []
    else:  # the replacement happened to be a good file of the right kind and count
        assert store.writes


class _RecordingStore:
    """A store that is empty and records every write."""

    def __init__(self):
        self.writes: list[str] = []

    def stat(self, key):
        return None

    def delete(self, key):
        self.writes.append(f"delete {key}")

    def put_file(self, key, path, sha256=None):
        self.writes.append(f"put {key}")

    def put_bytes(self, key, data):
        self.writes.append(f"put {key}")

    def uri(self, key=""):
        return f"mem://{key}"
