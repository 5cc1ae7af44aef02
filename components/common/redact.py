"""Keep credentials and control characters out of what people read.

Two defences against leaking a secret. Parameters that reach kfp (which prints every step's
inputs) are refused when they carry credentials (`refuse_credentials`), and text that may echo a
URL, a header or a token is redacted before it is shown (`redact_url`, `redact_text`). Every
message, log line and report goes through `redact_text` (components/common/log.py installs it on
the loggers, failure.py on error lines, pipeline/cli.py on everything the CLI prints).

One defence against a name that speaks to the terminal: `printable` shows control characters
(ANSI escape sequences, carriage returns, bidi overrides) as `\\x1b`-style escapes, so a file or
run name cannot clear the screen, fake a line or hide text. The archive, schedule and parameter
messages use it too.

People type URLs that RFC 3986 would refuse, such as `https://user:pa/ss@host`: the redaction
does not rely on a URL parser agreeing on where the user info ends. Anything between `://` and
the last `@` of the URL is masked, at the cost of masking a rare `@` in a path too.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# Query parameters that carry a secret or a signature (presigned S3/GCS URLs, tokens).
_SECRET_QUERY = re.compile(
    r"(token|secret|signature|password|passwd|pwd|key|credential|auth|sig|session|code)", re.I
)
# A URL: a scheme, `://`, then everything up to ASCII white space (a password may hold a quote
# or a no-break space).
_URL = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<rest>\S+)", re.I | re.A)
# `user:pass@host` with no scheme (an endpoint typed as host:port).
_BARE_USERINFO = re.compile(r"(?<![\w/.@-])[^\s/@:'\"=]+:(?!//)\S*@(?=[\w.\[-])", re.A)
# `?name=value`, `&name=value`, `#name=value`, `;name=value`: masked when the name is one that
# carries a secret (`_SECRET_QUERY`), so `?page=2` in a JSON document stays as it was.
_QUERY_VALUE = re.compile(r"(?P<name>[?&#;][^=&#;\s]+)=[^&#;\s'\"]*")
# Headers and settings that carry a secret, in a line, a dict's repr or JSON.
_SECRET_FIELD = re.compile(
    r"(?P<name>\b(?:authorization|proxy-authorization|cookie|set-cookie|x-amz-security-token"
    r"|x-api-key|api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|aws_secret_access_key"
    r"|aws_session_token|secret[_-]?key|password|passwd|client[_-]?secret)['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<value>(?:(?:bearer|basic|token|digest|aws4-hmac-sha256)\s+)?[^\s'\",;}]+)",
    re.I,
)
_BEARER = re.compile(r"\b(?P<kind>bearer|basic)\s+[a-z0-9._~+/=-]{8,}", re.I)


def _mask_url(m: re.Match) -> str:
    rest = m["rest"]
    if "@" in rest:
        rest = MASK + "@" + rest.rpartition("@")[2]
    return m["scheme"] + rest


def _mask_query_value(m: re.Match) -> str:
    return f"{m['name']}={MASK}" if _SECRET_QUERY.search(m["name"]) else m[0]


def redact_text(text: str) -> str:
    """`text` with URL user info, secret query and fragment values, secret headers and bearer
    tokens masked."""
    text = _URL.sub(_mask_url, str(text))
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    text = _QUERY_VALUE.sub(_mask_query_value, text)
    text = _SECRET_FIELD.sub(lambda m: f"{m['name']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['kind']} {MASK}", text)


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials or signatures);
    text that is not a URL is redacted as text."""
    match = _URL.fullmatch(url.strip())
    if not match:
        return redact_text(url)
    rest = match["rest"].rpartition("@")[2] if "@" in match["rest"] else match["rest"]
    return match["scheme"] + re.split(r"[?#;]", rest, maxsplit=1)[0]


def printable(text: str, newlines: bool = False) -> str:
    """`text` with every character Python does not call printable (controls such as ESC and
    CR, format characters such as bidi overrides, separators but the space) shown as its escape
    (`\\x1b`, `\\r`, `\\u202e`); newlines and tabs are kept when `newlines`, else escaped too (a
    name is one line)."""
    text = str(text)
    if text.isprintable():
        return text
    keep = "\n\t" if newlines else ""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def shown(text: str, newlines: bool = False) -> str:
    """What a person may read of text from outside: redacted, then control characters escaped."""
    return printable(redact_text(text), newlines)


def _port_is_malformed(netloc: str) -> bool:
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):  # an IPv6 literal: [::1]:9000
        host_port = host_port.partition("]")[2]
    _, colon, port = host_port.partition(":")
    return bool(colon) and not port.isdigit()


def malformed(url: str) -> str | None:
    """Why `url` (with a scheme) cannot be requested as typed, or None. A password holding an
    unencoded `/`, `?` or `#` ends the host early, which then has a port that is no number."""
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        return None
    if not parts.netloc:
        return "it names no host"
    if _port_is_malformed(parts.netloc):
        if "@" in url.split("://", 1)[1]:
            return (
                "its user info holds a '/', '?' or '#' that is not percent-encoded, so the host "
                "cannot be told apart from the password"
            )
        return "its port is not a number"
    if "@" in parts.netloc and "@" in url.split("://", 1)[1][len(parts.netloc) :]:
        return (
            "it holds an '@' after its host, so the host cannot be told apart from the "
            "password: percent-encode the '/', '?', '#' or '@' in it"
        )
    return None


def refuse_credentials(name: str, value: str) -> None:
    """Raise ValueError when the URL `value` carries user info or a credential-like query, or
    when it cannot be read as a URL at all (`malformed`)."""
    value = value.strip()
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return
    problem = malformed(value)
    if "@" in parts.netloc or (problem and "@" in value):
        raise ValueError(
            f"{name} carries credentials (user@host): remove them and set them in the "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a Secret on the cluster)"
        )
    if problem:
        raise ValueError(f"{name} {redact_url(value)!r} is not a valid URL: {problem}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    fragment = parse_qsl(parts.fragment, keep_blank_values=True)
    secret = [k for k, _ in query + fragment if _SECRET_QUERY.search(k)]
    if secret:
        raise ValueError(
            f"{name} {redact_url(value)!r} has a credential-like query parameter "
            f"({', '.join(sorted(set(secret)))}): pipeline parameters are shown in logs and "
            "in the UI; publish the files without a token or use s3:// with credentials from "
            "the environment"
        )
