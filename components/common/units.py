"""Numbers as people read them: sizes in kB/MB/GB, durations in s/min/h (log lines, summaries)."""

from __future__ import annotations


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
