"""Property-based tests of the cron validator (`schedule --cron`), against a model of KFP's parser.

KFP's ScheduledWorkflow controller parses cron with robfig/cron: six fields, seconds first
(Second | Minute | Hour | Dom | Month | Dow | Descriptor). `RobfigModel` below encodes that parser's
rules (parser.go: getField, getRange, parseIntOrName, mustParseInt over strconv.Atoi, and the
descriptors with time.ParseDuration for `@every`), so that whatever the validator accepts can be
checked to be something the cluster accepts too, and croniter to compute its fire times.
"""

from __future__ import annotations

import datetime
import re
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.commands.cron import UTC, next_fire_times, validate_cron
from tests.fuzz import fuzz

pytestmark = pytest.mark.timeout(120)
AFTER = datetime.datetime(2026, 11, 28, 10, 30, 15, tzinfo=UTC)

# --- a model of robfig/cron's parser ----------------------------------------------------------

# Go's unicode.IsSpace, which strings.Fields splits on (Python's str.split also splits on
# \x1c-\x1f, which Go does not).
GO_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
BOUNDS = [  # (min, max, names) per field, seconds first
    (0, 59, None),
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, {m: i + 1 for i, m in enumerate(MONTHS)}),
    (0, 6, {d: i for i, d in enumerate(DAYS)}),
]
GO_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
GO_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9}
GO_UNITS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
INT64_MAX = 2**63 - 1


class Rejected(Exception):
    pass


def go_fields(text: str, sep=GO_SPACE) -> list[str]:
    fields, word = [], ""
    for c in text:
        if c in sep:
            if word:
                fields.append(word)
            word = ""
        else:
            word += c
    return fields + ([word] if word else [])


def go_atoi(text: str) -> int:
    """strconv.Atoi, then mustParseInt's refusal of negatives."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise Rejected(f"Atoi {text!r}")
    num = int(text)
    if not -(2**63) <= num <= INT64_MAX:
        raise Rejected(f"Atoi out of range {text!r}")
    if num < 0:
        raise Rejected(f"negative {text!r}")
    return num


def go_range(expr: str, low: int, high: int, names: dict | None) -> tuple[set[int], bool, bool]:
    """The values of one range, and whether it sets the star bit in robfig/cron v1 and v3 (v3
    clears it for a step above 1)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    star = low_and_high[0] in ("*", "?")
    if star:
        start, end = low, high
    else:

        def value(text: str) -> int:
            if names and text.lower() in names:
                return names[text.lower()]
            return go_atoi(text)

        start = value(low_and_high[0])
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = value(low_and_high[1])
        else:
            raise Rejected("too many hyphens")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = go_atoi(range_and_step[1])
        if len(low_and_high) == 1:
            end = high
    else:
        raise Rejected("too many slashes")
    if start < low or end > high or start > end or step == 0:
        raise Rejected(f"range {expr!r}")
    return set(range(start, end + 1, step)), star, star and step <= 1


def go_duration_ns(text: str) -> int:
    """time.ParseDuration for the non-negative durations (enough for the validator's output)."""
    if text == "0":
        return 0
    parts = re.findall(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]+)", text)
    if not parts or "".join(a + ("." + b if b else "") + u for a, b, u in parts) != text:
        raise Rejected(f"duration {text!r}")
    total = 0
    for whole, frac, unit in parts:
        if not whole and not frac or unit not in GO_UNITS:
            raise Rejected(f"duration {text!r}")
        v = int(whole or 0) * GO_UNITS[unit]
        if frac:
            v += int(int(frac) * (GO_UNITS[unit] / 10 ** len(frac)))
        total += v
        if total > INT64_MAX:
            raise Rejected("duration overflows")
    return total


def robfig_parse(spec: str):
    """What robfig/cron makes of `spec`: ('every', seconds), ('spec', [set per field]); or
    raises Rejected where it returns an error."""
    if not spec:
        raise Rejected("empty")
    if spec.startswith("@"):
        if spec in GO_DESCRIPTORS:
            return ("descriptor", spec)
        if spec.startswith("@every "):
            seconds = go_duration_ns(spec[len("@every ") :]) // 10**9
            return ("every", max(seconds, 1))
        raise Rejected("descriptor")
    fields = go_fields(spec)
    if len(fields) != 6:
        raise Rejected("fields")
    sets, stars = [], []
    for field, (low, high, names) in zip(fields, BOUNDS, strict=True):
        values: set[int] = set()
        star_v1 = star_v3 = False
        for expr in (e for e in field.split(",") if e):  # strings.FieldsFunc drops empties
            more, v1, v3 = go_range(expr, low, high, names)
            values, star_v1, star_v3 = values | more, star_v1 or v1, star_v3 or v3
        sets.append(values)
        stars.append((star_v1, star_v3))
    return ("spec", (sets, stars))


