"""Checking what was fetched against MNIST's own files: a `.gz` file, or an archive.

The digests are of the decompressed IDX content, which the original release and every mirror
share even where their gzip wrappers differ; a stream that decompresses past the original's
size is stopped there, so a gzip bomb costs no more than one MNIST file.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import IO

from components.dataset import archive, mnist
from components.dataset.bounded import ArchiveError, read_chunks
from components.download.transport import DownloadError

_SPECS = {f.name: f for f in mnist.FILES}


class ChecksumError(DownloadError):
    """A fetched file is not the original MNIST file it is named after."""


def _hash_idx(stream: IO[bytes], spec: mnist.IdxFile, label: str) -> str:
    """sha256 of a decompressed IDX stream, stopping early once it outgrows the original."""
    digest, size = hashlib.sha256(), 0
    for chunk in read_chunks(stream, label, "file"):
        size += len(chunk)
        if size > spec.size:
            raise ChecksumError(f"{label}: decompresses past the {spec.size} bytes of {spec.name}")
        digest.update(chunk)
    return digest.hexdigest()


def _check_digest(digest: str, spec: mnist.IdxFile, label: str) -> None:
    if digest != spec.sha256:
        raise ChecksumError(
            f"{label}: sha256 of the decompressed content is {digest}, expected {spec.sha256} "
            f"for {spec.name} (for a custom IDX set, set verify_checksums=False)"
        )


def verify_file(path: Path, name: str = "") -> dict[str, str]:
    """Check a fetched `.gz` file or archive against the original digests; {idx name: sha256}.

    Raises ChecksumError for a mismatch or a missing file, DownloadError for a corrupt file.
    """
    label = name or path.name
    try:
        return (
            _verify_archive(path, label) if archive.is_archive(label) else _verify_gz(path, label)
        )
    except ArchiveError as e:
        raise DownloadError(str(e)) from e


def _verify_gz(path: Path, label: str) -> dict[str, str]:
    spec = _SPECS[archive.idx_name(label)]
    with gzip.open(path, "rb") as f:
        digest = _hash_idx(f, spec, label)
    _check_digest(digest, spec, label)
    return {spec.name: digest}


def _verify_archive(path: Path, label: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    for idx, stream in archive.iter_idx_members(path):
        digests[idx] = _hash_idx(stream, _SPECS[idx], f"{label}: {idx}")
        _check_digest(digests[idx], _SPECS[idx], f"{label}: {idx}")
    missing = sorted(set(_SPECS) - digests.keys())
    if missing:
        raise ChecksumError(f"{label}: holds no {', '.join(missing)} (raw or .gz)")
    return digests
