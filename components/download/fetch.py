"""The download step: fetch MNIST from HTTP(S), S3 or a local path, and verify it.

A source is either a base (URL, `s3://` prefix or folder) holding the four `.gz` files, or one
archive (`.zip`, `.tar.gz`, `.tgz`, `.tar`). Files are fetched as-is into a destination folder,
each under a hidden temporary name that is renamed only once every file has arrived and passed
its checks, so a failed run never leaves a file that looks complete.

Transient faults (5xx, resets, timeouts, a body cut short) are retried with exponential backoff,
bounded in count and in time, resuming with a byte range where the server honours one. A 404 or
403 is final. Checksums are the sha256 of the decompressed IDX content, which the original
release and every mirror share even where their gzip wrappers differ.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from components.common.errors import StepError
from components.common.log import Progress, get_logger
from components.common.provenance import digest_of
from components.common.redact import malformed
from components.common.redact import redact_url as redact
from components.common.units import human_bytes
from components.dataset import archive, mnist
from components.dataset.bounded import read_chunks
from components.store import join, parse_s3_uri, s3

DEFAULT_MAX_BYTES = 200 << 20  # the four MNIST .gz files are about 11 MB
_CHUNK = 1 << 20
_SPECS = {f.name: f for f in mnist.FILES}
log = get_logger("download")


class DownloadError(StepError, RuntimeError):
    """The source cannot be fetched; the message names it (never with credentials)."""


class ChecksumError(DownloadError):
    """A fetched file is not the original MNIST file it is named after."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient faults are retried: `attempts` tries in all, within `deadline` seconds.

    The deadline holds while a body is being read, not only between tries, and a transfer
    slower than `min_speed` bytes/s over `speed_window` seconds is cut and retried (resumed),
    so a server that trickles or stalls cannot hold a step for longer than the deadline.
    `from_env` reads MNIST_DOWNLOAD_DEADLINE, MNIST_DOWNLOAD_TIMEOUT and
    MNIST_DOWNLOAD_SPEED_WINDOW, so tests can use short bounds.
    """

    attempts: int = 6
    backoff: float = 1.0  # first delay in seconds; doubles on each retry
    max_delay: float = 30.0
    deadline: float = 600.0  # for all the tries of one file together
    timeout: float = 60.0  # for connecting, and for each read
    min_speed: float = 1024.0  # bytes per second...
    speed_window: float = 60.0  # ...averaged over this many seconds

    @classmethod
    def from_env(cls) -> RetryPolicy:
        env = os.environ.get
        return cls(
            deadline=float(env("MNIST_DOWNLOAD_DEADLINE", cls.deadline)),
            timeout=float(env("MNIST_DOWNLOAD_TIMEOUT", cls.timeout)),
            speed_window=float(env("MNIST_DOWNLOAD_SPEED_WINDOW", cls.speed_window)),
        )


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
    total = (value or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


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
        raise _Transient(type(e).__name__) from e
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
    total = int(total) if total is not None and str(total).isdigit() else None
    return _Response(_guarded(chunks, errors), start, total, r.headers.get("Content-Type", ""))


def s3_client(endpoint: str = "", timeout: float = 60.0):
    """The project's S3 client (s3.py) with one try per call: retried here, with resume."""
    return s3.client(endpoint, s3.Bounds(connect=min(timeout, 10), read=timeout, attempts=1))


def _open_s3(client, uri: str, offset: int) -> _Response:
    from botocore import exceptions as bx

    bucket, key = parse_s3_uri(uri)
    where = f"{uri} at {client.meta.endpoint_url}"
    transient = (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)
    try:
        kwargs = {"Range": f"bytes={offset}-"} if offset else {}
        resp = client.get_object(Bucket=bucket, Key=key, **kwargs)
    except bx.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "?")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in ("SlowDown", "RequestTimeout"):
            raise _Transient(f"{code} (HTTP {status})") from None
        raise DownloadError(f"{where}: {code} (HTTP {status}, not retried)") from None
    except transient as e:
        raise _Transient(type(e).__name__) from None
    except bx.BotoCoreError as e:
        raise DownloadError(f"{where}: {type(e).__name__}") from None
    total = _content_range_total(resp.get("ContentRange")) or resp.get("ContentLength")
    chunks = _guarded(resp["Body"].iter_chunks(_CHUNK), transient)
    return _Response(chunks, offset if resp.get("ContentRange") else 0, total)


