"""Provenance: what each output was made from, so every prediction can be traced to its data.

The chain, each link a `provenance.json` (or artifact metadata) naming the one before:

    predictions/<version>/provenance.json  -> model URI, version and SavedModel digest
    models/mnist/<version>/provenance.json -> dataset digest, training parameters, versions, run
    datasets/mnist/MANIFEST.json           -> dataset digest (and each file's sha256)

The dataset digest is the sha256 of the sorted `<IDX name> <sha256 of its content>` lines, so
download (which hashes the decompressed files it verifies), unpack-and-upload and train compute
the same value for the same data.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROVENANCE_FILE = "provenance.json"
DIGEST_PACKAGES = ("mnist-kfp", "kfp", "tensorflow", "keras", "numpy", "pillow")
# other distributions of the same module: the CPU-only TensorFlow of the laptop venv (Makefile)
SAME_MODULE = {"tensorflow": ("tensorflow-cpu",)}


def digest_of(sha256_by_name: dict[str, str]) -> str:
    """One digest for a set of named files: sha256 of their sorted `name sha256` lines."""
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(sha256_by_name.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def folder_digest(folder: Path, skip: tuple[str, ...] = (PROVENANCE_FILE,)) -> str:
    """The digest of every file under `folder` (by relative path), but `skip`'s names."""
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }
    return digest_of(files)


def versions() -> dict[str, str]:
    """Python's version and those of the packages that shape a model, as installed here."""
    found = {"python": platform.python_version()}
    for name in DIGEST_PACKAGES:
        for distribution in (name, *SAME_MODULE.get(name, ())):
            try:
                found[name] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    return found


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def dumps(record: dict) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
