"""Opening an `s3://bucket/key` source once, with the project's boto3 client (store/s3.py).

The client makes one try per call, so that the retries, with resume from a byte range, are
transfer.py's as for HTTP; botocore's errors are sorted here into final and transient.
"""

from __future__ import annotations

from components.download.transport import (
    _CHUNK,
    DownloadError,
    _content_range_total,
    _guarded,
    _Response,
    _Transient,
)
from components.store import parse_s3_uri, s3


def s3_client(endpoint: str = "", timeout: float = 60.0):
    """The project's S3 client (s3.py) with one try per call: retried here, with resume."""
    return s3.client(endpoint, s3.Bounds(connect=min(timeout, 10), read=timeout, attempts=1))


def _open_s3(client, uri: str, offset: int) -> _Response:
    from botocore import exceptions as bx

    bucket, key = parse_s3_uri(uri)
    where = f"{uri} at {client.meta.endpoint_url}"
    transient = (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)
    try:
        kwargs = {"Range": f"bytes={offset}-"} if offset else {}
        resp = client.get_object(Bucket=bucket, Key=key, **kwargs)
    except bx.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "?")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in ("SlowDown", "RequestTimeout"):
            raise _Transient(f"{code} (HTTP {status})") from None
        raise DownloadError(f"{where}: {code} (HTTP {status}, not retried)") from None
    except transient as e:
        raise _Transient(type(e).__name__) from None
    except bx.BotoCoreError as e:
        raise DownloadError(f"{where}: {type(e).__name__}") from None
    total = _content_range_total(resp.get("ContentRange")) or resp.get("ContentLength")
    chunks = _guarded(resp["Body"].iter_chunks(_CHUNK), transient)
    return _Response(chunks, offset if resp.get("ContentRange") else 0, total)
