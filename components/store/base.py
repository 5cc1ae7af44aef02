"""What every store shares: its errors, the records it lists, and the sha256 metadata key.

LocalStore (local.py) and S3Store (s3_store.py) both raise these and both return these, so a
caller handles one family whichever store `open_store` gave it. Kept apart from the two
stores so that each imports only this, and the package's __init__ can re-export all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from components.common.errors import StepError

SHA256_META = "sha256"  # user metadata key holding the content digest of an object
_CHUNK = 1 << 20  # bytes copied at a time, by either store


class StoreError(StepError, RuntimeError):
    """A store operation failed; the message names the endpoint, bucket and key, never secrets."""


class AlreadyExists(StoreError):
    """An exclusive create found the key taken (another writer won it)."""


class Skipped(NamedTuple):
    """Something under a prefix that is not an object the pipeline reads, and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store root
    size: int
    sha256: str | None = None
