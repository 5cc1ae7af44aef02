"""Store and endpoint addresses, parsed without touching a store: what `s3://bucket/prefix`,
a local folder, a `file://` URI and an S3 endpoint mean, and the checks the parameters apply.

Pure functions, so the parameter table (parameters.py) can check a URI before any client exists.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from components.common.errors import InputError
from components.common.redact import redact_text


def join(*parts: str) -> str:
    """Join URI or key parts with single slashes: join('s3://b/p/', '/x') == 's3://b/p/x'."""
    head, *rest = [p for p in parts if p]
    return "/".join([head.rstrip("/")] + [p.strip("/") for p in rest])


def under_store(store_uri: str, uri: str) -> str:
    """`uri` itself when it is a full URI or an absolute path, else a path under `store_uri`:
    the default `images` means `<store_uri>/images`."""
    if is_s3(uri) or "://" in uri or uri.startswith("/"):
        return uri
    return join(store_uri, uri)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into (bucket, prefix); raise ValueError naming a bad URI."""
    try:
        parsed = urlparse(uri)
    except ValueError as e:  # a '[' with no ']' in the bucket
        raise InputError(f"not an s3:// URI with a bucket: {uri!r} ({e})") from None
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InputError(f"not an s3:// URI with a bucket: {uri!r}")
    if "@" in parsed.netloc:
        raise InputError("an s3:// URI must not carry credentials; use AWS_ACCESS_KEY_ID instead")
    bucket = parsed.netloc
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in "-." for c in bucket):
        raise InputError(f"invalid bucket name {bucket!r} in {uri!r}")
    return bucket, parsed.path.strip("/")


def local_path(uri: str) -> Path:
    """A local folder from a plain path or a `file://` URI."""
    if "\x00" in uri:  # the OS refuses it with a bare ValueError at the first use
        raise InputError(f"{uri!r} holds a NUL character, which no path may hold")
    if uri.startswith("file://"):
        try:
            return Path(urlparse(uri).path)
        except ValueError as e:  # a '[' with no ']' where the host would be
            raise InputError(f"unsupported store URI {uri!r}: {e}") from None
    if "://" in uri:
        raise InputError(f"unsupported store URI {uri!r}: use s3://bucket/prefix or a local folder")
    return Path(uri).expanduser()


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """Return (host:port, secure) from `host:port`, `http://host:port` or `https://host:port`."""
    endpoint = endpoint.strip()
    secure = True
    for scheme, tls in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            endpoint, secure = endpoint[len(scheme) :], tls
    endpoint = endpoint.rstrip("/")
    if "@" in endpoint or "?" in endpoint:
        raise InputError(
            f"s3_endpoint {redact_text(endpoint)!r} carries credentials or a query: give "
            "host:port and put the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        )
    host, _, port = endpoint.partition(":")
    if not host or "/" in endpoint or (port and not port.isdigit()):
        raise InputError(
            f"invalid s3_endpoint {endpoint!r}: expected host:port or http(s)://host:port"
        )
    return endpoint, secure
