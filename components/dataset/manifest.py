"""The dataset manifest: written last by unpack-and-upload, required by every reader.

A dataset prefix is complete only when its manifest exists and every file it lists has the listed
size; a reader therefore never mistakes a half-finished upload for a whole dataset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from components.common import spec
from components.common.errors import StepError
from components.common.records import RecordError, check_fields, parse_record, plain_name
from components.store import Store, StoreError, join, sha256_file


class DatasetError(StepError, RuntimeError):
    """A dataset in the store is missing, incomplete or corrupt."""


def write_manifest(store: Store, prefix: str, files: dict[str, dict], source: str) -> None:
    """Record `files` ({name: {"sha256", "size", "count"}}) as the complete content of `prefix`."""
    manifest = {
        "format": "mnist-idx/1",
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset_digest": dataset_digest(files),
        "files": files,
    }
    store.put_bytes(join(prefix, spec.MANIFEST), json.dumps(manifest, indent=2).encode())


def dataset_digest(files: dict[str, dict]) -> str:
    """The dataset digest of manifest entries (components/common/provenance.py)."""
    from components.common.provenance import digest_of

    return digest_of({name: meta["sha256"] for name, meta in files.items()})


def read_manifest(store: Store, prefix: str) -> dict:
    try:
        raw = store.get_bytes(join(prefix, spec.MANIFEST))
    except StoreError as e:
        raise DatasetError(
            f"no complete dataset at {store.uri(prefix)}: {spec.MANIFEST} is missing "
            "(run unpack-and-upload first, or again if it was interrupted)"
        ) from e
    where = store.uri(join(prefix, spec.MANIFEST))
    try:
        manifest = parse_record(raw, where, required={"files": dict})
        for name, meta in manifest["files"].items():
            entry = f"{where}: files[{plain_name(name, where)!r}]"
            check_fields(meta, entry, required={"size": int, "sha256": str})
    except RecordError as e:
        raise DatasetError(f"not a valid manifest: {e}") from None
    return manifest


def fetch_dataset(store: Store, prefix: str, dest: Path) -> dict:
    """Download every file the manifest lists into `dest`, verifying size and sha256."""
    manifest = read_manifest(store, prefix)
    dest.mkdir(parents=True, exist_ok=True)
    for name, meta in manifest["files"].items():
        target = dest / name
        store.get_file(join(prefix, name), target)
        if target.stat().st_size != meta["size"] or sha256_file(target) != meta["sha256"]:
            raise DatasetError(f"{store.uri(join(prefix, name))} does not match its manifest entry")
    return manifest
