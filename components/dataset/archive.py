"""Finding the four MNIST IDX files in a folder or an archive, and extracting archives safely.

MNIST arrives as four `.gz` files, as raw IDX files, or as one archive (`.zip`, `.tar.gz`, `.tgz`,
`.tar`) holding either, possibly under a top folder (the tutorial's `Mnist-Data-Set.zip`). An
archive comes from outside, so nothing in it is trusted: an entry may not escape the destination
(`../`, absolute paths, links, devices), and the bytes it expands to are bounded in total and in
ratio to the archive's size, so a zip bomb fails fast instead of filling the disk.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from components.common.errors import StepError
from components.common.redact import printable
from components.dataset import mnist

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_IDX_NAMES = {f.name for f in mnist.FILES}
_LOOKS_LIKE_IDX = re.compile(r"idx\d-ubyte$")
_CHUNK = 1 << 20
# What a corrupt or truncated archive or gzip stream raises while being read.
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,  # a zip entry name flagged UTF-8 that is not
)
_NAME_MAX = 255  # bytes in one path component, on Linux and macOS


class ArchiveError(StepError, ValueError):
    """An archive or folder cannot be used; the message names it and the offending entry."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive or a gzip file may expand to.

    Real MNIST compresses about 5:1; deflate bombs reach about 1000:1, so the default ratio
    leaves room for synthetic test sets (about 140:1) and still stops a bomb.
    """

    max_total_bytes: int = 512 << 20
    max_ratio: float = 250.0
    max_entries: int = 10_000


def is_archive(path: str | Path) -> bool:
    """True when the file name ends in one of ARCHIVE_SUFFIXES (any case)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def idx_name(filename: str) -> str | None:
    """The MNIST file name (uncompressed) that `filename` stands for, or None.

    Accepts `.gz` and the dotted spelling some mirrors use (`train-images.idx3-ubyte`).
    """
    base = PurePosixPath(filename.replace("\\", "/")).name.lower()
    base = base.removesuffix(".gz").replace(".idx", "-idx")
    return base if base in _IDX_NAMES else None


def _is_junk(rel: PurePosixPath) -> bool:
    """macOS resource forks and hidden files that zips made on a Mac carry along."""
    return "__MACOSX" in rel.parts or any(p.startswith(".") for p in rel.parts)


def find_idx_files(folder: Path, label: str = "") -> dict[str, Path]:
    """Map each MNIST file name to its path under `folder` (raw IDX or .gz, any depth).

    A raw file is preferred over its `.gz` beside it. Missing files, one file found in two
    places, and IDX files that are not MNIST's are errors naming `label` (default: the folder).
    """
    label = label or str(folder)
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if not path.is_file() or _is_junk(rel):
            continue
        name = idx_name(path.name)
        if name:
            found.setdefault(name, []).append(path)
        elif _LOOKS_LIKE_IDX.search(path.name.lower().removesuffix(".gz")):
            raise ArchiveError(
                f"{label}: unexpected IDX file {printable(str(rel))} "
                "(not one of the four MNIST files)"
            )
    missing = sorted(_IDX_NAMES - found.keys())
    if missing:
        raise ArchiveError(f"{label}: missing MNIST file(s) {', '.join(missing)} (raw or .gz)")
    return {name: _pick(paths, folder, label) for name, paths in sorted(found.items())}


def _pick(paths: list[Path], folder: Path, label: str) -> Path:
    """One file per name: a raw file and its .gz in one folder are fine, anything else is not."""
    raw = [p for p in paths if not p.name.lower().endswith(".gz")]
    gz = [p for p in paths if p.name.lower().endswith(".gz")]
    if len(raw) > 1 or len(gz) > 1 or len({p.parent for p in paths}) > 1:
        where = ", ".join(printable(p.relative_to(folder).as_posix()) for p in paths)
        raise ArchiveError(f"{label}: duplicate IDX files: {where}")
    return (raw or gz)[0]


@contextmanager
def _reading(what: str, kind: str = "archive") -> Iterator[None]:
    """Turn the errors of a corrupt or truncated stream into one ArchiveError naming it."""
    try:
        yield
    except _READ_ERRORS as e:
        raise ArchiveError(f"{what}: corrupt or truncated {kind}: {e}") from e


