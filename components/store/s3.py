"""One place turns an S3 endpoint and the environment into a client, and its errors into words.

Library: boto3, for both the store and an `s3://` download source. It sends conditional creates
(`If-None-Match: *`, which MinIO and AWS honour), so two exports can claim a model version
atomically; minio-py 7.2 cannot send that header. boto3 also brings s3transfer for multipart
uploads, a retry mode with a fixed number of attempts, and separate connect and read timeouts,
so every call is bounded in time and the error can say what the bound was.

Endpoint: the `s3_endpoint` parameter, else `AWS_ENDPOINT_URL`, else AWS. Credentials: only the
environment's (or the platform's, such as IRSA); without any, requests go unsigned, as for a public
bucket. They never appear in a URI, a log line or an error message.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from components.common.redact import redact_text
from components.common.units import env_number
from components.common.uris import parse_endpoint

__all__ = [
    "Bounds",
    "client",
    "error_code",
    "http_status",
    "parse_endpoint",
    "reason",
    "resolve_endpoint",
]

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
AWS_HOST = "s3.amazonaws.com"


@dataclass(frozen=True)
class Bounds:
    """How long one S3 call may take: each try within `connect` + `read` seconds, `attempts` tries.

    Overridable from the environment (MNIST_S3_CONNECT_TIMEOUT, MNIST_S3_READ_TIMEOUT,
    MNIST_S3_ATTEMPTS), so tests against a stalling server need not wait minutes.
    """

    connect: float = 10.0
    read: float = 30.0
    attempts: int = 3

    @classmethod
    def from_env(cls) -> Bounds:
        return cls(
            env_number("MNIST_S3_CONNECT_TIMEOUT", cls.connect),
            env_number("MNIST_S3_READ_TIMEOUT", cls.read),
            env_number("MNIST_S3_ATTEMPTS", cls.attempts, int),
        )

    def describe(self) -> str:
        return f"{self.attempts} attempt(s), each within {self.connect:g}+{self.read:g} s"


def resolve_endpoint(endpoint: str) -> tuple[str, bool]:
    """(host:port, secure) of `endpoint`, else (when it is "") $AWS_ENDPOINT_URL, else AWS."""
    return parse_endpoint(endpoint or os.environ.get(ENDPOINT_ENV) or AWS_HOST)


# What boto3 reads from the environment to sign and route requests: a client made under other
# values is another client.
_CLIENT_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
)  # fmt: skip


# Connections one client keeps: the 16 writers of an export's images, and s3transfer's 10
# threads for each large file, without waiting for one another.
_POOL = 32


def client(endpoint: str = "", bounds: Bounds | None = None):
    """A boto3 S3 client for `endpoint` with bounded timeouts and retries.

    One per process for the same endpoint, bounds and credentials: the stores a step opens (its
    dataset, its store root, a results prefix) share one client and its connection pool, instead
    of paying for a new client each (boto3 clients are thread-safe).
    """
    host, secure = resolve_endpoint(endpoint)
    environment = tuple(os.environ.get(name) for name in _CLIENT_ENV)
    return _client(host, secure, bounds or Bounds.from_env(), environment)


@functools.lru_cache(maxsize=8)
def _client(host: str, secure: bool, bounds: Bounds, environment: tuple):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    custom = host != AWS_HOST
    config = Config(
        connect_timeout=bounds.connect,
        read_timeout=bounds.read,
        # total_max_attempts counts the first try; botocore's max_attempts would count retries
        retries={"total_max_attempts": bounds.attempts, "mode": "standard"},
        max_pool_connections=_POOL,
        signature_version=None if session.get_credentials() else UNSIGNED,
        s3={"addressing_style": "path"} if custom else None,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    region = session.region_name or "us-east-1"
    url = f"{'https' if secure else 'http'}://{host}"
    return session.client("s3", endpoint_url=url, region_name=region, config=config)


# A forked process makes its own clients: one that inherited its parent's pooled connections
# would write on the same sockets as the parent or a sibling, and two requests interleaved on
# one keep-alive connection can store one's bytes as the body of the other (seen on SeaweedFS).
if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_client.cache_clear)


def _answer(exc: BaseException, part: str) -> dict:
    """One part ('Error', 'ResponseMetadata') of a failed call's answer; {} when there is none."""
    return (getattr(exc, "response", None) or {}).get(part) or {}


def error_code(exc: Exception) -> str:
    """The S3 error code of a ClientError ('NoSuchKey', 'PreconditionFailed'...), else ''."""
    return str(_answer(exc, "Error").get("Code", ""))


def http_status(exc: Exception) -> int:
    return int(_answer(exc, "ResponseMetadata").get("HTTPStatusCode") or 0)


def reason(exc: BaseException, bounds: Bounds | None = None) -> str:
    """A short, credential-free account of a failed S3 call."""
    from botocore import exceptions as bx

    bounds = bounds or Bounds.from_env()
    if isinstance(exc, bx.ClientError):
        code, status = error_code(exc), http_status(exc)
        message = _answer(exc, "Error").get("Message")
        if status >= 500:
            # an answer with no body has its status for a code: "HTTP 503", not "HTTP 503 503"
            what = f"HTTP {status} {code}" if code not in ("", str(status)) else f"HTTP {status}"
            return f"the server kept answering {what} ({bounds.attempts} attempt(s))"
        return f"{code}: {message}" if message else f"{code} (HTTP {status})"
    if isinstance(exc, bx.ConnectTimeoutError):
        return f"could not connect ({bounds.describe()})"
    if isinstance(exc, bx.ReadTimeoutError):
        return f"no answer ({bounds.describe()})"
    if isinstance(exc, bx.SSLError):
        return "TLS handshake failed (is the endpoint plain http? then write http://host:port)"
    if isinstance(exc, bx.EndpointConnectionError):
        return f"connection refused or host unreachable ({bounds.attempts} attempt(s))"
    if isinstance(exc, (bx.ConnectionClosedError, bx.IncompleteReadError)):
        return f"the connection was dropped ({bounds.attempts} attempt(s))"
    if isinstance(exc, bx.NoCredentialsError):
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact_text(f"{name}: {text}") if text else name
