"""Pipeline parameter values from the command line: `name=value` strings, checked before a run.

The parameters themselves (types, defaults, checks) are defined once, in
components/common/parameters.py; this module only turns text into typed values and applies those
checks, so a typo fails in a second with a message instead of an hour later in a pod.
"""

from __future__ import annotations

from pathlib import Path

from components.common.parameters import BY_NAME, ParameterError, check_all, unknown

TYPES = {name: param.type for name, param in BY_NAME.items()}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

__all__ = ["TYPES", "ParameterError", "load_params_file", "parse_assignments", "validate_arguments"]


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
            raise unknown(name)
        values[name] = _coerce(name, raw.strip())
    return values


def load_params_file(path: str | Path) -> dict:
    """Typed parameter values from a YAML or JSON mapping (JSON is YAML); names checked."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ParameterError(
            f"{path}: not a readable YAML or JSON file ({type(e).__name__})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: holds a {type(data).__name__}, not name: value pairs")
    values = {}
    for name, value in data.items():
        name = str(name).replace("-", "_")
        if name not in TYPES:
            raise ParameterError(f"{path}: {unknown(name)}")
        values[name] = _typed(name, value, path)
    return values


def _typed(name: str, value, path) -> object:
    kind = TYPES[name]
    if isinstance(value, str):
        return _coerce(name, value)
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, int) and not isinstance(value, bool)
        if kind is int
        else False
    )
    if not ok:
        raise ParameterError(f"{path}: {name}={value!r} is not a valid {kind.__name__}")
    return float(value) if kind is float else value


def validate_arguments(values: dict) -> dict:
    """Raise ParameterError naming the first bad value; returns `values` unchanged."""
    return check_all(values)