class _Fetcher:
    """Fetches files one by one under a shared size limit, retrying transient faults."""

    def __init__(self, max_bytes: int, policy: RetryPolicy, s3_endpoint: str):
        self.max_bytes, self.policy, self.s3_endpoint = max_bytes, policy, s3_endpoint
        self.used = 0
        self._session = self._s3 = None

    def _open(self, location: str, offset: int, timeout: float) -> _Response:
        scheme = urlsplit(location).scheme
        if scheme in ("http", "https"):
            if self._session is None:
                import requests

                self._session = requests.Session()
            return _open_http(self._session, location, offset, timeout)
        if scheme == "s3":
            if self._s3 is None:
                self._s3 = s3_client(self.s3_endpoint, self.policy.timeout)
            return _open_s3(self._s3, location, offset)
        return _open_local(Path(location), offset)

    def fetch(self, location: str, target: Path) -> int:
        """Fetch `location` into `target`, retrying with backoff; returns the size."""
        label, start = redact(location), time.monotonic()
        attempt = 0
        with open(target, "wb") as out:
            while True:
                attempt += 1
                try:
                    size = self._transfer(location, label, out, start + self.policy.deadline)
                    self.used += size
                    return size
                except _Transient as e:
                    self._backoff(label, e, attempt, time.monotonic() - start, out)

    def _backoff(self, label: str, error: _Transient, attempt: int, elapsed: float, out) -> None:
        """Sleep before the next try, or raise once the count or time budget is spent."""
        p = self.policy
        delay = min(p.backoff * 2 ** (attempt - 1), p.max_delay)
        if attempt >= p.attempts or elapsed + delay > p.deadline:
            raise DownloadError(
                f"{label}: giving up after {attempt} attempt(s) in {elapsed:.0f} s "
                f"(bounds: {p.attempts} attempts, {p.deadline:g} s): {error}"
            ) from None
        if error.restart:
            out.seek(0)
            out.truncate()
        log.warning(
            "%s: %s; retry %d of %d in %.1fs from byte %d",
            label,
            error,
            attempt,
            p.attempts - 1,
            delay,
            out.tell(),
        )
        time.sleep(delay)

    def _transfer(self, location: str, label: str, out: IO[bytes], deadline: float) -> int:
        """One try: write the body to `out`, resuming at its current end when allowed.

        No read may outlast `deadline` (a monotonic time) by more than the read timeout.
        """
        timeout = max(min(self.policy.timeout, deadline - time.monotonic()), 0.1)
        resp = self._open(location, out.tell(), timeout)
        if resp.offset != out.tell():
            log.info("%s: byte range not honoured; starting again from 0", label)
            out.seek(0)
            out.truncate()
        if resp.content_type.lower().startswith("text/html"):
            raise DownloadError(f"{label}: served an HTML page (Content-Type {resp.content_type})")
        left = self.max_bytes - self.used
        if resp.total is not None and resp.total > left:
            raise self._too_large(label)
        progress = Progress(log, f"download {label}", resp.total or 0, unit="bytes")
        if out.tell():
            progress.update(out.tell())
        pace = _Pace(self.policy, deadline, label)
        for chunk in resp.chunks:
            if out.tell() == 0 and chunk.lstrip()[:1] == b"<":
                raise DownloadError(f"{label}: served an HTML or XML page, not data")
            out.write(chunk)
            if out.tell() > left:
                raise self._too_large(label)
            progress.update(len(chunk))
            pace.check(len(chunk), out.tell(), resp.total)
        return self._finish(label, out, resp.total)

    def _finish(self, label: str, out: IO[bytes], total: int | None) -> int:
        size = out.tell()
        if total is not None and size < total:
            raise _Transient(f"body ended after {size} of {total} bytes")
        if size == 0:
            raise DownloadError(f"{label}: is empty (0 bytes)")
        return size

    def _too_large(self, label: str) -> DownloadError:
        return DownloadError(
            f"{label}: the source is larger than the limit of {self.max_bytes} bytes (max_bytes)"
        )


class _Pace:
    """Cuts a transfer that passes the deadline, or that stays under the speed floor."""

    def __init__(self, policy: RetryPolicy, deadline: float, label: str):
        self.policy, self.deadline, self.label = policy, deadline, label
        self.window_start, self.window_bytes = time.monotonic(), 0

    def check(self, n: int, done: int, total: int | None) -> None:
        now, p = time.monotonic(), self.policy
        if now > self.deadline:
            of = f" of {total}" if total else ""
            raise DownloadError(
                f"{self.label}: not complete within the {p.deadline:g} s deadline "
                f"({done}{of} bytes arrived; MNIST_DOWNLOAD_DEADLINE sets it)"
            )
        self.window_bytes += n
        if now - self.window_start >= p.speed_window:
            if self.window_bytes < p.min_speed * p.speed_window:
                raise _Transient(
                    f"slower than {p.min_speed:g} bytes/s for {p.speed_window:g} s "
                    f"({self.window_bytes} bytes)"
                )
            self.window_start, self.window_bytes = now, 0


