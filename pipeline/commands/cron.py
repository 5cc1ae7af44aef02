"""KFP's cron dialect: check a `schedule --cron` expression as the cluster will read it, and
compute when it fires.

KFP's ScheduledWorkflow controller parses cron with robfig/cron: six fields, seconds first, day
of week from Sunday = 0, the descriptors @daily, @hourly... and `@every <Go duration>`. croniter
(with `second_at_beginning=True`) computes the fire times, and says when an expression never
fires; but it reads a wider dialect than robfig/cron (L, W, #, H, 7 for Sunday, ranges that wrap
around, `5-5` as the whole field), so what the cluster would refuse is refused here first, in one
line naming the field. croniter is then given each field as robfig/cron reads it: `*` for a
field that holds every value through a star, else the explicit list of its values.
"""

from __future__ import annotations

import datetime
import math
import re
from fractions import Fraction

from components.common.redact import printable

UTC = datetime.timezone.utc
CRON_FIELDS = (  # name, lowest, highest
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
CRON_LAYOUT = "SECOND MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(_MONTHS)},
    "day of week": {d: i for i, d in enumerate(_DAYS)},
}
# ASCII only: Go's strconv.Atoi takes no other digits, and "ſun".upper() is "SUN" in Python.
_ITEM = re.compile(r"^(?:([*?])|(\w+)(?:-(\w+))?)(?:/(\d+))?$", re.ASCII)

# The descriptors robfig/cron takes besides 6 fields, as 6 fields.
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+)$", re.ASCII)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", re.ASCII)
_NANOS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 1000, "µs": 1000}
_MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration: about 292 years


def validate_cron(expr: str) -> str:
    """Return the KFP cron expression `expr` (6 fields, or a descriptor such as @daily or
    @every 1h30m), or raise ValueError saying what is wrong, including when it never fires."""
    expr = expr.strip()
    if expr.startswith("@"):
        return _validate_descriptor(expr)
    fields = expr.split()
    if len(fields) != 6:
        hint = (
            f'; for this crontab line, add the seconds in front: "0 {printable(" ".join(fields))}"'
            if len(fields) == 5
            else '; e.g. "0 0 2 * * *" is every day at 02:00:00'
        )
        raise ValueError(
            f'"{printable(expr)}" has {len(fields)} field(s), but KFP cron takes 6, seconds '
            f"first: {CRON_LAYOUT}{hint}"
        )
    expr = " ".join(fields)
    next_fire_times(expr, datetime.datetime.now(UTC), 1)  # raises if it can never fire
    return expr


def _validate_descriptor(expr: str) -> str:
    shown, period = printable(expr), every_seconds(expr)
    if expr not in DESCRIPTORS and period is None:
        raise ValueError(
            f'"{shown}" is not a KFP cron descriptor: use {", ".join(DESCRIPTORS)} or '
            '"@every 1h30m" (units h, m, s)'
        )
    if period is None:
        return expr
    if period < 1:
        raise ValueError(f'"{shown}" fires more than once a second')
    if _every_nanos(expr) > _MAX_DURATION_NS:
        raise ValueError(f'"{shown}" is longer than Go\'s longest duration (about 292 years)')
    return "@every " + _EVERY.match(expr)[1]  # robfig/cron takes exactly one space after @every


def next_fire_times(expr: str, after: datetime.datetime, count: int = 3) -> list:
    """The next `count` times (UTC) `expr` fires after `after`, fewer when they would fall
    after the year 9999 (the last a datetime holds); ValueError if it never does, or when a
    field is not one robfig/cron reads. `@every D` fires every D from `after`."""
    period = every_seconds(expr)
    if period is not None:
        step = datetime.timedelta(seconds=period)
        return _until_the_last_date(lambda k: after + step * (k + 1), count)
    from croniter import CroniterBadDateError, croniter

    fields = DESCRIPTORS.get(expr.strip(), expr).split()
    try:
        it = croniter(
            _as_croniter_reads_it(fields),
            after,
            second_at_beginning=True,
            max_years_between_matches=8,
        )
        return _until_the_last_date(lambda _: it.get_next(datetime.datetime).astimezone(UTC), count)
    except CroniterBadDateError:
        raise ValueError(
            f'"{printable(expr)}" never fires: no date matches it (such as February 30 or 31)'
        ) from None


def _until_the_last_date(nth, count: int) -> list:
    """`nth(k)` for k in 0..count-1, stopping at the first that passes the year 9999, where
    datetime raises a bare OverflowError or ValueError ('year 10000 is out of range')."""
    times = []
    for k in range(count):
        try:
            times.append(nth(k))
        except (OverflowError, ValueError) as e:
            if type(e) not in (OverflowError, ValueError):  # croniter's own, a subclass
                raise
            break
    return times


def _as_croniter_reads_it(fields: list[str]) -> str:
    """Each field `*` when a star gives it every value (robfig/cron's star bit, which makes day
    of month and day of week both have to match), else the explicit list of its values."""
    shown = []
    for text, field in zip(fields, CRON_FIELDS, strict=True):
        items = text.split(",")
        values = set().union(*(_item_values(item, *field) for item in items))
        if any(item in ("*", "?", "*/1", "?/1") for item in items):
            shown.append("*")
        else:
            shown.append(",".join(str(v) for v in sorted(values)))
    return " ".join(shown)


def _item_values(item: str, name: str, low: int, high: int) -> range:
    """The values of one item of a field (N, N-M, * or ?, each maybe with /STEP), or
    ValueError naming the field and what is wrong."""
    match = _ITEM.match(item)
    if not match:
        raise ValueError(f"{name} {item!r} is not *, ?, N, N-M or one of them with /STEP")
    star, first, last, step = match.groups()
    step = int(step) if step is not None else None
    if step == 0:
        raise ValueError(f"{name} {item!r} has a step of 0")
    if step is not None and step > high - low + 1:
        raise ValueError(f"{name} {item!r} has a step larger than its range {low}-{high}")
    if star:
        return range(low, high + 1, step or 1)
    start = _value(first, name, low, high)
    end = _value(last, name, low, high) if last else (high if step else start)
    if start > end:
        raise ValueError(f"{name} {item!r} is a reversed range: KFP's cron takes N-M with N <= M")
    return range(start, end + 1, step or 1)


def _value(token: str, name: str, low: int, high: int) -> int:
    value = int(token) if token.isdigit() else _NAMES.get(name, {}).get(token.upper())
    if value is None or not low <= value <= high:
        raise ValueError(f"{name} {token!r} is out of range: {low}-{high}")
    return value


def _every_nanos(expr: str) -> int | None:
    """The duration of `@every 1h30m` in nanoseconds as Go parses it (fractions of a
    nanosecond dropped), or None when `expr` is not of that form."""
    match = _EVERY.match(expr.strip())
    if not match:
        return None
    parts = _DURATION_PART.findall(match[1])
    return sum(math.floor(Fraction(n) * _NANOS.get(unit, 1)) for n, unit in parts)


def every_seconds(expr: str) -> int | None:
    """The period of `@every 1h30m` (Go's duration syntax) in whole seconds, or None.

    robfig/cron rounds the duration down to whole seconds, so `@every 1.5s` fires every second.
    """
    nanos = _every_nanos(expr)
    return None if nanos is None else nanos // 10**9
