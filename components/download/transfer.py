"""Fetching one file: retried with backoff, resumed, and bounded in size, time and speed.

`_Fetcher` opens the location through transport.py or s3_source.py, writes the body to a
local file and, on a transient fault, waits and tries again from the bytes it already has,
within `RetryPolicy`'s count and deadline; `_Pace` cuts a transfer that stalls or trickles.
An HTML page served instead of data, or a body past `max_bytes`, is refused at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from components.common.log import Progress, get_logger
from components.common.redact import redact_url as redact
from components.common.units import env_number
from components.download.s3_source import _open_s3, s3_client
from components.download.transport import (
    DownloadError,
    _open_http,
    _open_local,
    _Response,
    _Transient,
)

log = get_logger("download")


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
        return cls(
            deadline=env_number("MNIST_DOWNLOAD_DEADLINE", cls.deadline),
            timeout=env_number("MNIST_DOWNLOAD_TIMEOUT", cls.timeout),
            speed_window=env_number("MNIST_DOWNLOAD_SPEED_WINDOW", cls.speed_window),
        )


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
