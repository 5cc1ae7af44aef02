"""Property-based tests of archive extraction (components.dataset.archive) with hostile members.

Generated zip and tar archives whose member names and kinds come from outside: absolute paths,
`..`, backslashes, drive letters, NUL and control characters, very long and unicode names,
names equal but for case, duplicates, a file and a folder on one path, links and devices, sizes
that lie, damaged bytes. Properties: nothing is written outside the target folder (a sibling
folder stays untouched), no link is followed or made, every refusal is one printable line of
ArchiveError, and a refused archive leaves nothing in the target folder.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import unicodedata
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from components.dataset import archive
from components.dataset.bounded import ArchiveError
from tests.fuzz import FUZZ

pytestmark = pytest.mark.timeout(120)

SEGMENTS = st.one_of(
    st.sampled_from(["a", "b", "top", "Mnist-Data-Set", "t10k-labels-idx1-ubyte.gz"]),
    st.sampled_from(
        [
            "a",
            "A",
            "b",
            "..",
            ".",
            "",
            "Mnist-Data-Set",
            "train-images-idx3-ubyte",
            "C:",
            "c:",
            "x" * 300,
            "é" * 130,
            "é",
            "e\u0301",
            "ſ",
            "S",
            "\x00",
            "nul\x00x",
            "\n",
            "\x1b[31m",
            "\u202e",
            "dev",
            "con",
            "~",
        ]
    ),  # fmt: skip
    st.text(max_size=6),
)
PREFIXES = st.sampled_from(
    [""] * 12 + ["/", "//", "C:\\", "c:/", "\\\\server\\share\\", "./", "../"]
)


@st.composite
def member_names(draw) -> str:
    parts = draw(st.lists(SEGMENTS, min_size=1, max_size=4))
    sep = draw(st.sampled_from(["/", "/", "\\"]))
    return draw(PREFIXES) + sep.join(parts) + draw(st.sampled_from(["", "", "/"]))


KINDS = st.sampled_from(["file"] * 8 + ["dir"] * 2 + ["symlink", "hardlink", "device", "fifo"])
LINK_TARGETS = st.sampled_from(["../outside", "/etc/passwd", "a", "../../sibling/keep.txt", "."])


@st.composite
def members(draw) -> list[tuple[str, str, bytes, str]]:
    """[(name, kind, data, link target)], with names reused now and then (duplicates)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        reuse = out and draw(st.integers(0, 4)) == 0
        name = draw(st.sampled_from([m[0] for m in out])) if reuse else draw(member_names())
        out.append((name, draw(KINDS), draw(st.binary(max_size=64)), draw(LINK_TARGETS)))
    return out


def make_zip(path: Path, items) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # duplicate names
        for name, kind, data, target in items:
            info = zipfile.ZipInfo(name)
            mode = {"symlink": stat.S_IFLNK, "device": stat.S_IFCHR, "fifo": stat.S_IFIFO}
            info.external_attr = (mode.get(kind, stat.S_IFREG) | 0o644) << 16
            if kind == "dir" and not name.endswith("/"):
                info = zipfile.ZipInfo(name + "/")
            zf.writestr(info, target.encode() if kind == "symlink" else data)


def make_tar(path: Path, items, mode: str) -> None:
    types = {
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "device": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, target in items:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = types[kind], target
                tf.addfile(info)


def lie_about_size(path: Path, fmt: str, size: int) -> None:
    """Rewrite the first member's declared size (and the header checksum for tar)."""
    data = bytearray(path.read_bytes())
    if fmt == "zip":
        at = data.find(b"PK\x01\x02")  # the central directory's uncompressed size
        if at >= 0:
            data[at + 24 : at + 28] = (size % 2**32).to_bytes(4, "little")
    elif fmt == "tar":
        at = 0
        while at + 512 <= len(data) and data[at + 156 : at + 157] in (b"x", b"g"):
            at += 512 + 512 * (
                (int(data[at + 124 : at + 135].strip(b"\0 ") or b"0", 8) + 511) // 512
            )
        if at + 512 <= len(data) and data[at : at + 1] != b"\0":
            data[at + 124 : at + 136] = b"%011o\0" % (size % 8**11)
            data[at + 148 : at + 156] = b" " * 8
            data[at + 148 : at + 156] = b"%06o\0 " % sum(data[at : at + 512])
    path.write_bytes(bytes(data))


def damage(path: Path, how: str, where: int) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip" and data:
        data[where % len(data)] ^= 0xFF
    elif how == "truncate":
        data = data[: where % max(len(data), 1)]
    path.write_bytes(bytes(data))


def snapshot(folder: Path, skip: Path) -> dict[str, tuple]:
    """Every path under `folder` but `skip`, with its type and content (links not followed)."""
    seen = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top, name)
            if path == skip or skip in path.parents:
                continue
            info = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
            seen[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode), content)
    return seen


