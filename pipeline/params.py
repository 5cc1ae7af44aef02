"""Pipeline parameter values: parsing `k=v` strings and refusing bad values before a run starts.

Every check names the parameter, so a typo on the command line fails in a second with a message
instead of an hour later in a pod.
"""

from __future__ import annotations

from components.common.s3 import parse_endpoint
from components.common.store import is_s3, local_path, parse_s3_uri

# Parameter name -> type, read by `parse_assignments`; mirrors pipeline.dag's signature
# (a compile test checks the two agree).
TYPES = {
    "source": str,
    "verify_checksums": bool,
    "store_uri": str,
    "s3_endpoint": str,
    "epochs": int,
    "batch_size": int,
    "learning_rate": float,
    "seed": int,
    "train_limit": int,
    "min_accuracy": float,
    "images_uri": str,
    "results_uri": str,
    "max_failed_fraction": float,
    "serving_endpoint": str,
}
_RANGES = {
    "epochs": (1, None),
    "batch_size": (1, None),
    "train_limit": (0, None),
    "learning_rate": (0, 1),
    "min_accuracy": (0, 1),
    "max_failed_fraction": (0, 1),
}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ParameterError(ValueError):
    """A pipeline parameter value is malformed or out of range."""


def _coerce(name: str, raw: str):
    kind = TYPES[name]
    if kind is bool:
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ParameterError(f"{name}={raw!r} is not a boolean (true/false)")
    try:
        return kind(raw)
    except ValueError:
        raise ParameterError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def parse_assignments(pairs: list[str] | tuple[str, ...]) -> dict:
    """Turn ['epochs=3', 'store_uri=s3://b/p'] into typed values; unknown names are refused."""
    values = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise ParameterError(f"{pair!r} is not of the form name=value")
        if name not in TYPES:
            raise ParameterError(f"unknown parameter {name!r}; known: {', '.join(sorted(TYPES))}")
        values[name] = _coerce(name, raw.strip())
    return values


def _check_uri(name: str, uri: str) -> None:
    try:
        parse_s3_uri(uri) if is_s3(uri) else local_path(uri)
    except ValueError as e:
        raise ParameterError(f"{name}: {e}") from None


def validate_arguments(values: dict) -> dict:
    """Raise ParameterError naming the first bad value; returns `values` unchanged."""
    for name, value in values.items():
        if name not in TYPES:
            raise ParameterError(f"unknown parameter {name!r}")
        low, high = _RANGES.get(name, (None, None))
        if low is not None and value < low or high is not None and value > high:
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ParameterError(f"{name}={value!r} is out of range: must be {bounds}")
    if values.get("learning_rate") == 0:
        raise ParameterError("learning_rate=0 is out of range: must be above 0")
    for name in ("store_uri", "images_uri", "results_uri"):
        if values.get(name):
            _check_uri(name, values[name])
    if values.get("s3_endpoint"):
        try:
            parse_endpoint(values["s3_endpoint"])
        except ValueError as e:
            raise ParameterError(str(e)) from None
    if values.get("serving_endpoint"):
        from components.batch_predict.serving_client import check_target

        try:
            check_target(values["serving_endpoint"])
        except ValueError as e:
            raise ParameterError(str(e)) from None
    if "source" in values and not values["source"]:
        raise ParameterError("source must not be empty")
    return values
