"""The object store: `s3://bucket/prefix` through the minio client, or a local folder.

Every component reads and writes the store through `open_store`, so the same code runs against
KFP's in-cluster MinIO, AWS S3, any S3-compatible endpoint, or a folder on a laptop. Credentials
come only from the environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, which a pod gets
from a Kubernetes Secret); they never appear in a URI, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

SHA256_META = "sha256"  # user metadata key holding the content digest of an object
_CHUNK = 1 << 20


class StoreError(RuntimeError):
    """A store operation failed; the message names the endpoint, bucket and key, never secrets."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store root
    size: int
    sha256: str | None = None


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def join(*parts: str) -> str:
    """Join URI or key parts with single slashes: join('s3://b/p/', '/x') == 's3://b/p/x'."""
    head, *rest = [p for p in parts if p]
    return "/".join([head.rstrip("/")] + [p.strip("/") for p in rest])


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into (bucket, prefix); raise ValueError naming a bad URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI with a bucket: {uri!r}")
    if "@" in parsed.netloc:
        raise ValueError("an s3:// URI must not carry credentials; use AWS_ACCESS_KEY_ID instead")
    bucket = parsed.netloc
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in "-." for c in bucket):
        raise ValueError(f"invalid bucket name {bucket!r} in {uri!r}")
    return bucket, parsed.path.strip("/")


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """Return (host:port, secure) from `host:port`, `http://host:port` or `https://host:port`."""
    endpoint = endpoint.strip()
    secure = True
    for scheme, tls in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            endpoint, secure = endpoint[len(scheme) :], tls
    endpoint = endpoint.rstrip("/")
    host, _, port = endpoint.partition(":")
    if not host or "/" in endpoint or "@" in endpoint or (port and not port.isdigit()):
        raise ValueError(
            f"invalid s3_endpoint {endpoint!r}: expected host:port or http(s)://host:port"
        )
    return endpoint, secure


def local_path(uri: str) -> Path:
    """A local folder from a plain path or a `file://` URI."""
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" in uri:
        raise ValueError(f"unsupported store URI {uri!r}: use s3://bucket/prefix or a local folder")
    return Path(uri).expanduser()


