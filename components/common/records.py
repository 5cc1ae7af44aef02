"""JSON records read back from the store (manifests, provenance, results): parsed with bounds.

Whatever a step wrote to the store, anyone with write access to the bucket can rewrite, so a
record is outside input when it is read back: it may be too large, not JSON, a list where an
object was written, or hold a field of the wrong type or a name that climbs out of a folder.
`parse_record` turns each of those into one `RecordError` naming the record and the field.
"""

from __future__ import annotations

import json
import re

from components.common.errors import StepError

MAX_RECORD = 4 << 20  # bytes: our records are a few kB; a dataset manifest of 4 files, < 1 kB
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


class RecordError(StepError, ValueError):
    """A record read back from the store is not what its writer wrote; names it and why."""


def parse_record(
    raw: bytes, where: str, required: dict | None = None, optional: dict | None = None
) -> dict:
    """The JSON object in `raw`, with each field of `required` present and each field of
    `required` and `optional` (when present) of the given type or tuple of types."""
    if len(raw) > MAX_RECORD:
        raise RecordError(f"{where}: larger than {MAX_RECORD >> 20} MB; not a record of ours")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise RecordError(f"{where}: not valid JSON ({type(e).__name__})") from None
    return check_fields(record, where, required, optional)


def check_fields(
    record: object, where: str, required: dict | None = None, optional: dict | None = None
) -> dict:
    """`record` (already parsed, such as an entry of a record) if it is an object whose fields
    are as `parse_record` asks; a RecordError otherwise."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: holds a JSON {type(record).__name__}, not an object")
    for name in required or {}:
        if name not in record:
            raise RecordError(f"{where}: has no {name!r} field")
    for name, kind in {**(optional or {}), **(required or {})}.items():
        if name in record and not _is(record[name], kind):
            raise RecordError(f"{where}: field {name!r} is a {type(record[name]).__name__}")
    return record


def _is(value, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not a number here
    return isinstance(value, kinds)


def plain_name(name: object, where: str) -> str:
    """`name` if it is one plain file or folder name (no `/`, `..`, leading dot or control
    character), as a record may give for something to read or write beside it."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or name in (".", ".."):
        from components.common.redact import printable

        raise RecordError(f"{where}: {printable(repr(name)[:80])} is not a plain file name")
    return name