def robfig_matches(parsed, moment: datetime.datetime) -> bool:
    """Whether robfig/cron (v1 or v3) fires at `moment`: every field matches, and day of
    month and day of week are ANDed when either has the star bit, else ORed."""
    (sec, minute, hour, dom, month, dow), stars = parsed
    clock = moment.second in sec and moment.minute in minute and moment.hour in hour
    weekday = (moment.weekday() + 1) % 7  # Sunday = 0
    dom_ok, dow_ok = moment.day in dom, weekday in dow
    day = any(
        (dom_ok and dow_ok) if stars[3][v] or stars[5][v] else (dom_ok or dow_ok) for v in (0, 1)
    )
    return clock and moment.month in month and day


# --- the generators ---------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-3, 64).map(str),
    st.sampled_from(["00", "007", "+5", "-0", "99999999999999999999", "9" * 40, "", " "]),
    st.sampled_from(["٣", "²", "３", "১", "߁", "0x1", "1e1", "1_0", "½"]),
)
NAMES = st.sampled_from(
    MONTHS + DAYS + ["JAN", "Mon", "fRi", "ſun", "FRİ", "ＭＯＮ", "SUNDAY", "JANUARY", "X"]
)
SPECIALS = st.sampled_from(
    ["*", "?", "L", "W", "LW", "15W", "5L", "5#3", "MON#2", "#", "**", "*?", "*-5", "?/2", "/", "-"]
)
ATOM = st.one_of(NUMBERS, NAMES, SPECIALS)


@st.composite
def items(draw) -> str:
    first = draw(ATOM)
    if draw(st.booleans()):
        first += "-" + draw(ATOM)
    if draw(st.booleans()):
        first += "/" + draw(NUMBERS)
    return first


FIELD = st.lists(items(), min_size=1, max_size=3).map(",".join)
SEPARATOR = st.sampled_from([" ", " ", " ", "  ", "\t", "\n", "\x1c", "\xa0", "\u2003", ""])


@st.composite
def cron_lines(draw) -> str:
    fields = draw(st.lists(FIELD, min_size=4, max_size=8))
    text = fields[0]
    for field in fields[1:]:
        text += draw(SEPARATOR) + field
    return draw(SEPARATOR) + text + draw(SEPARATOR)


DURATION_PART = st.tuples(
    st.sampled_from(["0", "1", "2", "30", "90", "007", "1.5", "0.25", ".5", "1.", "٣", "99999"]),
    st.sampled_from(["h", "m", "s", "ms", "us", "µs", "μs", "ns", "d", "H", "", "sec"]),
).map("".join)
DESCRIPTOR = st.one_of(
    st.sampled_from(sorted(GO_DESCRIPTORS) + ["@DAILY", "@every", "@reboot", "@", "@ daily"]),
    st.builds(
        lambda sep, parts: "@every" + sep + "".join(parts),
        st.sampled_from([" ", "  ", "\t", "\xa0", "", "\n"]),
        st.lists(DURATION_PART, min_size=1, max_size=3),
    ),
    st.just("@every 9999999999h"),
)
EXPRESSIONS = st.one_of(cron_lines(), DESCRIPTOR, st.text(max_size=30))


# --- the properties ---------------------------------------------------------------------------


def outcome(expr: str) -> tuple[str | None, str | None]:
    """(accepted expression, None) or (None, error message); any other exception fails."""
    started = time.monotonic()
    try:
        result = validate_cron(expr)
    except ValueError as e:
        assert type(e) is ValueError, f"{type(e).__name__} leaked out: {e}"
        return None, str(e)
    finally:
        assert time.monotonic() - started < 5, f"{expr!r} took too long"
    return result, None