REASONS = ["escapes", "twice", "file and a folder", "link", "not a regular", "NUL", "longer than",
           "no file name", "corrupt", "cannot be written", "expands"]  # fmt: skip


def printable(text: str) -> bool:
    return all(c.isprintable() for c in text)


def expected_files(items, fmt: str) -> dict[str, bytes]:
    """What a clean extraction holds: each regular file at its name, `\\` read as `/`."""
    files = {}
    for name, kind, data, _ in items:
        if fmt == "zip" and name.endswith("/"):  # a folder in a zip, whatever its mode says
            continue
        if kind == "file" or (fmt == "zip" and kind not in ("dir", "symlink")):  # zip: mode only
            files[str(PurePosixPath(name.replace("\\", "/")))] = data
    return files


@FUZZ
@given(
    items=members(),
    fmt=st.sampled_from(["zip", "tar", "tar.gz"]),
    lie=st.sampled_from([None] * 8 + [0, 1, 63, 65, 513, 2**32 - 1, 2**33]),
    harm=st.sampled_from(["none", "none", "none", "flip", "truncate"]),
    where=st.integers(0, 10**6),
)
@example(items=[("a", "file", b"1", "."), ("a/b", "file", b"2", ".")], fmt="zip", lie=None,
         harm="none", where=0)  # fmt: skip
@example(items=[("a", "file", b"1", "."), ("a/b", "file", b"2", ".")], fmt="tar", lie=None,
         harm="none", where=0)  # fmt: skip
@example(items=[("x" * 300, "file", b"", ".")], fmt="tar", lie=None, harm="none", where=0)
@example(items=[("a" * 100 + "\x00b", "file", b"", ".")], fmt="tar", lie=None, harm="none",
         where=0)  # fmt: skip
@example(items=[("ok", "file", b"fine", "."), ("../evil", "file", b"", ".")], fmt="tar",
         lie=None, harm="none", where=0)  # fmt: skip
@example(items=[("A", "file", b"1", "."), ("a", "file", b"2", ".")], fmt="zip", lie=None,
         harm="none", where=0)  # fmt: skip
@example(items=[("a", "hardlink", b"", ".")], fmt="zip", lie=None, harm="none", where=0)
@example(items=[("", "file", b"", ".")], fmt="zip", lie=None, harm="none", where=0)
@example(items=[("a", "file", b"", ".")], fmt="zip", lie=None, harm="flip", where=0)
def test_extraction_stays_inside_and_refusals_leave_nothing(
    tmp_path_factory, items, fmt, lie, harm, where
):
    base = tmp_path_factory.mktemp("arc")
    (base / "sibling").mkdir()
    (base / "sibling" / "keep.txt").write_bytes(b"untouched")
    (base / "out").mkdir()
    path = base / f"m.{fmt}"
    if fmt == "zip":
        make_zip(path, items)
    else:
        make_tar(path, items, "w:gz" if fmt == "tar.gz" else "w")
    if lie is not None and fmt != "tar.gz":
        lie_about_size(path, fmt, lie)
    damage(path, harm, where)
    before = snapshot(base, skip=base / "out")
    dest = base / "out" / "dest"
    try:
        archive.safe_extract(path, dest)
    except ArchiveError as e:
        assert type(e) is ArchiveError
        message = str(e)
        assert message.startswith(f"{path.name}: ") and printable(message), message
        assert not dest.exists() or not any(dest.iterdir()), "a refused archive left files"
        assert not any((base / "out").iterdir()) or list((base / "out").iterdir()) == [dest]
        extracted = None
        event("refused: " + next((r for r in REASONS if r in message), "other"))
    else:
        event("extracted")
        extracted = {
            str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()
        }
    assert snapshot(base, skip=base / "out") == before, "something outside dest changed"
    for top, dirs, files in os.walk(base / "out"):
        for name in dirs + files:
            assert not Path(top, name).is_symlink(), f"a link was made: {Path(top, name)}"
    if extracted is None or harm != "none" or lie is not None or any("\0" in m[0] for m in items):
        return  # damage may go unseen in a tar; NUL ends a name in zip and ustar headers
    assert extracted == expected_files(items, fmt)
    keys = [unicodedata.normalize("NFC", k).casefold() for k in extracted]
    assert len(keys) == len(set(keys)), "two files the same on a case-insensitive file system"


def test_a_file_and_a_folder_on_one_path_is_refused(tmp_path):
    """Shrunk: members "a" and "a/b" made mkdir raise FileExistsError, not ArchiveError."""
    path = tmp_path / "m.zip"
    make_zip(path, [("a", "file", b"1", ""), ("a/b", "file", b"2", "")])
    with pytest.raises(ArchiveError, match=r"^m\.zip: entry 'a/b' is both a file and a folder$"):
        archive.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path):
    """Shrunk: a 300-byte name made open() raise OSError (File name too long)."""
    path = tmp_path / "m.tar"
    make_tar(path, [("x" * 300, "file", b"", "")], "w")
    with pytest.raises(ArchiveError, match="longer than 255 bytes"):
        archive.safe_extract(path, tmp_path / "out")


