"""Opening a download source once: a local file, or an HTTP(S) URL through requests.

Each opener returns a `_Response` (the chunks, where they start, the size when known) and
sorts every failure into final (DownloadError: a 404, a malformed URL, an unreadable file)
or worth another try (_Transient: a 5xx, a reset, a timeout, a body cut short). Retrying,
resuming and the size and time bounds are transfer.py's business; S3 is s3_source.py's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import StepError
from components.common.redact import redact_url as redact

_CHUNK = 1 << 20


class DownloadError(StepError, RuntimeError):
    """The source cannot be fetched; the message names it (never with credentials)."""


class _Transient(DownloadError):
    """A fault worth another try; `restart` when the partial bytes cannot be resumed."""

    def __init__(self, reason: str, restart: bool = False):
        super().__init__(reason)
        self.restart = restart


@dataclass
class _Response:
    chunks: Iterator[bytes]
    offset: int  # where in the file the chunks start: 0 when a byte range was ignored
    total: int | None  # size of the whole file, when the server says
    content_type: str = ""


def _guarded(chunks: Iterable[bytes], errors: tuple[type[BaseException], ...]) -> Iterator[bytes]:
    """Re-raise a transport's mid-body failures as _Transient, so the body is resumed."""
    try:
        yield from chunks
    except errors as e:
        raise _Transient(f"transfer interrupted ({type(e).__name__})") from e


def _content_range_total(value: str | None) -> int | None:
    """The total size in a `bytes start-end/total` header, if it gives one."""
    return _size((value or "").rpartition("/")[2])


def _size(value) -> int | None:
    """A size a server sent, or None unless it is ASCII digits: str.isdigit() also takes '²',
    which int() refuses with a bare ValueError."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() else None


def _open_local(path: Path, offset: int) -> _Response:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by _file_chunks
    except OSError as e:
        raise DownloadError(f"{path}: cannot be read: {e.strerror or type(e).__name__}") from None
    f.seek(offset)

    def _file_chunks() -> Iterator[bytes]:
        with f:
            yield from iter(lambda: f.read(_CHUNK), b"")

    return _Response(_file_chunks(), offset, os.fstat(f.fileno()).st_size)


# connection_fault's phrases; a local run that meets one offers --source (pipeline/local_run.py)
UNRESOLVED = "the host name does not resolve (no network, or a wrong host)"
REFUSED = "connection refused (nothing listens at that host and port)"
TIMED_OUT = "timed out"
OFFLINE = (UNRESOLVED, REFUSED, TIMED_OUT)


def connection_fault(exc: BaseException) -> str:
    """What went wrong under a connection error, in words that say what to check: the name
    did not resolve (no network, or a wrong host), the port refused, a timeout; else the
    error's class. Fixed phrases only: never the error's text, which may hold a URL."""
    import socket

    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return UNRESOLVED
        if isinstance(e, ConnectionRefusedError):
            return REFUSED
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:  # urllib3's, requests'
            return TIMED_OUT
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return type(exc).__name__


def _open_http(session, url: str, offset: int, timeout: float) -> _Response:
    import requests
    import urllib3

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    # A request that cannot be formed will never succeed: no retry.
    final = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
             requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)  # fmt: skip
    try:
        r = session.get(url, headers=headers, stream=True, timeout=(min(timeout, 10), timeout))
    except final as e:
        raise DownloadError(f"{redact(url)}: not a valid URL ({type(e).__name__})") from None
    except requests.RequestException as e:
        raise _Transient(f"{type(e).__name__}: {connection_fault(e)}") from e
    status = r.status_code
    if status not in (200, 206):
        r.close()
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status} {r.reason}")
        if status == 416:
            raise _Transient("HTTP 416: byte range refused", restart=True)
        raise DownloadError(f"{redact(url)}: HTTP {status} {r.reason} (not retried)")
    start, total = 0, r.headers.get("Content-Length")
    if status == 206:
        start, total = offset, _content_range_total(r.headers.get("Content-Range"))
    # read1 returns what has arrived, so a trickling server cannot hold one read for long;
    # the bytes are taken as served, never decoded.
    chunks = iter(lambda: r.raw.read1(_CHUNK, decode_content=False), b"")
    errors = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)
    total = _size(total)
    return _Response(_guarded(chunks, errors), start, total, r.headers.get("Content-Type", ""))