class LocalStore:
    """A folder standing in for a bucket: the embedded default for laptop runs."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def _path(self, key: str) -> Path:
        # normpath, not resolve(): this runs for every image read, and resolve() costs a
        # system call per path component. A key still cannot climb out of the root.
        path = os.path.normpath(os.path.join(self.root, key))
        if path != str(self.root) and not path.startswith(f"{self.root}{os.sep}"):
            raise StoreError(f"key {key!r} escapes the store root {self.root}")
        return Path(path)

    def put_file(self, key: str, src: str | os.PathLike, sha256: str | None = None) -> None:
        with open(src, "rb") as f:
            self._write(key, lambda tmp: shutil.copyfileobj(f, tmp, _CHUNK))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda tmp: tmp.write(data))

    def _write(self, key: str, fill) -> None:
        """Write beside the destination and rename, so a reader never sees half a file."""
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".part-", delete=False)  # noqa: SIM115 - closed below, removed on failure
        try:
            with tmp:
                fill(tmp)
            os.replace(tmp.name, dest)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise

    def get_file(self, key: str, dest: str | os.PathLike) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError as e:
            raise StoreError(f"no object {self.uri(key)}") from e

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as e:
            raise StoreError(f"no object {self.uri(key)}") from e

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return ObjectInfo(key, path.stat().st_size, sha256_file(path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key (as S3 lists them)."""
        base = self._path(prefix)
        if not base.is_dir():
            return
        found = []
        for folder, _, names in os.walk(base):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            for name in names:
                if not name.startswith(".part-"):
                    found.append((name if rel == "." else f"{rel}/{name}", folder, name))
        for key, folder, name in sorted(found):
            yield ObjectInfo(key, os.stat(os.path.join(folder, name)).st_size)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """`s3://bucket/prefix` on any S3-compatible endpoint, through the minio client."""

    def __init__(self, bucket: str, prefix: str, endpoint: str, secure: bool):
        import minio
        import urllib3

        self.bucket, self.prefix, self.endpoint = bucket, prefix, endpoint
        # Bounded retries with backoff for transient faults (5xx, resets); errors still surface.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120),
            maxsize=32,
            retries=urllib3.Retry(
                total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self.client = minio.Minio(
            endpoint,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
            secure=secure,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
            http_client=http,
        )

    def uri(self, key: str = "") -> str:
        return join(f"s3://{self.bucket}", self.prefix, key)

    def _key(self, key: str) -> str:
        return join(self.prefix, key) if self.prefix else key.strip("/")

    def _error(self, action: str, key: str, exc: Exception) -> StoreError:
        return StoreError(
            f"{action} {self.uri(key)} at endpoint {self.endpoint} failed: {_reason(exc)}"
        )

    def _call(self, action: str, key: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # minio raises S3Error, urllib3 errors, ValueError...
            raise self._error(action, key, e) from None

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (only where the user asked for it)."""
        if not self._call("checking bucket of", "", self.client.bucket_exists, self.bucket):
            self._call("creating bucket of", "", self.client.make_bucket, self.bucket)

    def put_file(self, key: str, src: str | os.PathLike, sha256: str | None = None) -> None:
        meta = {SHA256_META: sha256} if sha256 else None
        self._call(
            "upload to",
            key,
            self.client.fput_object,
            self.bucket,
            self._key(key),
            str(src),
            metadata=meta,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        import io

        meta = {SHA256_META: hashlib.sha256(data).hexdigest()}
        self._call(
            "upload to",
            key,
            self.client.put_object,
            self.bucket,
            self._key(key),
            io.BytesIO(data),
            len(data),
            metadata=meta,
        )

    def get_file(self, key: str, dest: str | os.PathLike) -> None:
        self._call(
            "download of", key, self.client.fget_object, self.bucket, self._key(key), str(dest)
        )

    def get_bytes(self, key: str) -> bytes:
        response = self._call(
            "download of", key, self.client.get_object, self.bucket, self._key(key)
        )
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo | None:
        from minio.error import S3Error

        try:
            st = self.client.stat_object(self.bucket, self._key(key))
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise self._error("stat of", key, e) from None
        except Exception as e:
            raise self._error("stat of", key, e) from None
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        return ObjectInfo(key, st.size, meta.get(f"x-amz-meta-{SHA256_META}"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, sorted by key."""
        full = self._key(prefix)
        full = full + "/" if full and not full.endswith("/") else full
        strip = len(self.prefix.strip("/")) + 1 if self.prefix else 0
        try:
            for obj in self.client.list_objects(self.bucket, prefix=full, recursive=True):
                yield ObjectInfo(obj.object_name[strip:], obj.size or 0)
        except Exception as e:
            raise self._error("listing of", prefix, e) from None

    def delete(self, key: str) -> None:
        self._call("delete of", key, self.client.remove_object, self.bucket, self._key(key))


Store = LocalStore | S3Store


def _reason(exc: Exception) -> str:
    """A short, credential-free account of a failed S3 call."""
    import urllib3.exceptions as http_errors
    from minio.error import S3Error

    if isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, http_errors.MaxRetryError):
        inner = exc.reason
        if isinstance(inner, http_errors.ResponseError):  # e.g. too many 500 error responses
            return f"the server kept answering with errors ({inner}); gave up after retries"
        return f"{_reason(inner) if inner else 'unreachable'}; gave up after retries"
    if isinstance(exc, http_errors.NewConnectionError):
        return "connection refused or host unreachable"
    if isinstance(exc, http_errors.NameResolutionError):
        return "the endpoint's host name does not resolve"
    if isinstance(exc, (http_errors.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, http_errors.ProtocolError):
        return "the connection was dropped"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_store(uri: str, endpoint: str = "") -> Store:
    """Open `s3://bucket/prefix` (on `endpoint`, default `AWS_ENDPOINT_URL` or AWS) or a folder."""
    if not uri:
        raise ValueError("store URI is empty: give s3://bucket/prefix or a local folder")
    if not is_s3(uri):
        return LocalStore(local_path(uri))
    bucket, prefix = parse_s3_uri(uri)
    host, secure = parse_endpoint(
        endpoint or os.environ.get("AWS_ENDPOINT_URL") or "s3.amazonaws.com"
    )
    return S3Store(bucket, prefix, host, secure)


def sync_down(store: Store, prefix: str, dest: Path) -> list[Path]:
    """Copy every object under `prefix` into the folder `dest`, keeping relative paths."""
    paths = []
    base = prefix.strip("/")
    for info in store.list(prefix):
        rel = info.key[len(base) :].lstrip("/") if base else info.key
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(info.key, target)
        paths.append(target)
    return paths
