"""Logging set-up shared by the components: one line per event on stdout, which KFP shows."""

from __future__ import annotations

import logging
import sys
import time

from components.common.redact import printable, shown
from components.common.units import human_bytes, human_seconds


class ForPeople(logging.Formatter):
    """Every line logged, traceback included, is redacted and its control characters escaped
    (redact.shown): a log line may quote a URL, a header or a file name that came from outside.
    The values put into a message (its %-arguments) are shown on one line, so a newline in a
    file name cannot forge a log line; the message's own newlines stay."""

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            record = logging.makeLogRecord({**record.__dict__, "args": _one_line(record.args)})
        return shown(super().format(record), newlines=True)


def _one_line(args):
    if isinstance(args, dict):
        return {k: printable(v) if isinstance(v, str) else v for k, v in args.items()}
    return tuple(printable(v) if isinstance(v, str) else v for v in args)


def get_logger(name: str) -> logging.Logger:
    root = logging.getLogger("mnist")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(ForPeople("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(f"mnist.{name}")


class Progress:
    """Progress a person can use, on a timer: at most one line every `interval` seconds.

    Each line gives what is done in human units, the share, the rate and the time left:
    `download train-images-idx3-ubyte.gz: 4.1 MB of 9.6 MB (43%), 2.0 MB/s, about 3 s left`.
    A task that ends before the first interval logs nothing here (its caller's own line says
    it is done); one that logged on the way logs a last line when it ends.
    """

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        interval: float = 5.0,
        unit: str = "",  # "bytes" for sizes in kB/MB/GB, else a count
    ):
        self.log, self.what, self.total, self.interval = log, what, total, interval
        self.unit = unit
        self.done = 0
        self.lines = 0
        self._start = self._last = time.monotonic()

    def _amount(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{n:.0f}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        finished = bool(self.total) and self.done >= self.total
        if finished and self.lines == 0:
            return
        if now - self._last < self.interval and not finished:
            return
        self._last = now
        self.lines += 1
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        speed = f"{self._amount(rate)}/s"
        if finished:
            self.log.info(
                "%s: %s in %s, %s",
                self.what,
                self._amount(self.done),
                human_seconds(elapsed),
                speed,
            )
        elif self.total:
            left = (self.total - self.done) / rate if rate else float("inf")
            self.log.info(
                "%s: %s of %s (%.0f%%), %s, about %s left",
                self.what,
                self._amount(self.done),
                self._amount(self.total),
                100.0 * self.done / self.total,
                speed,
                human_seconds(left),
            )
        else:
            self.log.info("%s: %s so far, %s", self.what, self._amount(self.done), speed)
