"""Logging set-up shared by the components: one line per event on stdout, which KFP shows."""

from __future__ import annotations

import logging
import sys
import time


def get_logger(name: str) -> logging.Logger:
    root = logging.getLogger("mnist")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(f"mnist.{name}")


class Progress:
    """Logs `done/total` at most every `interval` seconds, and once at the end."""

    def __init__(self, log: logging.Logger, what: str, total: int, interval: float = 5.0):
        self.log, self.what, self.total, self.interval = log, what, total, interval
        self.done = 0
        self._start = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        finished = bool(self.total) and self.done >= self.total
        if now - self._last < self.interval and not finished:
            return
        self._last = now
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:  # a known total: show the share done
            pct = 100.0 * self.done / self.total
            self.log.info("%s: %s/%s (%.0f%%, %.0f/s)", self.what, self.done, self.total, pct, rate)
        else:
            self.log.info("%s: %s so far (%.0f/s)", self.what, self.done, rate)
