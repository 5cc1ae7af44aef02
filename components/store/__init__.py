"""The object store: `s3://bucket/prefix` through boto3 (see s3.py), or a local folder.

Every component reads and writes the store through `open_store`, so the same code runs against
KFP's in-cluster MinIO, AWS S3, any S3-compatible endpoint, or a folder on a laptop. Credentials
come only from the environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, which a pod gets
from a Kubernetes Secret); they never appear in a URI, a log line or an error message.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from components.common.errors import InputError, StepError
from components.common.provenance import sha256_file
from components.common.uris import is_s3, join, local_path, parse_s3_uri, under_store
from components.store import s3

__all__ = [
    "SHA256_META", "AlreadyExists", "LocalStore", "ObjectInfo", "S3Store", "Skipped", "Store",
    "StoreError", "is_s3", "join", "local_path", "open_store", "parse_s3_uri", "sha256_file",
    "under_store",
]  # fmt: skip

SHA256_META = "sha256"  # user metadata key holding the content digest of an object
_CHUNK = 1 << 20
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import: os.umask can only be read by setting it
_MULTIPART_FROM = 64 << 20  # larger files go up in parts, through s3transfer


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


def _os_errors(method):
    """A LocalStore method whose OSError (a full disk, a folder it may not write) becomes a
    StoreError naming the object: the one error family a step reports in one line."""

    @functools.wraps(method)
    def wrapper(self, key: str, *args, **kwargs):
        try:
            return method(self, key, *args, **kwargs)
        except OSError as e:
            why = e.strerror or type(e).__name__
            raise StoreError(f"{self.uri(key)}: {why}") from None

    return wrapper


class LocalStore:
    """A folder standing in for a bucket: the embedded default for laptop runs.

    Like a bucket it holds only regular files: symbolic links, FIFOs and other special files are
    never followed or read (`scan` names them as skipped), and nothing is read or written outside
    the root. Files are created with the mode the umask gives, as any other program would.
    """

    def __init__(self, root: Path):
        self.root = root.resolve()

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def _path(self, key: str) -> Path:
        # normpath, not resolve(): this runs for every image read, and resolve() costs a
        # system call per path component. A key still cannot climb out of the root.
        path = os.path.normpath(os.path.join(self.root, key))
        inside = str(self.root).rstrip(os.sep) + os.sep  # the root may be "/" itself
        if path != str(self.root) and not path.startswith(inside):
            raise StoreError(f"key {key!r} is outside the store {self.root}")
        return Path(path)

    def _contained(self, path: Path, key: str) -> Path:
        """`path` if its real location, links resolved, is still inside the root."""
        real = path.resolve()
        if real != self.root and self.root not in real.parents:
            raise StoreError(f"{self.uri(key)} leads outside the store through a symbolic link")
        return path

    @_os_errors
    def put_file(
        self, key: str, src: str | os.PathLike, sha256: str | None = None, exclusive: bool = False
    ) -> None:
        with open(src, "rb") as f:
            self._write(key, lambda tmp: shutil.copyfileobj(f, tmp, _CHUNK), exclusive)

    @_os_errors
    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> None:
        self._write(key, lambda tmp: tmp.write(data), exclusive)

    def _write(self, key: str, fill, exclusive: bool = False) -> None:
        """Write beside the destination and rename, so a reader never sees half a file.

        With `exclusive` the rename is a hard link, which fails if the name is taken: the
        folder's counterpart of S3's `If-None-Match: *`.
        """
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._contained(dest.parent, key)
        tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".part-", delete=False)  # noqa: SIM115 - closed below, removed on failure
        try:
            with tmp:
                fill(tmp)
                os.fchmod(tmp.fileno(), 0o666 & ~_UMASK)  # not mkstemp's 0600
            if exclusive:
                os.link(tmp.name, dest)
                os.unlink(tmp.name)
            else:
                os.replace(tmp.name, dest)
        except FileExistsError:
            Path(tmp.name).unlink(missing_ok=True)
            raise AlreadyExists(f"{self.uri(key)} already exists; not overwriting it") from None
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise

    def _open(self, key: str):
        """Open a regular file for reading: never a link, and never block on a FIFO."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise StoreError(f"no object {self.uri(key)}") from None
        except OSError as e:
            why = "is a symbolic link" if e.errno == errno.ELOOP else e.strerror
            raise StoreError(f"{self.uri(key)}: {why}") from None
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StoreError(f"{self.uri(key)}: not a regular file")
        return open(fd, "rb")

    @_os_errors
    def get_file(self, key: str, dest: str | os.PathLike) -> None:
        with self._open(key) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)

    @_os_errors
    def get_bytes(self, key: str) -> bytes:
        with self._open(key) as f:
            return f.read()

    @_os_errors
    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if path.is_symlink() or not path.is_file():
            return None
        return ObjectInfo(key, path.stat().st_size, sha256_file(path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key (as S3 lists them)."""
        yield from self.scan(prefix)[0]

    def scan(self, prefix: str = "") -> tuple[list[ObjectInfo], list[Skipped]]:
        """The regular files under `prefix`, and what else is there (links, FIFOs...) and why."""
        base = self._path(prefix)
        if base.is_symlink():
            return [], [Skipped(prefix.strip("/"), "symbolic link: not followed")]
        if not base.is_dir():
            return [], []
        if not self._unlinked(base):
            return [], [Skipped(prefix.strip("/"), "reached through a symbolic link: not followed")]
        found, skipped = [], []
        for folder, dirs, names in os.walk(base):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            for name in sorted(dirs + names):
                key = name if rel == "." else f"{rel}/{name}"
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:  # removed or renamed by a writer since the walk
                    continue
                kind = _kind(st.st_mode)
                if kind == "folder":
                    continue
                if name.startswith(".part-"):
                    skipped.append(Skipped(key, "an unfinished write (.part-*)"))
                elif kind == "file":
                    found.append(ObjectInfo(key, st.st_size))
                else:
                    skipped.append(Skipped(key, f"{kind}: not read"))
        return sorted(found, key=lambda o: o.key), sorted(skipped)

    def _unlinked(self, path: Path) -> bool:
        """Whether `path` is inside the root with no symbolic link on the way to it."""
        return os.path.realpath(path) == str(path)

    @_os_errors
    def delete(self, key: str) -> None:
        """Remove one file; refused when a folder on its path is a link (checked just before)."""
        path = self._path(key)
        if not self._unlinked(path.parent):
            raise StoreError(f"{self.uri(key)}: reached through a symbolic link; not deleted")
        path.unlink(missing_ok=True)

    @_os_errors
    def remove_empty_folders(self, prefix: str) -> int:
        """Remove the empty folders under `prefix`, then those it leaves empty above it, up to
        (not including) the root. Each folder is checked just before its removal: never one
        reached through a symbolic link, never one outside the root. The count removed."""
        top = self._path(prefix)
        if not top.is_dir() or not self._unlinked(top):
            return 0
        removed = 0
        for folder, _, _ in os.walk(top, topdown=False):  # os.walk never enters a linked folder
            removed += self._rmdir_if_empty(Path(folder))
        above = top.parent if not top.exists() else self.root  # kept: its parents are not empty
        while self.root in above.parents and self._rmdir_if_empty(above):
            removed += 1
            above = above.parent
        return removed

    def _rmdir_if_empty(self, path: Path) -> bool:
        if path == self.root or not self._unlinked(path) or not path.is_dir():
            return False
        if any(path.iterdir()):
            return False
        try:
            path.rmdir()  # fails on a link or a folder filled meanwhile
        except OSError:
            return False
        return True


def _kind(mode: int) -> str:
    if stat_module.S_ISLNK(mode):
        return "symbolic link"
    if stat_module.S_ISDIR(mode):
        return "folder"
    if stat_module.S_ISREG(mode):
        return "file"
    return "FIFO" if stat_module.S_ISFIFO(mode) else "special file"


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
        """The bucket-level prefix to list for `prefix`, and how much of a listed key to cut
        to make it relative to the store root."""
        full = self._key(prefix.strip("/")) if prefix.strip("/") else self.prefix
        return full, len(self.prefix) + 1 if self.prefix else 0

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key."""
        full, strip = self._listing(prefix)
        full = full + "/" if full and not full.endswith("/") else full
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
        for info in self.list(prefix):
            name = info.key.rsplit("/", 1)[-1]
            if name.startswith(".part-"):
                skipped.append(Skipped(info.key, "an unfinished write (.part-*)"))
            elif any(part in ("", ".", "..") for part in info.key.split("/")):
                why = "a key with an empty, '.' or '..' part: unsupported"
                skipped.append(Skipped(info.key, why))
            else:
                found.append(info)
        return found, skipped

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


Store = LocalStore | S3Store


def open_store(uri: str, endpoint: str = "") -> Store:
    """Open `s3://bucket/prefix` (on `endpoint`, default `AWS_ENDPOINT_URL` or AWS) or a folder."""
    if not uri:
        raise InputError("store URI is empty: give s3://bucket/prefix or a local folder")
    if not is_s3(uri):
        return LocalStore(local_path(uri))
    bucket, prefix = parse_s3_uri(uri)
    return S3Store(bucket, prefix, endpoint)