def read_chunks(src: IO[bytes], what: str, kind: str = "archive") -> Iterator[bytes]:
    """Yield the bytes of `src` in chunks; a corrupt stream raises ArchiveError naming `what`."""
    while True:
        with _reading(what, kind):
            chunk = src.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def copy_limited(
    src: IO[bytes], dst: IO[bytes], limit: int, what: str, kind: str = "archive", why: str = ""
) -> int:
    """Copy `src` to `dst`, failing once more than `limit` bytes come out; returns the count."""
    done = 0
    for chunk in read_chunks(src, what, kind):
        done += len(chunk)
        if done > limit:
            raise ArchiveError(f"{what}: expands past the limit of {limit} bytes{why}")
        dst.write(chunk)
    return done


@dataclass(frozen=True)
class Entry:
    """A regular file inside an archive, already checked; `open()` streams its bytes."""

    name: str
    size: int
    open: Callable[[], IO[bytes]]


def _check_name(archive: Path, name: str) -> PurePosixPath:
    """Refuse entry names that would land outside the extraction folder or cannot be written."""
    rel = PurePosixPath(name.replace("\\", "/"))
    where = f"{archive.name}: entry {name!r}"
    if rel.is_absolute() or re.match(r"^[a-zA-Z]:", name) or ".." in rel.parts:
        raise ArchiveError(f"{where} escapes the extraction folder")
    if "\0" in name:
        raise ArchiveError(f"{where} holds a NUL character")
    if any(len(os.fsencode(part)) > _NAME_MAX for part in rel.parts):
        raise ArchiveError(f"{where} has a path component longer than {_NAME_MAX} bytes")
    return rel


def _key(rel: PurePosixPath) -> str:
    """The name as a case-insensitive, normalising file system (macOS, Windows) sees it."""
    return unicodedata.normalize("NFC", str(rel)).casefold()


class _Budget:
    """The running totals an archive is checked against, entry by entry."""

    def __init__(self, archive: Path, limits: Limits):
        self.archive, self.limits = archive, limits
        self.ratio_cap = limits.max_ratio * max(archive.stat().st_size, 1)
        self.entries = self.total = 0
        self.files: set[str] = set()
        self.folders: set[str] = set()

    def add(self, name: str, size: int, is_dir: bool = False) -> None:
        """Count one entry; raise once a limit is passed, a name comes twice (ignoring case),
        or a file and a folder would have the same path."""
        self.entries += 1
        self.total += size
        where = f"{self.archive.name}: entry {name!r}"
        rel = _check_name(self.archive, name)
        if not rel.parts and not is_dir:  # "." or "": a folder "./" is usual in a tar
            raise ArchiveError(f"{where} has no file name")
        key, parents = _key(rel), [_key(p) for p in rel.parents if p.parts]
        if key in self.files:
            raise ArchiveError(f"{where} appears twice (names are compared ignoring case)")
        if any(p in self.files for p in parents) or (not is_dir and key in self.folders):
            raise ArchiveError(f"{where} is both a file and a folder")
        (self.folders if is_dir else self.files).add(key)
        self.folders.update(parents)
        if self.entries > self.limits.max_entries:
            raise ArchiveError(f"{where}: more than {self.limits.max_entries} entries")
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError(
                f"{where}: archive expands past the limit of {self.limits.max_total_bytes} bytes"
            )
        if self.total > self.ratio_cap:
            raise ArchiveError(
                f"{where}: compression ratio above {self.limits.max_ratio:g}:1 (a zip bomb?)"
            )


def _zip_dir(info: zipfile.ZipInfo) -> bool:
    """ZipInfo.is_dir, which raises IndexError on an empty name."""
    return info.filename.endswith("/")


def _zip_entries(archive: Path, limits: Limits) -> Iterator[Entry]:
    with _reading(archive.name), zipfile.ZipFile(archive) as zf:
        infos, budget = zf.infolist(), _Budget(archive, limits)
        for info in infos:  # check every entry before the first byte is extracted
            _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"{archive.name}: entry {info.filename!r} is a symbolic link")
            budget.add(info.filename, info.file_size, _zip_dir(info))
        for info in infos:
            if not _zip_dir(info):
                yield Entry(info.filename, info.file_size, lambda i=info: zf.open(i))


