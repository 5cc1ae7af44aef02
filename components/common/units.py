"""Numbers as people read them: sizes in kB/MB/GB, durations in s/min/h (log lines, summaries),
and the bounds a person sets in the environment (MNIST_S3_READ_TIMEOUT=60)."""

from __future__ import annotations

import os

from components.common.errors import InputError


def human_bytes(n: float) -> str:
    """1234 -> '1.2 kB', 47040016 -> '47.0 MB' (decimal units, as download sizes are quoted)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """9.4 -> '9.4 s', 125 -> '2 min 5 s', 3725 -> '1 h 2 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def env_number(name: str, default: float, kind: type = float) -> float:
    """The number in the environment variable `name`, `default` when it is unset or empty; a
    value that is no number is an InputError naming the variable (not float's bare ValueError)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InputError(f"{name}={raw[:40]!r} is not {what}") from None