def _plan(source: str) -> tuple[str, list[tuple[str, str]]]:
    """The shape of `source` ('archive' or 'files') and the (file name, location) to fetch."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https", "s3") and (problem := malformed(source)):
        raise DownloadError(f"source {redact(source)!r} is not a valid URL: {problem}")
    if parts.scheme in ("http", "https", "s3"):
        if parts.scheme == "s3":
            parse_s3_uri(source)  # a ValueError naming a malformed URI
        path, is_dir = parts.path, not archive.is_archive(parts.path)
    elif parts.scheme in ("", "file"):
        path = unquote(parts.path) if parts.scheme == "file" else source
        path = str(Path(path).expanduser())
        is_dir = Path(path).is_dir()
        if not is_dir and not archive.is_archive(path):
            raise DownloadError(
                f"source {path}: no such folder, or not a .zip/.tar.gz/.tar archive"
            )
        source = path
    else:
        raise DownloadError(
            f"source {redact(source)!r}: unsupported scheme {parts.scheme!r} "
            "(use http(s)://, s3://, file:// or a local path)"
        )
    if is_dir:
        if parts.scheme in ("", "file"):
            _check_folder(Path(source))
        return "files", [(f.gz_name, join(source, f.gz_name)) for f in mnist.FILES]
    return "archive", [(Path(path).name, source)]


def _check_folder(folder: Path) -> None:
    """A clear error for a folder that holds MNIST in another shape than the four .gz files."""
    names = {p.name for p in folder.iterdir()}
    missing = [f.gz_name for f in mnist.FILES if f.gz_name not in names]
    if not missing:
        return
    raw = [f.name for f in mnist.FILES if f.name in names]
    archives = sorted(n for n in names if archive.is_archive(n))
    if raw:
        hint = f"it holds raw IDX files ({', '.join(raw)}): gzip them, or pack them in a .zip"
    elif len(archives) == 1:
        hint = f"it holds one archive: give --source {folder / archives[0]}"
    else:
        hint = "it should hold the four MNIST .gz files, or give an archive as the source"
    raise DownloadError(f"source folder {folder} has no {missing[0]}: {hint}")


def _hash_idx(stream: IO[bytes], spec: mnist.IdxFile, label: str) -> str:
    """sha256 of a decompressed IDX stream, stopping early once it outgrows the original."""
    digest, size = hashlib.sha256(), 0
    for chunk in read_chunks(stream, label, "file"):
        size += len(chunk)
        if size > spec.size:
            raise ChecksumError(f"{label}: decompresses past the {spec.size} bytes of {spec.name}")
        digest.update(chunk)
    return digest.hexdigest()


def _check_digest(digest: str, spec: mnist.IdxFile, label: str) -> None:
    if digest != spec.sha256:
        raise ChecksumError(
            f"{label}: sha256 of the decompressed content is {digest}, expected {spec.sha256} "
            f"for {spec.name} (for a custom IDX set, set verify_checksums=False)"
        )


def verify_file(path: Path, name: str = "") -> dict[str, str]:
    """Check a fetched `.gz` file or archive against the original digests; {idx name: sha256}.

    Raises ChecksumError for a mismatch or a missing file, DownloadError for a corrupt file.
    """
    label = name or path.name
    try:
        return (
            _verify_archive(path, label) if archive.is_archive(label) else _verify_gz(path, label)
        )
    except archive.ArchiveError as e:
        raise DownloadError(str(e)) from e


def _verify_gz(path: Path, label: str) -> dict[str, str]:
    spec = _SPECS[archive.idx_name(label)]
    with gzip.open(path, "rb") as f:
        digest = _hash_idx(f, spec, label)
    _check_digest(digest, spec, label)
    return {spec.name: digest}


def _verify_archive(path: Path, label: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    for idx, stream in archive.iter_idx_members(path):
        digests[idx] = _hash_idx(stream, _SPECS[idx], f"{label}: {idx}")
        _check_digest(digests[idx], _SPECS[idx], f"{label}: {idx}")
    missing = sorted(set(_SPECS) - digests.keys())
    if missing:
        raise ChecksumError(f"{label}: holds no {', '.join(missing)} (raw or .gz)")
    return digests


def download(
    source: str,
    dest: Path,
    verify_checksums: bool = True,
    s3_endpoint: str = "",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retry: RetryPolicy | None = None,
) -> dict:
    """Fetch MNIST from `source` into the folder `dest`; returns the Dataset artifact metadata.

    Keys: source (redacted), shape ('files' or 'archive'), files (names in `dest`), bytes,
    checksums_verified, sha256 ({IDX name: digest of the decompressed content}, when verified).
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    shape, plan = _plan(source)
    log.info("downloading %s (%s)", redact(source), shape)
    dest.mkdir(parents=True, exist_ok=True)
    fetcher = _Fetcher(max_bytes, retry or RetryPolicy.from_env(), s3_endpoint)
    parts = {name: dest / f".part-{name}" for name, _ in plan}
    digests: dict[str, str] = {}
    try:
        for name, location in plan:
            fetcher.fetch(location, parts[name])
            if verify_checksums:
                digests.update(verify_file(parts[name], name))
        for name, part in parts.items():  # only now, when every file has passed
            os.replace(part, dest / name)
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
    checked = f"; sha256 of all {len(digests)} IDX files match MNIST's" if verify_checksums else ""
    log.info("fetched %d file(s), %s%s", len(parts), human_bytes(fetcher.used), checked)
    return {
        "source": redact(source),
        "shape": shape,
        "files": sorted(parts),
        "bytes": fetcher.used,
        "checksums_verified": verify_checksums,
        "sha256": digests,
        # the digest of the set (components/common/provenance.py); unpack-and-upload records
        # it whether or not the checksums are verified here
        **({"dataset_digest": digest_of(digests)} if digests else {}),
    }
