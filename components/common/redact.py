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
does not rely on a URL parser agreeing on where the user info ends. Everything between `://` and
the URL's last `@` is masked, unless what precedes that `@` is a host without a `:` followed by a
path (`s3://bucket/path@v1`), where the `@` belongs to the path (`_userinfo_end`).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from components.common.errors import InputError

MASK = "***"
# Names of query parameters, settings and headers that carry a secret (presigned S3/GCS/Azure
# URLs, tokens, passwords); matched anywhere in the name: `X-Amz-Signature`, `MINIO_ROOT_PASSWORD`.
_SECRET_QUERY = re.compile(
    r"(token|secret|signature|password|passwd|pwd|pass|pw|key|credential|auth|sig|session|code|jwt)",
    re.I,
)
# A URL: a scheme, `://` (or a typo's `:/`, or `//` alone), then everything up to ASCII white
# space (a password may hold a quote or a no-break space). The scheme may follow `_`, `-` or a
# digit (`x_https://`, `--https://`), never a letter.
_URL = re.compile(
    r"(?P<scheme>(?<![a-z+.])[a-z][a-z0-9+.-]*:/{1,2}|(?<![\w:/])//)(?P<rest>[^\s/]\S*)",
    re.I | re.A,
)
# `user:pass@host` with no scheme (an endpoint typed as host:port): the host has a dot, a port,
# brackets or is localhost, so `daily-03:00@utc` or `image:v1@sha256:...` stay as they are.
_BARE_USERINFO = re.compile(
    r"(?<![\w/.@-])[^\s/@:'\"=]+:(?!//)\S*@"
    r"(?=\[|[\w-]+(?:\.[\w-]+)+|[\w.-]+:\d|localhost\b)",
    re.A,
)
# `?name=value`, `&name=value`, `#name=value`, `;name=value` inside a URL or a path with a query:
# masked when the name (percent-decoded) carries a secret, so `?page=2` stays as it was.
_QUERY_VALUE = re.compile(r"(?P<name>[?&#;][^=&#;\s]+)=(?P<value>[^&#;\s]*)")
_WITH_QUERY = re.compile(r"\S*[?&]\S*")
# Settings and headers that carry a secret, in a line, a dict's repr, JSON or YAML: the name
# ends in a secret word (`DB_PASSWORD`, `X-Auth-Token`, `secretAccessKey`, `"token"`), then `:`
# or `=`, then the value: a quoted string whole, else up to white space or punctuation.
_SECRET_WORD = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|credentials?|authorization|jwt|signature"
    r"|(?:access|secret|private|account|client|master|shared|storage|session)[_-]?key)"
)
_SECRET_FIELD = re.compile(
    r"(?P<name>(?<![a-z0-9/\\.])[a-z0-9_-]*?" + _SECRET_WORD + r")(?![a-z0-9])"
    r"(?P<sep>['\"]?\s*[:=]\s*)"
    r"(?P<value>b?\"(?:[^\"\\\n]|\\.)*\"|b?'(?:[^'\\\n]|\\.)*'"
    r"|(?:(?:bearer|basic|token|digest|aws4-hmac-sha256)\s+)?[^\s'\",;}\])&#]+)",
    re.I,
)
# `--password X`, `--token=X` on a command line; not the placeholder a usage line or --help
# shows in its place (`--token TOKEN`), which is no secret, and masked reads as broken help.
_SECRET_FLAG = re.compile(
    r"(?P<name>--[a-z0-9-]*?(?:password|passwd|secret|token|api-key|access-key|secret-key))"
    r"(?P<sep>=|\s+)(?!(?-i:TOKEN|TEXT|PASSWORD|SECRET)(?:\s|$))(?P<value>\S+)",
    re.I,
)
# Headers whose whole value is secret, to the end of the line: every cookie, any auth scheme.
_SECRET_HEADER = re.compile(
    r"(?P<name>\b(?:set-)?cookie|\b(?:proxy-)?authorization)(?P<sep>\s*:\s*)"
    r"(?P<value>[^\r\n'\"]+)",
    re.I,
)
_BEARER = re.compile(r"\b(?P<kind>bearer|basic)\s+[a-z0-9._~+/=-]{8,}", re.I)
# Tokens known by their shape (GitHub, GitLab, Slack, OpenAI-style keys) and URLs whose path is
# the secret (Slack webhooks, Telegram bots).
_KNOWN_TOKEN = re.compile(
    r"\b(?:gh[pousr]_|github_pat_|glpat-|xox[abprs]-|sk-)[A-Za-z0-9_-]{16,}"
    r"|(?<=hooks\.slack\.com/services/)\S+|(?<=api\.telegram\.org/bot)[^/\s]+",
    re.A,
)