def _open_tar(archive: Path) -> IO[bytes]:
    """The tar stream of a plain or gzip-compressed tar file."""
    with open(archive, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(archive, "rb") if gzipped else open(archive, "rb")  # noqa: SIM115


def _tar_entries(archive: Path, limits: Limits) -> Iterator[Entry]:
    budget = _Budget(archive, limits)
    with (
        _reading(archive.name),
        _open_tar(archive) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tf,
    ):
        for member in tf:  # stream mode: each header is checked before its data is read
            _check_name(archive, member.name)
            if member.issym() or member.islnk():
                kind = "symbolic" if member.issym() else "hard"
                raise ArchiveError(f"{archive.name}: entry {member.name!r} is a {kind} link")
            if not (member.isreg() or member.isdir()):
                raise ArchiveError(f"{archive.name}: entry {member.name!r} is not a regular file")
            budget.add(member.name, member.size, member.isdir())
            if member.isreg():
                yield Entry(member.name, member.size, lambda m=member: tf.extractfile(m))
        # Read on to the end, so that gzip checks its CRC (tarfile stops at the end marker).
        copy_limited(raw, _Discard(), limits.max_total_bytes, f"{archive.name}: trailing data")


class _Discard:
    def write(self, data: bytes) -> None:
        pass


def entries(archive: Path, limits: Limits | None = None) -> Iterator[Entry]:
    """Every regular file in `archive`, after the safety checks; read each before the next."""
    limits = limits or Limits()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive")
    if archive.name.lower().endswith(".zip"):
        yield from _zip_entries(archive, limits)
    else:
        yield from _tar_entries(archive, limits)


def safe_extract(archive: Path, dest: Path, limits: Limits | None = None) -> Path:
    """Extract the regular files of `archive` into `dest` (created), refusing anything unsafe.

    The files are extracted into a hidden folder beside `dest` and moved in only when the whole
    archive has passed, so a refused archive leaves nothing in `dest` to be taken as complete.
    """
    limits = limits or Limits()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _extract_into(archive, work, limits)
        dest.mkdir(exist_ok=True)
        clashes = sorted(p.name for p in work.iterdir() if os.path.lexists(dest / p.name))
        if clashes:
            raise ArchiveError(
                f"{archive.name}: {printable(', '.join(clashes))} already in {printable(str(dest))}"
            )
        for item in work.iterdir():
            item.rename(dest / item.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _extract_into(archive: Path, root: Path, limits: Limits) -> None:
    root, left = root.resolve(), limits.max_total_bytes
    for entry in entries(archive, limits):
        where = f"{archive.name}: entry {entry.name!r}"
        target = root.joinpath(*_check_name(archive, entry.name).parts)
        if root not in target.resolve().parents:
            raise ArchiveError(f"{where} escapes the extraction folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with _reading(where):
                src = entry.open()  # a zip checks the entry's local header here
            with src, open(target, "xb") as dst:
                left -= copy_limited(src, dst, left, where)
        except OSError as e:  # a name the file system refuses, or a full disk
            raise ArchiveError(f"{where} cannot be written: {e.strerror or e}") from e


def iter_idx_members(
    archive: Path, limits: Limits | None = None
) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield (MNIST name, stream of the raw IDX bytes) for each IDX member, raw or `.gz`."""
    for entry in entries(archive, limits):
        rel = PurePosixPath(entry.name)
        name = idx_name(entry.name)
        if name is None or _is_junk(rel):
            continue
        with _reading(f"{archive.name}: entry {entry.name!r}"):
            stream = entry.open()
        with stream:
            if entry.name.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=stream) as unzipped:
                    yield name, unzipped
            else:
                yield name, stream


def gunzip(src: Path, dest: Path, limits: Limits | None = None) -> int:
    """Decompress `src` into `dest` within the size and ratio limits; returns the bytes written.

    On failure `dest` is removed, so no partial file is left behind.
    """
    limits = limits or Limits()
    cap = min(limits.max_total_bytes, int(limits.max_ratio * max(src.stat().st_size, 1)))
    why = f" (max {limits.max_total_bytes} bytes, ratio {limits.max_ratio:g}:1: a gzip bomb?)"
    try:
        with gzip.open(src, "rb") as f, open(dest, "wb") as out:
            return copy_limited(f, out, cap, src.name, "gzip file", why)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
