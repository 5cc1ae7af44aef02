"""The entries of a zip or tar file, each checked before a byte of it is extracted.

An archive comes from outside, so nothing in it is trusted: a name may not escape the
destination (`../`, absolute paths), links and devices are refused, a name may not come twice
(ignoring case, as macOS and Windows compare them) or be both a file and a folder, and the
count, the total size and the ratio to the archive's size are bounded (a zip bomb fails fast).
A tar is read as a stream, so each header is checked before its data is read.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from components.dataset.bounded import ArchiveError, Limits, _reading, copy_limited

_NAME_MAX = 255  # bytes in one path component, on Linux and macOS


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
