"""Unpack-and-upload: validation before the first upload, skip-if-same, manifest last."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

from components.common import spec
from components.common.provenance import digest_of
from components.dataset import mnist
from components.dataset.bounded import ArchiveError, Limits
from components.dataset.manifest import fetch_dataset, read_manifest
from components.store import LocalStore, open_store, sha256_file
from components.unpack_upload import __main__ as unpack_main
from components.unpack_upload.unpack import unpack_and_upload
from tests.unit.test_archive import gz_members, make_tar, make_zip, raw_members

pytestmark = pytest.mark.timeout(60)
PREFIX = "datasets/mnist"
NAMES = [f.name for f in mnist.FILES]


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return open_store(str(tmp_path / "store"))


@pytest.fixture
def raw_dir(raw_small_mnist_dir, tmp_path) -> Path:
    """A private copy of the raw small set, for tests that damage it."""
    return Path(shutil.copytree(raw_small_mnist_dir, tmp_path / "download"))


class SpyStore:
    """A LocalStore that records every write, to check the order and that none happened."""

    def __init__(self, inner: LocalStore):
        self.inner, self.writes = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_file(self, key, src, sha256=None):
        self.writes.append(("put", key))
        self.inner.put_file(key, src, sha256=sha256)

    def put_bytes(self, key, data):
        self.writes.append(("put", key))
        self.inner.put_bytes(key, data)

    def delete(self, key):
        self.writes.append(("delete", key))
        self.inner.delete(key)


def run(src: Path, store, **kwargs) -> dict:
    return unpack_and_upload(src, store, PREFIX, canonical=False, source="test", **kwargs)


# --- the happy paths ------------------------------------------------------------------------


def test_gz_folder_is_uploaded_raw_with_a_manifest(small_mnist_dir, raw_small_mnist_dir, store):
    meta = run(small_mnist_dir, store)
    digests = {n: sha256_file(raw_small_mnist_dir / n) for n in NAMES}
    assert meta == {
        "dataset_uri": store.uri(PREFIX),
        "manifest_uri": store.uri(f"{PREFIX}/{spec.MANIFEST}"),
        "counts": {"train": 1200, "test": 300},
        "sha256": digests,
        "dataset_digest": digest_of(digests),
        "sizes": {n: (raw_small_mnist_dir / n).stat().st_size for n in NAMES},
        "uploaded": NAMES,
        "skipped": [],
    }
    manifest = read_manifest(store, PREFIX)
    assert manifest["source"] == "test"
    assert manifest["dataset_digest"] == digest_of(digests)
    assert manifest["files"]["train-labels-idx1-ubyte"] == {
        "sha256": digests["train-labels-idx1-ubyte"],
        "size": 1208,
        "count": 1200,
    }
    for name in NAMES:
        assert store.stat(f"{PREFIX}/{name}").sha256 == digests[name]


def test_rerun_skips_what_is_there(small_mnist_dir, store):
    run(small_mnist_dir, store)
    spy = SpyStore(store)
    meta = run(small_mnist_dir, spy)
    assert meta["uploaded"] == [] and meta["skipped"] == NAMES
    assert spy.writes == [("put", f"{PREFIX}/{spec.MANIFEST}")]


def test_a_changed_object_is_replaced_and_the_manifest_written_last(
    small_mnist_dir, store, tmp_path
):
    run(small_mnist_dir, store)
    store.put_bytes(f"{PREFIX}/t10k-images-idx3-ubyte", b"stale")
    spy = SpyStore(store)
    meta = run(small_mnist_dir, spy)
    assert meta["uploaded"] == ["t10k-images-idx3-ubyte"]
    assert spy.writes == [
        ("delete", f"{PREFIX}/{spec.MANIFEST}"),  # readers see no dataset, never a mix
        ("put", f"{PREFIX}/t10k-images-idx3-ubyte"),
        ("put", f"{PREFIX}/{spec.MANIFEST}"),
    ]
    fetch_dataset(store, PREFIX, tmp_path / "check")  # sizes and digests agree


def test_same_size_different_content_is_replaced(small_mnist_dir, raw_small_mnist_dir, store):
    run(small_mnist_dir, store)
    key = f"{PREFIX}/train-labels-idx1-ubyte"
    data = bytearray(store.get_bytes(key))
    data[-1] = (data[-1] + 1) % 10
    store.put_bytes(key, bytes(data))
    meta = run(small_mnist_dir, store)
    assert meta["uploaded"] == ["train-labels-idx1-ubyte"]
    assert store.get_bytes(key) == (raw_small_mnist_dir / "train-labels-idx1-ubyte").read_bytes()


def test_a_rerun_after_a_crash_completes_the_dataset(small_mnist_dir, store, tmp_path):
    run(small_mnist_dir, store)
    store.delete(f"{PREFIX}/{spec.MANIFEST}")  # as if killed before the last two files
    for name in NAMES[2:]:
        store.delete(f"{PREFIX}/{name}")
    meta = run(small_mnist_dir, store)
    assert meta["skipped"] == NAMES[:2] and meta["uploaded"] == NAMES[2:]
    assert fetch_dataset(store, PREFIX, tmp_path / "check")["files"].keys() == set(NAMES)


@pytest.mark.parametrize("shape", ["raw", "zip-gz", "zip-both", "tar.gz-raw", "tar", "bare-zip"])
def test_source_shapes(small_mnist_dir, raw_small_mnist_dir, tmp_path, store, shape):
    src = tmp_path / "download"
    src.mkdir()
    top = "Mnist-Data-Set/"
    if shape == "raw":
        src = raw_small_mnist_dir
    elif shape == "zip-gz":
        make_zip(src / "Mnist-Data-Set.zip", gz_members(small_mnist_dir, top))
    elif shape == "zip-both":
        both = {**gz_members(small_mnist_dir, top), **raw_members(raw_small_mnist_dir, top)}
        make_zip(src / "Mnist-Data-Set.zip", both)
    elif shape == "tar.gz-raw":
        make_tar(src / "mnist.tar.gz", raw_members(raw_small_mnist_dir, top))
    elif shape == "tar":
        make_tar(src / "mnist.tar", gz_members(small_mnist_dir), "w")
    else:  # the archive itself rather than the folder holding it
        src = make_zip(src / "m.zip", raw_members(raw_small_mnist_dir))
    meta = run(src, store)
    assert meta["counts"] == {"train": 1200, "test": 300}
    for name in NAMES:
        assert store.stat(f"{PREFIX}/{name}").sha256 == sha256_file(raw_small_mnist_dir / name)


def test_s3_store(small_mnist_dir, s3_env, s3_bucket):
    s3 = open_store(f"s3://{s3_bucket}/root", s3_env)
    meta = run(small_mnist_dir, s3)
    assert meta["dataset_uri"] == f"s3://{s3_bucket}/root/{PREFIX}"
    assert read_manifest(s3, PREFIX)["files"].keys() == set(NAMES)
    assert s3.stat(f"{PREFIX}/{NAMES[0]}").sha256 == meta["sha256"][NAMES[0]]
    assert run(small_mnist_dir, s3)["skipped"] == NAMES


def test_canonical_full_set(full_mnist_dir, store):
    meta = unpack_and_upload(full_mnist_dir, store, PREFIX, canonical=True)
    assert meta["counts"] == {"train": 60000, "test": 10000}
    assert meta["sha256"] == {f.name: f.sha256 for f in mnist.FILES}


def test_temporary_files_are_removed(small_mnist_dir, raw_dir, store, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run(small_mnist_dir, store)
    (raw_dir / NAMES[0]).unlink()
    with pytest.raises(ArchiveError):
        run(raw_dir, store)
    assert list((tmp_path / "tmp").iterdir()) == []


# --- bad input: a clear error, and nothing written to the store ----------------------------


def _write_idx(folder: Path, name: str, array) -> None:
    mnist.write_idx(folder / name, np.asarray(array, dtype=np.uint8))


def _labels(folder: Path, name: str = "train-labels-idx1-ubyte"):
    return mnist.read_idx_file(folder / name)


def _missing(d):
    (d / "t10k-labels-idx1-ubyte").unlink()


def _extra(d):
    (d / "extra-labels-idx1-ubyte").write_bytes(b"")


def _duplicate(d):
    (d / "copy").mkdir()
    shutil.copy(d / "train-labels-idx1-ubyte", d / "copy")


def _bad_magic(d):
    path = d / "train-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">I", 2050) + path.read_bytes()[4:])


def _wrong_dims(d):
    _write_idx(d, "t10k-images-idx3-ubyte", np.zeros((300, 27, 27)))


def _truncated(d):
    path = d / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])


def _count_mismatch(d):
    _write_idx(d, "train-labels-idx1-ubyte", _labels(d)[:-1])


def _label_out_of_range(d):
    labels = _labels(d).copy()
    labels[7] = 10
    _write_idx(d, "train-labels-idx1-ubyte", labels)


def _labels_for_images(d):
    shutil.copy(d / "t10k-labels-idx1-ubyte", d / "t10k-images-idx3-ubyte")


def _no_records(d):
    _write_idx(d, "t10k-labels-idx1-ubyte", np.zeros(0))
    _write_idx(d, "t10k-images-idx3-ubyte", np.zeros((0, 28, 28)))


def _archive_and_files(d):
    make_zip(d / "extra.zip", {"a": b"b"})


@pytest.mark.parametrize("damage,message", [
    (_missing, r"download: missing MNIST file\(s\) t10k-labels-idx1-ubyte"),
    (_extra, "unexpected IDX file extra-labels-idx1-ubyte"),
    (_duplicate, "duplicate IDX files: copy/train-labels-idx1-ubyte, train-labels"),
    (_bad_magic, "train-labels-idx1-ubyte: magic number 2050 is neither 2051"),
    (_wrong_dims, "t10k-images-idx3-ubyte: images are 27x27, expected 28x28"),
    (_truncated, "train-images-idx3-ubyte: body truncated"),
    (_count_mismatch, "train: train-images-idx3-ubyte holds 1200 images but "
                      "train-labels-idx1-ubyte holds 1199 labels"),
    (_label_out_of_range, "train-labels-idx1-ubyte: label 10 is outside 0-9"),
    (_labels_for_images, "t10k-images-idx3-ubyte: holds labels, expected the other"),
    (_no_records, "t10k-images-idx3-ubyte: holds no records"),
    (_archive_and_files, "expected one archive or the IDX files, found extra.zip, t10k"),
])  # fmt: skip
def test_invalid_files_upload_nothing(raw_dir, store, damage, message):
    damage(raw_dir)
    spy = SpyStore(store)
    with pytest.raises(ValueError, match=message):
        run(raw_dir, spy)
    assert spy.writes == [] and list(store.list()) == []


def test_canonical_counts_are_required(small_mnist_dir, store):
    with pytest.raises(
        mnist.IdxError, match="train-images-idx3-ubyte: 1200 records, expected 60000"
    ):
        unpack_and_upload(small_mnist_dir, store, PREFIX, canonical=True)
    assert list(store.list()) == []


def test_corrupt_gz_upload_nothing(small_mnist_dir, tmp_path, store):
    src = Path(shutil.copytree(small_mnist_dir, tmp_path / "download"))
    path = src / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ArchiveError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        run(src, store)
    assert list(store.list()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_the_workdir_is_an_archive_error(small_mnist_dir, tmp_path, store):
    """Gunzipping onto a full disk (/dev/full answers every write ENOSPC) was a bare OSError:
    a traceback out of the step. It is one line naming the file, and nothing is uploaded."""
    work = tmp_path / "work"
    (work / "raw").mkdir(parents=True)
    (work / "raw" / "train-images-idx3-ubyte").symlink_to("/dev/full")
    with pytest.raises(ArchiveError, match="train-images-idx3-ubyte.gz cannot be written to .*"
                                           ": No space left on device"):  # fmt: skip
        unpack_and_upload(small_mnist_dir, store, PREFIX, canonical=False, workdir=work)
    assert list(store.list()) == []
    assert not (work / "raw" / "train-images-idx3-ubyte").exists()


def _zip_of(members, name="m.zip"):
    return lambda d: make_zip(d / name, members)


@pytest.mark.parametrize("build,message", [
    (lambda d: (d / "m.zip").write_bytes(b"PK\x03\x04 cut short"), "m.zip: corrupt or truncated"),
    (_zip_of({"../escape": b"x"}), r"m.zip: entry '../escape' escapes the extraction folder"),
    (_zip_of({"zeros": bytes(8 << 20)}), "m.zip: entry 'zeros': compression ratio above 250"),
    (lambda d: make_tar(d / "m.tar", [("link", _symlink())], "w"), "m.tar: entry 'link' is a sym"),
    (_zip_of({"readme.txt": b"no data"}), r"m.zip: missing MNIST file\(s\) t10k-images"),
])  # fmt: skip
def test_bad_archives_upload_nothing(tmp_path, store, build, message):
    src = tmp_path / "download"
    src.mkdir()
    build(src)
    with pytest.raises(ArchiveError, match=message):
        run(src, store)
    assert list(store.list()) == []


def _symlink():
    import tarfile

    info = tarfile.TarInfo("link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


@pytest.mark.parametrize("fixture", ["small_mnist_dir", "raw_small_mnist_dir"])
def test_size_limit_covers_all_four_files(request, fixture, store):
    """Each file is under the limit alone (the largest is 940816 bytes), not all four."""
    src = request.getfixturevalue(fixture)
    with pytest.raises(ArchiveError, match=r"train-images-idx3-ubyte.*limit of \d+ bytes"):
        run(src, store, limits=Limits(max_total_bytes=1_000_000))
    assert list(store.list()) == []


def test_missing_source(tmp_path, store):
    with pytest.raises(ArchiveError, match="nowhere: no such file or folder"):
        run(tmp_path / "nowhere", store)


def test_main_prints_metadata(small_mnist_dir, tmp_path, capsys):
    unpack_main.main([str(small_mnist_dir), str(tmp_path / "store"), "--not-canonical"])
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{\n") :])["counts"] == {"train": 1200, "test": 300}
