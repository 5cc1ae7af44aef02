"""S3Store: `s3://bucket/prefix` on any S3-compatible endpoint, through the client of s3.py.

Apart from LocalStore because all of it is about S3's API: keys under a prefix, conditional
creates (`If-None-Match: *`), multipart uploads and their leftovers, and botocore's errors
turned into StoreErrors that name the endpoint, bucket and key (never a credential).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from components.common.uris import join
from components.store import s3
from components.store.base import (
    _CHUNK,
    SHA256_META,
    AlreadyExists,
    ObjectInfo,
    Skipped,
    StoreError,
)

_MULTIPART_FROM = 64 << 20  # larger files go up in parts, through s3transfer


class S3Store:
    """`s3://bucket/prefix` on any S3-compatible endpoint, through boto3 (see s3.py for why)."""

    def __init__(self, bucket: str, prefix: str, endpoint: str = ""):
        self.bucket, self.prefix = bucket, prefix
        self.endpoint = s3.resolve_endpoint(endpoint)[0]
        self.bounds = s3.Bounds.from_env()
        self.client = s3.client(endpoint, self.bounds)

    def uri(self, key: str = "") -> str:
        return join(f"s3://{self.bucket}", self.prefix, key)

    def _key(self, key: str) -> str:
        # Keys are kept as listed: an object named `a//b` is not the object `a/b`.
        key = key.lstrip("/") if not self.prefix else key
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _error(self, action: str, key: str, exc: Exception) -> StoreError:
        return StoreError(
            f"{action} {self.uri(key)} at endpoint {self.endpoint} failed: "
            f"{s3.reason(exc, self.bounds)}"
        )

    def _call(self, action: str, key: str, fn, **kwargs):
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as e:  # botocore raises ClientError, connection and timeout errors...
            if s3.error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise AlreadyExists(f"{self.uri(key)} already exists; not overwriting it") from None
            raise self._error(action, key, e) from None

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (only where the user asked for it)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - missing or unreachable: create_bucket says which
            self._call("creating bucket of", "", self.client.create_bucket)

    def put_file(
        self, key: str, src: str | os.PathLike, sha256: str | None = None, exclusive: bool = False
    ) -> None:
        """Upload a file; with `exclusive`, only if no object has that key (else AlreadyExists)."""
        meta = {SHA256_META: sha256} if sha256 else {}
        if exclusive or os.path.getsize(src) < _MULTIPART_FROM:
            with open(src, "rb") as body:
                self._put(key, body, meta, exclusive)
            return
        from boto3.s3.transfer import TransferConfig

        self._call(
            "upload to",
            key,
            lambda Bucket, **kw: self.client.upload_file(str(src), Bucket, **kw),
            Key=self._key(key),
            ExtraArgs={"Metadata": meta},
            Config=TransferConfig(multipart_threshold=_MULTIPART_FROM),
        )

    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> None:
        self._put(key, data, {SHA256_META: hashlib.sha256(data).hexdigest()}, exclusive)

    def _put(self, key: str, body, meta: dict, exclusive: bool) -> None:
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        self._call(
            "upload to",
            key,
            self.client.put_object,
            Key=self._key(key),
            Body=body,
            Metadata=meta,
            **extra,
        )

    def get_file(self, key: str, dest: str | os.PathLike) -> None:
        """Download to `dest` through a temporary name, so `dest` is whole or absent."""
        dest = Path(dest)
        tmp = dest.with_name(f".part-{dest.name}")
        try:
            body = self._get(key)
            with open(tmp, "wb") as out:
                for chunk in body.iter_chunks(_CHUNK):
                    out.write(chunk)
            os.replace(tmp, dest)
        except StoreError:
            raise
        except Exception as e:  # a body cut short or a read that timed out
            raise self._error("download of", key, e) from None
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        body = self._get(key)
        try:
            return body.read()
        except Exception as e:
            raise self._error("download of", key, e) from None
        finally:
            body.close()

    def _get(self, key: str):
        return self._call("download of", key, self.client.get_object, Key=self._key(key))["Body"]

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            if s3.http_status(e) == 404 or s3.error_code(e) in ("404", "NoSuchKey"):
                return None
            raise self._error("stat of", key, e) from None
        return ObjectInfo(key, head["ContentLength"], head.get("Metadata", {}).get(SHA256_META))

    def _listing(self, prefix: str) -> tuple[str, int]:
        """The bucket-level prefix to list for `prefix`, ending at a folder's boundary (`a/`
        lists `a/x`, never `ab/x`), and how much of a listed key to cut to make it relative to
        the store root."""
        full = self._key(prefix.strip("/"))  # the store's own prefix for ""
        return f"{full}/" if full else "", len(self.prefix) + 1 if self.prefix else 0

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key."""
        full, strip = self._listing(prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][strip:], obj.get("Size", 0))
        except Exception as e:
            raise self._error("listing of", prefix, e) from None

    def scan(self, prefix: str = "") -> tuple[list[ObjectInfo], list[Skipped]]:
        """The objects under `prefix` the pipeline reads, and the others and why (as a folder)."""
        found, skipped = [], []
        for entry in self.walk(prefix):
            (skipped if isinstance(entry, Skipped) else found).append(entry)
        return found, skipped

    def walk(self, prefix: str = "") -> Iterator[ObjectInfo | Skipped]:
        """`scan` as a stream, a listing page at a time: the objects in key order, each other
        key as a Skipped where it comes. Memory stays flat for any number of objects."""
        for info in self.list(prefix):
            name = posixpath.basename(info.key)
            if name.startswith(".part-"):
                yield Skipped(info.key, "an unfinished write (.part-*)")
            elif any(part in ("", ".", "..") for part in info.key.split("/")):
                yield Skipped(info.key, "a key with an empty, '.' or '..' part: unsupported")
            else:
                yield info

    def incomplete_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads under `prefix` that were never completed."""
        full, strip = self._listing(prefix)
        found = self._call(
            "listing uploads under", prefix, self.client.list_multipart_uploads, Prefix=full
        )
        return [(u["Key"][strip:], u["UploadId"]) for u in found.get("Uploads", [])]

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call(
            "aborting upload of",
            key,
            self.client.abort_multipart_upload,
            Key=self._key(key),
            UploadId=upload_id,
        )

    def delete(self, key: str) -> None:
        self._call("delete of", key, self.client.delete_object, Key=self._key(key))