def _userinfo_end(rest: str) -> int:
    """Where the user info of a URL's `rest` (after `://`) ends, or -1. Up to the last `@`,
    unless what comes before it is a host with a path holding an `@` (`bucket/path@v1`)."""
    before, at, _ = rest.rpartition("@")
    if not at:
        return -1
    if "/" in before and ":" not in before.split("/", 1)[0]:
        return -1
    return len(before)


def _mask_url(m: re.Match) -> str:
    rest = m["rest"]
    end = _userinfo_end(rest)
    if end >= 0:
        rest = MASK + rest[end:]
    return m["scheme"] + _QUERY_VALUE.sub(_mask_query_value, rest)


def _mask_query_value(m: re.Match) -> str:
    return f"{m['name']}={MASK}" if _SECRET_QUERY.search(unquote(m["name"])) else m[0]


def _mask_value(m: re.Match) -> str:
    value = m["value"]
    quote = value[-1] if value[-1:] in "\"'" and len(value) > 1 else ""
    return m["name"] + m["sep"] + (quote + MASK + quote if quote else MASK)


def redact_text(text: str) -> str:
    """`text` with URL user info, secret query and fragment values, secret settings, headers and
    flags, and bearer tokens masked. Quoted values keep their quotes (a JSON document stays
    JSON)."""
    text = _URL.sub(_mask_url, str(text))
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    text = _WITH_QUERY.sub(lambda m: _QUERY_VALUE.sub(_mask_query_value, m[0]), text)
    text = _SECRET_HEADER.sub(_mask_value, text)
    text = _SECRET_FIELD.sub(_mask_value, text)
    text = _SECRET_FLAG.sub(_mask_value, text)
    text = _BEARER.sub(lambda m: f"{m['kind']} {MASK}", text)
    return _KNOWN_TOKEN.sub(MASK, text)


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials or signatures);
    text that is not a URL is redacted as text."""
    match = _URL.fullmatch(url.strip())
    if not match:
        return redact_text(url)
    rest = match["rest"]
    end = _userinfo_end(rest)
    rest = rest[end + 1 :] if end >= 0 else rest
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
    try:
        parts = urlsplit(url)
    except ValueError as e:  # a '[' with no ']', or brackets around no IP address
        return f"its host cannot be read ({e})"
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
    if not parts.hostname:
        return "it names no host"
    if "@" in parts.netloc and "@" in url.split("://", 1)[1][len(parts.netloc) :]:
        return (
            "it holds an '@' after its host, so the host cannot be told apart from the "
            "password: percent-encode the '/', '?', '#' or '@' in it"
        )
    return None


def split_url(url: str, name: str) -> SplitResult:
    """`urlsplit(url)`; a URL it cannot split (a host with a '[' and no ']') is an InputError
    naming `name`, not urlsplit's bare ValueError."""
    try:
        return urlsplit(url)
    except ValueError:
        problem = malformed(url)
        raise InputError(f"{name} {redact_url(url)!r} is not a valid URL: {problem}") from None


def refuse_credentials(name: str, value: str) -> None:
    """Raise ValueError when the URL `value` carries user info or a credential-like query, or
    when it cannot be read as a URL at all (`malformed`)."""
    value = value.strip()
    parts = split_url(value, name)
    if not parts.scheme or not parts.netloc:
        return
    problem = malformed(value)
    if "@" in parts.netloc or (problem and "@" in value):
        raise InputError(
            f"{name} carries credentials (user@host): remove them and set them in the "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a Secret on the cluster)"
        )
    if problem:
        raise InputError(f"{name} {redact_url(value)!r} is not a valid URL: {problem}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    fragment = parse_qsl(parts.fragment, keep_blank_values=True)
    secret = [k for k, _ in query + fragment if _SECRET_QUERY.search(k)]
    if secret:
        raise InputError(
            f"{name} {redact_url(value)!r} has a credential-like query parameter "
            f"({', '.join(sorted(set(secret)))}): pipeline parameters are shown in logs and "
            "in the UI; publish the files without a token or use s3:// with credentials from "
            "the environment"
        )
