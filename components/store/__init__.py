"""The object store: `s3://bucket/prefix` through boto3 (see s3.py), or a local folder.

Every component reads and writes the store through `open_store`, so the same code runs against
KFP's in-cluster MinIO, AWS S3, any S3-compatible endpoint, or a folder on a laptop. Credentials
come only from the environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, which a pod gets
from a Kubernetes Secret); they never appear in a URI, a log line or an error message.

The store's pieces live in base.py (errors and records), local.py (LocalStore), s3_store.py
(S3Store) and s3.py (the boto3 client); this module is the facade every caller imports from,
and `open_store`, which picks one of the two stores, lives here because it needs them both.
"""

from __future__ import annotations

from components.common.errors import InputError
from components.common.provenance import sha256_file
from components.common.uris import is_s3, join, local_path, parse_s3_uri, under_store
from components.store.base import SHA256_META, AlreadyExists, ObjectInfo, Skipped, StoreError
from components.store.local import LocalStore
from components.store.s3_store import S3Store

__all__ = [
    "SHA256_META", "AlreadyExists", "LocalStore", "ObjectInfo", "S3Store", "Skipped", "Store",
    "StoreError", "delete_all", "is_s3", "join", "local_path", "open_store", "parse_s3_uri",
    "sha256_file", "under_store",
]  # fmt: skip

Store = LocalStore | S3Store


def open_store(uri: str, endpoint: str = "") -> Store:
    """Open `s3://bucket/prefix` (on `endpoint`, default `AWS_ENDPOINT_URL` or AWS) or a folder."""
    if not uri:
        raise InputError("store URI is empty: give s3://bucket/prefix or a local folder")
    if not is_s3(uri):
        return LocalStore(local_path(uri))
    bucket, prefix = parse_s3_uri(uri)
    return S3Store(bucket, prefix, endpoint)


def delete_all(store: Store, prefix: str = "") -> int:
    """Delete every object under `prefix` (a run's checkpoints once its model is published, a
    leftover TFJob output); the count deleted."""
    keys = [info.key for info in store.list(prefix)]
    for key in keys:
        store.delete(key)
    return len(keys)
