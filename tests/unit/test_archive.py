"""Finding the MNIST files in folders and archives, and extracting archives safely."""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from components.dataset import archive, mnist
from components.dataset.bounded import ArchiveError, Limits

NAMES = [f.name for f in mnist.FILES]


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate names are a case under test
        for name, data in members.items() if isinstance(members, dict) else members:
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members, mode: str = "w:gz") -> Path:
    """`members`: {name: bytes} or [(name, bytes | TarInfo)] for links and special files."""
    items = members.items() if isinstance(members, dict) else members
    with tarfile.open(path, mode) as tf:
        for name, data in items:
            if isinstance(data, tarfile.TarInfo):
                tf.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def gz_members(folder: Path, top: str = "") -> dict[str, bytes]:
    return {f"{top}{f.gz_name}": (folder / f.gz_name).read_bytes() for f in mnist.FILES}


def raw_members(folder: Path, top: str = "") -> dict[str, bytes]:
    return {f"{top}{f.name}": (folder / f.name).read_bytes() for f in mnist.FILES}


@pytest.mark.parametrize(
    "filename,expected",
    [
        ("train-images-idx3-ubyte", "train-images-idx3-ubyte"),
        ("top/t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"),
        ("Train-Images.idx3-ubyte", "train-images-idx3-ubyte"),  # dotted mirror spelling
        ("README.md", None),
        ("train-images-idx3-ubyte.zip", None),
    ],
)
def test_idx_name(filename, expected):
    assert archive.idx_name(filename) == expected


@pytest.mark.parametrize(
    "name,expected",
    [("a.zip", True), ("A.TAR.GZ", True), ("a.tgz", True), ("a.tar", True), ("a.gz", False)],
)
def test_is_archive(name, expected):
    assert archive.is_archive(name) is expected


def test_find_gz_files(small_mnist_dir):
    found = archive.find_idx_files(small_mnist_dir)
    assert found == {f.name: small_mnist_dir / f.gz_name for f in mnist.FILES}


def test_find_prefers_raw_beside_gz_and_ignores_junk(
    tmp_path, small_mnist_dir, raw_small_mnist_dir
):
    top = tmp_path / "Mnist-Data-Set"
    shutil.copytree(small_mnist_dir, top)
    for f in mnist.FILES:
        shutil.copy(raw_small_mnist_dir / f.name, top / f.name)
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._train-images-idx3-ubyte").write_bytes(b"junk")
    (top / "._t10k-images-idx3-ubyte").write_bytes(b"junk")
    (top / "README.md").write_text("MNIST")
    assert archive.find_idx_files(tmp_path) == {n: top / n for n in NAMES}


def test_find_missing_names_the_files(tmp_path, small_mnist_dir):
    shutil.copytree(small_mnist_dir, tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ArchiveError, match=r"my\.zip: missing MNIST file\(s\) t10k-labels"):
        archive.find_idx_files(tmp_path / "d", label="my.zip")


def test_find_extra_idx_file(tmp_path, small_mnist_dir):
    shutil.copytree(small_mnist_dir, tmp_path / "d")
    (tmp_path / "d" / "extra-labels-idx1-ubyte.gz").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="unexpected IDX file extra-labels-idx1-ubyte.gz"):
        archive.find_idx_files(tmp_path / "d")


def test_find_duplicate_in_two_folders(tmp_path, small_mnist_dir):
    shutil.copytree(small_mnist_dir, tmp_path / "d")
    (tmp_path / "d" / "copy").mkdir()
    shutil.copy(small_mnist_dir / "train-labels-idx1-ubyte.gz", tmp_path / "d" / "copy")
    with pytest.raises(ArchiveError, match="duplicate IDX files: copy/train-labels"):
        archive.find_idx_files(tmp_path / "d")