def test_a_nul_in_a_pax_name_is_refused(tmp_path):
    """Shrunk: a long name (so it goes to a pax header, which keeps NUL) made open() raise
    ValueError: embedded null byte."""
    path = tmp_path / "m.tar"
    make_tar(path, [("a" * 100 + "\x00b", "file", b"", "")], "w")
    with pytest.raises(ArchiveError, match=r"entry 'a+\\x00b' holds a NUL character$"):
        archive.safe_extract(path, tmp_path / "out")


def test_a_tar_refused_late_leaves_nothing_behind(tmp_path):
    """Shrunk: a tar is read as a stream, so "ok" was extracted before "../evil" was seen, and
    stayed in the target folder as if the extraction had worked."""
    path = tmp_path / "m.tar"
    make_tar(path, [("ok", "file", b"fine", ""), ("../evil", "file", b"", "")], "w")
    with pytest.raises(ArchiveError, match="escapes"):
        archive.safe_extract(path, tmp_path / "out" / "dest")
    assert list((tmp_path / "out").iterdir()) == []


def test_names_equal_but_for_case_are_refused(tmp_path):
    """ "A" and "a" are one file on macOS and Windows, where `run --local` also extracts."""
    path = tmp_path / "m.zip"
    make_zip(path, [("top/A", "file", b"1", ""), ("top/a", "file", b"2", "")])
    with pytest.raises(ArchiveError, match="entry 'top/a' appears twice"):
        archive.safe_extract(path, tmp_path / "out")


def test_a_member_name_in_an_error_is_escaped(tmp_path):
    path = tmp_path / "m.tar"
    make_tar(path, [("x\n\x1b[31m/../../evil", "file", b"", "")], "w")
    with pytest.raises(ArchiveError) as raised:
        archive.safe_extract(path, tmp_path / "out")
    assert (
        str(raised.value) == r"m.tar: entry 'x\n\x1b[31m/../../evil' escapes the extraction folder"
    )


def test_extracting_into_a_folder_that_has_the_files_already(tmp_path):
    """A second extraction into the same folder: one clear error, not FileExistsError."""
    path = tmp_path / "m.zip"
    make_zip(path, [("top/x", "file", b"1", "")])
    archive.safe_extract(path, tmp_path / "out")
    with pytest.raises(ArchiveError, match=r"^m\.zip: top already in "):
        archive.safe_extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "x").read_bytes() == b"1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_empty_zip_entry_name_is_refused(tmp_path):
    """Shrunk: a zip entry named "" made ZipInfo.is_dir raise IndexError."""
    path = tmp_path / "m.zip"
    make_zip(path, [("", "file", b"", "")])
    with pytest.raises(ArchiveError, match=r"^m\.zip: entry '' has no file name$"):
        archive.safe_extract(path, tmp_path / "out")


def test_a_damaged_local_header_is_an_archive_error(tmp_path):
    """Shrunk: the first byte of a zip flipped made zf.open raise BadZipFile out of
    safe_extract (the central directory was fine, the entry's own header was not)."""
    path = tmp_path / "m.zip"
    make_zip(path, [("a", "file", b"", "")])
    damage(path, "flip", 0)
    with pytest.raises(ArchiveError, match=r"^m\.zip: entry 'a': corrupt or truncated archive"):
        archive.safe_extract(path, tmp_path / "out")
    make_zip(path, [("train-images-idx3-ubyte", "file", b"", "")])  # what download reads
    damage(path, "flip", 0)
    with pytest.raises(ArchiveError, match=r"^m\.zip: entry 'train-images-idx3-ubyte': corrupt"):
        list(archive.iter_idx_members(path))


@pytest.mark.parametrize("order", [["a", "a/b"], ["a/b", "a"]])
def test_a_file_and_a_folder_on_one_path_in_either_order(tmp_path, order):
    path = tmp_path / "m.tar"
    make_tar(path, [(name, "file", b"x", "") for name in order], "w")
    with pytest.raises(ArchiveError, match=f"entry '{order[1]}' is both a file and a folder$"):
        archive.safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_name_flagged_utf8_that_is_not_is_an_archive_error(tmp_path):
    """Found reading zipfile, not by the property: ZipFile() decodes such a name strictly and
    UnicodeDecodeError came out of safe_extract."""
    path = tmp_path / "m.zip"
    make_zip(path, [("é", "file", b"x", "")])  # zipfile sets the UTF-8 flag for it
    path.write_bytes(path.read_bytes().replace("é".encode(), b"\xff\xfe"))
    with pytest.raises(ArchiveError, match=r"^m\.zip: corrupt or truncated archive: "):
        archive.safe_extract(path, tmp_path / "out")