@fuzz(500)
@given(EXPRESSIONS)
@example("0 ٣ * * * *")  # Arabic-Indic digit: int() takes it, Go's Atoi does not
@example("0 ² * * * *")  # superscript two: isdigit() but int() refuses it
@example("0 0 0 * * ſun")  # long s: "ſun".upper() == "SUN", Go's ToLower leaves it
@example("0 0 5-3 * * *")  # reversed range
@example("*/99999999999999999999 * * * * *")  # a step Go's Atoi cannot hold
@example("@every  1h")  # two spaces: ParseDuration(" 1h") fails
@example("@every ٣h")
@example("@every 9999999999h")  # longer than a Go duration
@example("0 0\n2 * *")  # a newline must not reach the one-line error
@example("0 5-5 * * * *")  # croniter reads N-N as the whole field, robfig/cron as N
@example("0 0 0 1,* * 1")  # a star in a list: day of month and day of week must both match
def test_validator_accepts_only_what_kfp_and_croniter_take(expr):
    accepted, error = outcome(expr)
    if accepted is None:
        assert error and "\n" not in error and "\x1b" not in error, error
        return
    kind, parsed = robfig_parse(accepted)  # raises Rejected: KFP would refuse it
    assert validate_cron(accepted) == accepted  # what it returns is what it accepts
    fires = next_fire_times(accepted, AFTER, 3)
    assert AFTER < fires[0] < fires[1] < fires[2]
    if kind == "every":
        assert [(t - AFTER).total_seconds() for t in fires] == [parsed * k for k in (1, 2, 3)]
    elif kind == "spec":
        assert all(robfig_matches(parsed, t) for t in fires), fires


WELL_FORMED_ITEM = st.one_of(
    st.sampled_from(["*", "?"]),
    st.integers(0, 59).map(str),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 59), st.integers(0, 59)),
    st.builds(
        lambda a, s: f"{a}/{s}", st.sampled_from(["*", "?", "0", "1", "5"]), st.integers(1, 7)
    ),
)
WELL_FORMED = st.lists(
    st.lists(WELL_FORMED_ITEM, min_size=1, max_size=2).map(",".join), min_size=6, max_size=6
).map(" ".join)


@fuzz(300)
@given(WELL_FORMED)
def test_what_kfp_and_croniter_take_in_plain_ascii_is_accepted(expr):
    """The other way round, on plain ASCII 6-field expressions: the validator is not stricter
    than KFP except where it says why (a step wider than the field, a date that never comes)."""
    try:
        robfig_parse(expr)
    except Rejected:
        return
    accepted, error = outcome(expr)
    if accepted is None:
        assert "step larger than its range" in error or "never fires" in error, error
    else:
        assert accepted == expr


# --- the shrunk examples the properties found, one by one -------------------------------------


@pytest.mark.parametrize(
    "expr, phrase",
    [
        ("0 ٣ * * * *", "minute '٣' is not *, ?, N, N-M"),
        ("0 ² * * * *", "minute '²' is not *, ?, N, N-M"),
        ("0 0 0 * * ſun", "day of week 'ſun' is not"),
        ("0 0 5-3 * * *", "hour '5-3' is a reversed range"),
        ("*/99999999999999999999 * * * * *", "second '*/99999999999999999999' has a step larger"),
        ("@every ٣h", "is not a KFP cron descriptor"),
        ("@every 9999999999h", "longer than Go's longest duration"),
        ("0 0\n2 * *", r'"0 0\n2 * *" has 5 field(s)'),
    ],
)
def test_found_by_the_properties_refused(expr, phrase):
    with pytest.raises(ValueError) as raised:
        validate_cron(expr)
    assert type(raised.value) is ValueError and phrase in str(raised.value)
    assert "\n" not in str(raised.value)


def test_every_is_sent_with_one_space_and_fires_in_whole_seconds():
    """robfig/cron reads `@every ` then a Go duration, and rounds it down to whole seconds."""
    assert validate_cron("@every  1h") == "@every 1h"
    assert validate_cron("@every\t1.5s") == "@every 1.5s"
    fires = next_fire_times("@every 1.5s", AFTER, 2)
    assert [(t - AFTER).total_seconds() for t in fires] == [1, 2]


@pytest.mark.parametrize(
    "expr, minutes",
    [("0 5-5 * * * *", {5}), ("0 5-5/2 * * * *", {5}), ("0 50-51/15 * * * *", {50})],
)
def test_a_range_fires_at_its_own_values_only(expr, minutes):
    """croniter alone reads `5-5` as every minute; KFP's robfig/cron as minute 5."""
    fires = next_fire_times(validate_cron(expr), AFTER, 3)
    assert {t.minute for t in fires} == minutes, fires