@pytest.mark.parametrize("name,maker", [
    ("m.zip", make_zip),
    ("m.tar.gz", make_tar),
    ("m.tgz", make_tar),
    ("m.tar", lambda p, m: make_tar(p, m, "w")),
])  # fmt: skip
def test_safe_extract_round_trip(tmp_path, raw_small_mnist_dir, name, maker):
    members = raw_members(raw_small_mnist_dir, top="Mnist-Data-Set/")
    path = maker(tmp_path / name, members)
    out = archive.safe_extract(path, tmp_path / "out")
    for member, data in members.items():
        assert (out / member).read_bytes() == data
    assert archive.find_idx_files(out) == {n: out / "Mnist-Data-Set" / n for n in NAMES}


@pytest.mark.parametrize("maker", [make_zip, make_tar])
@pytest.mark.parametrize("evil", ["../evil", "ok/../../evil", "/tmp/abs-evil", "C:/evil"])
def test_entries_escaping_the_folder_are_refused(tmp_path, maker, evil):
    path = maker(
        tmp_path / ("bad.zip" if maker is make_zip else "bad.tar.gz"),
        {"ok.txt": b"fine", evil: b"evil"},
    )
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ArchiveError, match=rf"{path.name}: entry '{evil}' escapes"):
        archive.safe_extract(path, dest)
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("maker", [make_zip, make_tar])
def test_listing_refuses_escaping_entries_before_any_read(tmp_path, maker):
    """entries() is what the download step hashes through: it must refuse them too."""
    path = maker(tmp_path / ("bad.zip" if maker is make_zip else "bad.tar"), {"a/../../x": b"x"})
    with pytest.raises(ArchiveError, match="entry 'a/../../x' escapes"):
        list(archive.entries(path))


def _link(name: str, kind: bytes, target: str = "/etc/passwd") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("info,message", [
    (_link("train-images-idx3-ubyte", tarfile.SYMTYPE), "is a symbolic link"),
    (_link("train-images-idx3-ubyte", tarfile.LNKTYPE, "ok.txt"), "is a hard link"),
    (_link("fifo", tarfile.FIFOTYPE, ""), "is not a regular file"),
    (_link("dev", tarfile.CHRTYPE, ""), "is not a regular file"),
])  # fmt: skip
def test_tar_links_and_devices_are_refused(tmp_path, info, message):
    path = make_tar(tmp_path / "links.tar", [("ok.txt", b"fine"), (info.name, info)], "w")
    with pytest.raises(ArchiveError, match=f"links.tar: entry '{info.name}' {message}"):
        archive.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out" / info.name).exists()


def test_zip_symlink_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("train-images-idx3-ubyte")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(
        ArchiveError, match="link.zip: entry 'train-images-idx3-ubyte' is a symbolic"
    ):
        archive.safe_extract(path, tmp_path / "out")


@pytest.mark.parametrize("maker,name", [(make_zip, "bomb.zip"), (make_tar, "bomb.tar.gz")])
def test_bomb_is_refused_by_ratio_before_extraction(tmp_path, maker, name):
    path = maker(tmp_path / name, {"zeros": bytes(8 << 20)})  # ~1000:1, default limits
    with pytest.raises(ArchiveError, match=f"{name}: entry 'zeros': compression ratio above 250"):
        archive.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros").exists()


def test_total_size_limit(tmp_path, raw_small_mnist_dir):
    path = make_zip(tmp_path / "m.zip", raw_members(raw_small_mnist_dir), zipfile.ZIP_STORED)
    with pytest.raises(ArchiveError, match=r"m.zip: entry .*expands past the limit of 100000"):
        archive.safe_extract(path, tmp_path / "out", Limits(max_total_bytes=100_000))


def test_entry_count_limit(tmp_path):
    path = make_zip(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(5)})
    with pytest.raises(ArchiveError, match="many.zip: entry 'f3': more than 3 entries"):
        archive.safe_extract(path, tmp_path / "out", Limits(max_entries=3))


