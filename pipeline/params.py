"""Pipeline parameter values from the command line: `name=value` strings, checked before a run.

The parameters themselves (types, defaults, checks) are defined once, in
components/common/parameters.py; this module only turns text into typed values and applies those
checks, so a typo fails in a second with a message instead of an hour later in a pod.
"""

from __future__ import annotations

import functools
from pathlib import Path

from components.common.parameters import (
    BY_NAME,
    ParameterError,
    check_all,
    shown_value,
    unknown,
)
from pipeline.local_files import LocalFileError, read_small_text

TYPES = {name: param.type for name, param in BY_NAME.items()}
MAX_PARAMS_FILE = 64 * 1024  # bytes: a parameters file is a few lines; anything larger is refused
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

__all__ = ["TYPES", "ParameterError", "load_params_file", "parse_assignments", "validate_arguments"]


def _coerce(name: str, raw: str):
    kind = TYPES[name]
    if kind is bool:
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ParameterError(f"{name}={shown_value(raw)} is not a boolean (true/false)")
    try:
        return kind(raw)
    except ValueError:
        raise ParameterError(f"{name}={shown_value(raw)} is not a valid {kind.__name__}") from None


def parse_assignments(pairs: list[str] | tuple[str, ...]) -> dict:
    """Turn ['epochs=3', 'store_uri=s3://b/p'] into typed values; unknown names are refused."""
    values = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise ParameterError(f"{shown_value(pair)} is not of the form name=value")
        if name not in TYPES:
            raise unknown(name)
        values[name] = _coerce(name, raw.strip())
    return values


def load_params_file(path: str | Path) -> dict:
    """Typed parameter values from a YAML or JSON mapping (JSON is YAML); names checked.

    The file comes from outside, so it is read with bounds: a regular file only (a FIFO or a
    device would block or never end), at most MAX_PARAMS_FILE bytes, and YAML aliases refused
    (a "billion laughs" file expands into more values than memory holds).
    """
    import yaml

    try:
        text = read_small_text(path, MAX_PARAMS_FILE, "a YAML or JSON file of name: value lines")
    except LocalFileError as e:
        raise ParameterError(str(e)) from None
    try:
        data = yaml.load(text, Loader=_no_aliases_loader())  # noqa: S506 - SafeLoader, no aliases
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        why = getattr(e, "problem", None) or type(e).__name__
        raise ParameterError(f"{path}: not a valid YAML or JSON file{at}: {why}") from None
    except (RecursionError, ValueError) as e:  # nesting thousands deep; an int of 5000 digits
        why = "nested too deeply" if isinstance(e, RecursionError) else "a value out of bounds"
        raise ParameterError(f"{path}: not a usable parameters file ({why})") from None
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


@functools.cache
def _no_aliases_loader():
    import yaml

    class NoAliases(yaml.SafeLoader):
        """SafeLoader that refuses `*alias` references: a parameters file has no use for them."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in a parameters file", mark
                )
            return super().compose_node(parent, index)

    return NoAliases


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
        raise ParameterError(f"{path}: {name}={shown_value(value)} is not a valid {kind.__name__}")
    return float(value) if kind is float else value


def validate_arguments(values: dict) -> dict:
    """Raise ParameterError naming the first bad value; returns `values` unchanged."""
    return check_all(values)
