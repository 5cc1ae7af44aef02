"""What a parameter's value must be: the checks the parameter table (parameters.py) attaches.

Each check returns the reason a value is refused, or None; a range check also carries its bounds
as text, which the Kubeflow UI shows in the parameter's description. Pure functions: they parse
a URI or an endpoint without touching a store or a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from components.common import spec
from components.common.redact import malformed, refuse_credentials, split_url
from components.common.uris import is_s3, local_path, parse_endpoint, parse_s3_uri

Check = Callable[[object], str | None]  # the reason a value is refused, or None


def within(low: float | None = None, high: float | None = None, low_open: bool = False) -> Check:
    """A check that a number is finite and within [low, high] (or (low, high])."""

    def check(value) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            if high is None:
                return f"must be {'above' if low_open else 'at least'} {low}"
            lower = f"above {low} and at most" if low_open else f"from {low} to"
            return f"must be {lower} {high}"
        return None

    if high is None:
        check.bounds = f"{'above' if low_open else 'at least'} {low}"
    else:
        check.bounds = f"above {low}, at most {high}" if low_open else f"{low} to {high}"
    return check


def one_of(*allowed: str) -> Check:
    """A check that a value is one of the `allowed` names."""

    def check(value) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def uri(required: bool) -> Check:
    def check(value) -> str | None:

        if not str(value).strip():
            return "must not be empty: give s3://bucket/prefix or a folder" if required else None
        try:
            refuse_credentials("the URI", value)
            parse_s3_uri(value) if is_s3(value) else local_path(value)
        except ValueError as e:
            return str(e)
        return None

    return check


def source(value) -> str | None:
    if not str(value).strip():
        return "must not be empty"
    try:
        scheme = split_url(value, "source").scheme
    except ValueError as e:
        return str(e)
    if scheme not in ("", "http", "https", "s3", "file"):
        return f"has unsupported scheme {scheme!r} (use http(s)://, s3://, file:// or a path)"
    try:
        refuse_credentials("source", value)
    except ValueError as e:
        return str(e)
    problem = malformed(value)
    return f"is not a valid URL: {problem}" if problem else None


def s3_endpoint(value) -> str | None:
    try:
        value and parse_endpoint(value)
    except ValueError as e:
        return str(e)
    return None


def serving_endpoint(value) -> str | None:
    from components.common.endpoints import check_target

    try:
        value not in ("", spec.IN_STEP) and check_target(value)
    except ValueError as e:
        return str(e)
    return None
