"""Keep credentials out of what people read: URIs, endpoints, log lines and error messages.

Two defences. Parameters that reach kfp (which prints every step's inputs) are refused when they
carry credentials (`refuse_credentials`), and text that may echo a URL is redacted before it is
shown (`redact_url`, `redact_text`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

# Query parameters that carry a secret or a signature (presigned S3/GCS URLs, tokens).
_SECRET_QUERY = re.compile(
    r"(token|secret|signature|password|passwd|pwd|key|credential|auth|sig|session)", re.I
)
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)?[^\s/@:'\"]+(:[^\s/@'\"]*)?@", re.I)
_QUERY_VALUE = re.compile(r"(?P<name>[?&][^=&\s]+)=[^&\s'\"]*")


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials or signatures)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def redact_text(text: str) -> str:
    """`text` with any `user:pass@` and `?name=value` query values masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme'] or ''}***@", text)
    return _QUERY_VALUE.sub(lambda m: f"{m['name']}=***", text)


def refuse_credentials(name: str, value: str) -> None:
    """Raise ValueError when the URL `value` carries user info or a credential-like query."""
    parts = urlsplit(value.strip())
    if not parts.scheme or not parts.netloc:
        return
    if "@" in parts.netloc:
        raise ValueError(
            f"{name} carries credentials (user@host): remove them and set them in the "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a Secret on the cluster)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret = [k for k, _ in query if _SECRET_QUERY.search(k)]
    if secret:
        raise ValueError(
            f"{name} {redact_url(value)!r} has a credential-like query parameter "
            f"({', '.join(sorted(set(secret)))}): pipeline parameters are shown in logs and "
            "in the UI; publish the files without a token or use s3:// with credentials from "
            "the environment"
        )
