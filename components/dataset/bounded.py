"""Reading compressed bytes from outside within bounds, and the one error for what is refused.

`Limits` says how much an archive or a gzip file may expand to; `copy_limited` stops a copy
once it passes a limit, and `read_chunks` turns a corrupt or truncated stream's many errors
(zlib, gzip, zip, tar) into one ArchiveError naming it. Shared by archive.py, its entry
checks (archive_entries.py) and the download step's digests, so each reads the same way.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from components.common.errors import StepError

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