def test_duplicate_entry_is_refused(tmp_path):
    path = make_zip(tmp_path / "dup.zip", [("a/x", b"1"), ("a/x", b"2")])
    with pytest.raises(ArchiveError, match="dup.zip: entry 'a/x' appears twice"):
        archive.safe_extract(path, tmp_path / "out")


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _flip_middle_byte(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("name,damage", [
    ("cut.zip", _truncated),
    ("cut.tar.gz", _truncated),
    ("cut.tar", _truncated),
    ("flipped.zip", _flip_middle_byte),
    ("flipped.tar.gz", _flip_middle_byte),
])  # fmt: skip
def test_corrupt_or_truncated_archive_names_it(tmp_path, raw_small_mnist_dir, name, damage):
    members = raw_members(raw_small_mnist_dir)
    if name.endswith(".zip"):
        path = make_zip(tmp_path / name, members, zipfile.ZIP_STORED)
    else:
        path = make_tar(tmp_path / name, members, "w" if name.endswith(".tar") else "w:gz")
    damage(path)
    with pytest.raises(ArchiveError, match=f"{name}.*corrupt or truncated archive"):
        archive.safe_extract(path, tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"not an archive at all"])
def test_garbage_archive(tmp_path, content):
    for name in ("g.zip", "g.tar.gz"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ArchiveError, match=f"{name}: corrupt or truncated archive"):
            archive.safe_extract(tmp_path / name, tmp_path / "out")


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="no such archive"):
        archive.safe_extract(tmp_path / "nope.zip", tmp_path / "out")


@pytest.mark.parametrize("maker,name", [(make_zip, "m.zip"), (make_tar, "m.tar.gz")])
def test_iter_idx_members_streams_raw_content(
    tmp_path, small_mnist_dir, raw_small_mnist_dir, maker, name
):
    members = gz_members(small_mnist_dir, "top/")
    members["top/t10k-labels-idx1-ubyte"] = (
        raw_small_mnist_dir / "t10k-labels-idx1-ubyte"
    ).read_bytes()
    members["__MACOSX/top/._train-images-idx3-ubyte"] = b"junk"
    path = maker(tmp_path / name, members)
    got = {}
    for idx, stream in archive.iter_idx_members(path):
        got.setdefault(idx, []).append(stream.read())
    assert sorted(got) == sorted(NAMES)
    for idx in NAMES:
        assert all(data == (raw_small_mnist_dir / idx).read_bytes() for data in got[idx])
    assert len(got["t10k-labels-idx1-ubyte"]) == 2  # the raw file and its .gz


def test_gunzip(tmp_path, small_mnist_dir, raw_small_mnist_dir):
    name = "train-images-idx3-ubyte"
    n = archive.gunzip(small_mnist_dir / f"{name}.gz", tmp_path / name)
    assert (tmp_path / name).read_bytes() == (raw_small_mnist_dir / name).read_bytes()
    assert n == (tmp_path / name).stat().st_size


def test_gunzip_truncated(tmp_path, small_mnist_dir):
    src = tmp_path / "train-images-idx3-ubyte.gz"
    shutil.copy(small_mnist_dir / src.name, src)
    _truncated(src)
    with pytest.raises(ArchiveError, match=f"{src.name}: corrupt or truncated gzip file"):
        archive.gunzip(src, tmp_path / "out")


def test_gunzip_not_gzip(tmp_path):
    src = tmp_path / "train-labels-idx1-ubyte.gz"
    src.write_bytes(b"plain text, not gzip")
    with pytest.raises(ArchiveError, match=f"{src.name}: corrupt or truncated gzip file"):
        archive.gunzip(src, tmp_path / "out")


def test_gunzip_bomb(tmp_path):
    src = tmp_path / "bomb.gz"
    src.write_bytes(gzip.compress(bytes(16 << 20), 9))
    with pytest.raises(ArchiveError, match=r"bomb.gz: expands past the limit .*gzip bomb"):
        archive.gunzip(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
