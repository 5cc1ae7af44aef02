"""The records of a checkpoint, as read back: LATEST.json, an epoch's MANIFEST.json, its history.

Whatever is in the store may have been cut short by a preempted pod or written by something
else, so each record is parsed strictly: exact fields and types, bounded sizes, epoch folders
named `epoch-NNNN`, relative paths with nothing that climbs out, sha256 digests that look like
one. Anything else is a CheckpointError whose few words say why, for the one line in which
restore (checkpoints.py) explains its fallback.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from components.common.errors import StepError
from components.common.records import RecordError, parse_record

LATEST = "LATEST.json"
MANIFEST = "MANIFEST.json"
HISTORY = "history.json"
WEIGHTS = "latest.weights.h5"  # what keras.callbacks.BackupAndRestore saves and loads
METADATA = "training_metadata.json"  # BackupAndRestore's {"epoch": n, "batch": 0}
REQUIRED = (WEIGHTS, METADATA, HISTORY)
LATEST_MAX_BYTES = 4096  # a manifest, a history and Keras' metadata: records.MAX_RECORD
_FOLDER = re.compile(r"epoch-[0-9]{4,}")
_PART = re.compile(r"[A-Za-z0-9_.-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(StepError, ValueError):
    """A checkpoint or LATEST.json that cannot be used; the message says why, in a few words."""


class Pointer(NamedTuple):
    epoch: int
    folder: str


class Entry(NamedTuple):
    path: str  # relative to the epoch's folder, '/'-separated
    size: int
    sha256: str


def folder_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def folder_epoch(name: str) -> int:
    """The epoch an `epoch-NNNN` folder holds; CheckpointError for any other name."""
    ok = isinstance(name, str) and len(name) <= 64 and _FOLDER.fullmatch(name)
    if not ok or folder_name(int(name[6:])) != name or int(name[6:]) < 1:
        raise CheckpointError(f"folder {_short(name)} is not epoch-NNNN")
    return int(name[6:])


def parse_latest(data: bytes) -> Pointer:
    """LATEST.json, `{"epoch": n, "folder": "epoch-NNNN"}`, as a Pointer; CheckpointError for
    anything else (the folder is a bare name: nothing in it can lead out of the run's prefix)."""
    if len(data) > LATEST_MAX_BYTES:
        raise CheckpointError(f"{LATEST}: larger than {LATEST_MAX_BYTES} bytes")
    latest = _record(data, LATEST, {"epoch": int, "folder": str})
    epoch, folder = latest["epoch"], latest["folder"]
    if epoch < 1:
        raise CheckpointError(f"{LATEST}: epoch {_short(epoch)} is not >= 1")
    try:
        named = folder_epoch(folder)
    except CheckpointError as e:
        raise CheckpointError(f"{LATEST}: {e}") from None
    if named != epoch:
        raise CheckpointError(f"{LATEST}: epoch {epoch} disagrees with folder {folder}")
    return Pointer(epoch, folder)


def parse_manifest(data: bytes, epoch: int) -> list[Entry]:
    """An epoch folder's MANIFEST.json: `{"epoch": n, "files": [{"path", "size", "sha256"}]}`
    with safe relative paths, and every file BackupAndRestore and the history need."""
    manifest = _record(data, MANIFEST, {"epoch": int, "files": list})
    if manifest["epoch"] != epoch:
        raise CheckpointError(f"{MANIFEST}: epoch {_short(manifest['epoch'])}, not {epoch}")
    entries = [_entry(item) for item in manifest["files"]]
    paths = {e.path for e in entries}
    if len(paths) != len(entries):
        raise CheckpointError(f"{MANIFEST}: a file listed twice")
    for path in paths:  # `a` and `a/b` cannot both be files
        parts = path.split("/")
        if any("/".join(parts[:n]) in paths for n in range(1, len(parts))):
            raise CheckpointError(f"{MANIFEST}: {path} is inside a file it lists")
    for name in REQUIRED:
        if name not in paths:
            raise CheckpointError(f"{name}: missing")
    return entries


def _entry(item) -> Entry:
    if not isinstance(item, dict):
        raise CheckpointError(f"{MANIFEST}: a file entry is not an object")
    extra = sorted(item.keys() - {"path", "size", "sha256"})
    if extra:
        raise CheckpointError(f"{MANIFEST}: unexpected field {_short(extra[0])} in a file entry")
    path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
    parts = path.split("/") if isinstance(path, str) else [""]
    if not all(_PART.fullmatch(p) and p not in (".", "..") for p in parts) or path == MANIFEST:
        raise CheckpointError(f"{MANIFEST}: path {_short(path)} is not a plain relative path")
    if type(size) is not int or size < 0:
        raise CheckpointError(f"{MANIFEST}: size of {path} is {_short(size)}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise CheckpointError(f"{MANIFEST}: sha256 of {path} is {_short(digest)}")
    return Entry(path, size, digest)


def _record(data: bytes, where: str, fields: dict, exact: bool = True) -> dict:
    """records.parse_record with every field of `fields` (and, `exact`, no other), its
    RecordError as a CheckpointError."""
    try:
        record = parse_record(data, where, required=fields)
    except RecordError as e:
        raise CheckpointError(str(e)) from None
    extra = sorted(record.keys() - fields.keys())
    if exact and extra:
        raise CheckpointError(f"{where}: unexpected field {_short(extra[0])}")
    return record


def _history(data: bytes) -> list[dict]:
    try:
        history = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{HISTORY}: not valid JSON") from None
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise CheckpointError(f"{HISTORY}: not a list of objects")
    return history


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
