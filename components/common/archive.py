"""Finding the four MNIST IDX files in a folder or an archive, and extracting archives safely.

MNIST arrives as four `.gz` files, as raw IDX files, or as one archive (`.zip`, `.tar.gz`, `.tgz`,
`.tar`) holding either, possibly under a top folder (the tutorial's `Mnist-Data-Set.zip`). An
archive comes from outside, so nothing in it is trusted: an entry may not escape the destination
(`../`, absolute paths, links, devices), and the bytes it expands to are bounded in total and in
ratio to the archive's size, so a zip bomb fails fast instead of filling the disk.
"""

from __future__ import annotations

import gzip
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from components.common import mnist

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
)


class ArchiveError(ValueError):
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
                f"{label}: unexpected IDX file {rel} (not one of the four MNIST files)"
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
        where = ", ".join(p.relative_to(folder).as_posix() for p in paths)
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
    """Refuse entry names that would land outside the extraction folder."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or re.match(r"^[a-zA-Z]:", name) or ".." in rel.parts:
        raise ArchiveError(f"{archive.name}: entry {name!r} escapes the extraction folder")
    return rel


class _Budget:
    """The running totals an archive is checked against, entry by entry."""

    def __init__(self, archive: Path, limits: Limits):
        self.archive, self.limits = archive, limits
        self.ratio_cap = limits.max_ratio * max(archive.stat().st_size, 1)
        self.entries = self.total = 0
        self.names: set[PurePosixPath] = set()

    def add(self, name: str, size: int) -> None:
        """Count one entry; raise once a limit is passed or a name comes twice."""
        self.entries += 1
        self.total += size
        where = f"{self.archive.name}: entry {name!r}"
        rel = PurePosixPath(name.replace("\\", "/"))
        if rel in self.names:
            raise ArchiveError(f"{where} appears twice")
        self.names.add(rel)
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


def _zip_entries(archive: Path, limits: Limits) -> Iterator[Entry]:
    with _reading(archive.name), zipfile.ZipFile(archive) as zf:
        infos, budget = zf.infolist(), _Budget(archive, limits)
        for info in infos:  # check every entry before the first byte is extracted
            _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"{archive.name}: entry {info.filename!r} is a symbolic link")
            budget.add(info.filename, info.file_size)
        for info in infos:
            if not info.is_dir():
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
            budget.add(member.name, member.size)
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
    """Extract the regular files of `archive` into `dest` (created), refusing anything unsafe."""
    limits = limits or Limits()
    dest.mkdir(parents=True, exist_ok=True)
    root, left = dest.resolve(), limits.max_total_bytes
    for entry in entries(archive, limits):
        target = root.joinpath(*_check_name(archive, entry.name).parts)
        if root not in target.resolve().parents:
            raise ArchiveError(
                f"{archive.name}: entry {entry.name!r} escapes the extraction folder"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        with entry.open() as src, open(target, "xb") as dst:
            left -= copy_limited(src, dst, left, f"{archive.name}: {entry.name}")
    return dest


def iter_idx_members(
    archive: Path, limits: Limits | None = None
) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield (MNIST name, stream of the raw IDX bytes) for each IDX member, raw or `.gz`."""
    for entry in entries(archive, limits):
        rel = PurePosixPath(entry.name)
        name = idx_name(entry.name)
        if name is None or _is_junk(rel):
            continue
        with entry.open() as stream:
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
