"""What a failed S3 call says (components/store/s3.py): the one line a person reads for each
kind of failure botocore raises, with the bounds that applied and never a credential; and how
long a call may take, as the environment sets it. No server is needed: these are the
exceptions botocore raises, made here."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx

from components.common.errors import InputError
from components.store import s3

BOUNDS = s3.Bounds(connect=2.0, read=7.5, attempts=4)
URL = "http://127.0.0.1:9"


def client_error(code: str, status: int, message: str | None = None) -> bx.ClientError:
    error = {"Code": code} if message is None else {"Code": code, "Message": message}
    response = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
    return bx.ClientError(response, "GetObject")


TLS = "TLS handshake failed (is the endpoint plain http? then write http://host:port)"
NO_CREDENTIALS = "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
EACH = "4 attempt(s), each within 2+7.5 s"
KEPT_ANSWERING = "the server kept answering HTTP"
REFUSED = "connection refused or host unreachable (4 attempt(s))"
DROPPED = "the connection was dropped (4 attempt(s))"


@pytest.mark.parametrize(
    "exc, said",
    [
        (client_error("NoSuchKey", 404, "No such key"), "NoSuchKey: No such key"),
        (client_error("AccessDenied", 403), "AccessDenied (HTTP 403)"),
        (client_error("AccessDenied", 403, ""), "AccessDenied (HTTP 403)"),
        (client_error("Internal", 500, "boom"), f"{KEPT_ANSWERING} 500 Internal (4 attempt(s))"),
        (client_error("", 503), f"{KEPT_ANSWERING} 503 (4 attempt(s))"),
        (client_error("SlowDown", 499, "wait"), "SlowDown: wait"),
        (bx.ConnectTimeoutError(endpoint_url=URL), f"could not connect ({EACH})"),
        (bx.ReadTimeoutError(endpoint_url=URL), f"no answer ({EACH})"),
        (bx.SSLError(endpoint_url=URL, error="bad record"), TLS),
        (bx.EndpointConnectionError(endpoint_url=URL), REFUSED),
        (bx.ConnectionClosedError(endpoint_url=URL), DROPPED),
        (bx.IncompleteReadError(actual_bytes=1, expected_bytes=2), DROPPED),
        (bx.NoCredentialsError(), NO_CREDENTIALS),
        (OSError("first line\nsecond line"), "OSError: first line"),
        (ValueError("  "), "ValueError"),
        (RuntimeError("x" * 300), "RuntimeError: " + "x" * 200),
    ],
)  # fmt: skip
def test_each_failure_is_one_line_that_says_what_happened(exc, said):
    assert s3.reason(exc, BOUNDS) == said


def test_a_secret_in_an_unexpected_error_is_hidden():
    said = s3.reason(
        RuntimeError("GET http://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI@h/ failed"), BOUNDS
    )
    assert "wJalrXUtnFEMI" not in said and said.startswith("RuntimeError: GET http://")


def test_without_bounds_the_environments_are_named(monkeypatch):
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "6")
    said = s3.reason(bx.EndpointConnectionError(endpoint_url=URL))
    assert said == "connection refused or host unreachable (6 attempt(s))"


@pytest.mark.parametrize(
    "exc, code, status",
    [
        (client_error("PreconditionFailed", 412), "PreconditionFailed", 412),
        (bx.ClientError({"Error": {}, "ResponseMetadata": {}}, "HeadObject"), "", 0),
        (bx.ClientError({}, "HeadObject"), "", 0),
        (bx.ClientError({"ResponseMetadata": {"HTTPStatusCode": None}}, "HeadObject"), "", 0),
        (OSError("no response at all"), "", 0),
    ],
)
def test_the_code_and_status_of_an_answer_or_none(exc, code, status):
    assert (s3.error_code(exc), s3.http_status(exc)) == (code, status)


def test_the_bounds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MNIST_S3_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("MNIST_S3_READ_TIMEOUT", "1.25")
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2")
    bounds = s3.Bounds.from_env()
    assert bounds == s3.Bounds(connect=0.5, read=1.25, attempts=2)
    assert type(bounds.attempts) is int
    assert bounds.describe() == "2 attempt(s), each within 0.5+1.25 s"


def test_unset_bounds_are_the_defaults(monkeypatch):
    for name in ("MNIST_S3_CONNECT_TIMEOUT", "MNIST_S3_READ_TIMEOUT", "MNIST_S3_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    assert s3.Bounds.from_env() == s3.Bounds(connect=10.0, read=30.0, attempts=3)
    assert s3.Bounds().describe() == "3 attempt(s), each within 10+30 s"


def test_a_fractional_number_of_attempts_is_refused(monkeypatch):
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2.5")
    with pytest.raises(InputError, match="MNIST_S3_ATTEMPTS='2.5' is not an integer"):
        s3.Bounds.from_env()


@pytest.mark.parametrize(
    "endpoint, environment, expected",
    [
        ("http://minio:9000", "http://other:1", ("minio:9000", False)),
        ("", "https://store.example:8443", ("store.example:8443", True)),
        ("", None, ("s3.amazonaws.com", True)),
        ("", "", ("s3.amazonaws.com", True)),
    ],
)
def test_the_endpoint_is_the_parameter_then_the_environment_then_aws(
    monkeypatch, endpoint, environment, expected
):
    if environment is None:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", environment)
    assert s3.resolve_endpoint(endpoint) == expected
