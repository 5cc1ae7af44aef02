"""A failure to reach or use the KFP API, worded as one line: which host, what went wrong, what
to check. A refused connection, a DNS or TLS failure, a timeout, an HTTP error (401, 403, 404,
5xx...), an answer the client cannot read: each gets its own words, never the token.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus

from pipeline.kfp.settings import ENV_HOST, PORT_FORWARD, KfpSettings
from pipeline.kfp.transport import (
    CONNECT_TRIES,
    READ_TIMEOUT_ENV,
    READ_TRIES,
    connect_timeout,
    read_timeout,
)

_HINTS = {
    401: "the token is missing, wrong or expired: check --token, --token-file or KFP_TOKEN",
    403: "the token's user may not do this in namespace {ns}: check --namespace/KFP_NAMESPACE "
    "and that the user is a contributor of that profile",
    404: "check --host is the KFP API URL (for Kubeflow, https://<your-kubeflow>/pipeline) "
    "and that the ID or name exists",
    409: "it already exists",
    429: "too many requests: try again later",
}


def describe_failure(exc: Exception, settings: KfpSettings) -> str | None:
    """One line naming the host, what went wrong and what to check; None if not an API failure."""
    import kfp_server_api  # the generated client kfp.Client raises ApiException from
    import urllib3

    if isinstance(exc, kfp_server_api.ApiException):
        return _describe_status(exc, settings)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return _describe_network(exc, settings.host)
    return _describe_local(exc, settings)


def _describe_local(exc: Exception, settings: KfpSettings) -> str | None:
    """Failures on this side: the token file, or what kfp itself refuses or cannot read."""
    if isinstance(exc, OSError) and settings.token_file and exc.filename == settings.token_file:
        return f"cannot read the token file {exc.filename}: {exc.strerror}"
    if isinstance(exc, ValueError) and _raised_in_kfp(exc):  # e.g. two experiments, one name
        return f"KFP API at {settings.host}: {exc}"
    if isinstance(exc, (TypeError, ValueError)) and _through(exc, "kfp_server_api.api_client"):
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return (
            f"KFP API at {settings.host} answered something the kfp client cannot read ({reason})"
        )
    return None


def _modules(exc: Exception) -> list[str]:
    """The modules on the way from where `exc` was caught to where it was raised."""
    found, tb = [], exc.__traceback__
    while tb is not None:
        found.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return found


def _through(exc: Exception, module: str) -> bool:
    """Whether `module`'s code is on the way to where `exc` was raised (the answer's
    deserialization, for a field of the wrong type)."""
    return module in _modules(exc)


def _raised_in_kfp(exc: Exception) -> bool:
    modules = _modules(exc)
    return bool(modules) and modules[-1].startswith("kfp")


def _describe_network(exc: Exception, host: str) -> str:
    from urllib3 import exceptions as ux

    if isinstance(exc, ux.NameResolutionError):
        return f"cannot resolve the host name of {host}: check --host/{ENV_HOST} and your DNS/VPN"
    if isinstance(exc, ux.NewConnectionError):  # a subclass of ConnectTimeoutError
        reason = getattr(exc.__cause__, "strerror", None) or "connection failed"
        return (
            f"cannot connect to the KFP API at {host} ({reason.lower()}): check --host/"
            f"{ENV_HOST} and that the API or your port-forward (`{PORT_FORWARD}`) is up"
        )
    tls_hint = "; an https:// URL on a plain-http port also stalls like this: try http://"
    tls_hint = tls_hint if host.startswith("https://") else ""
    if isinstance(exc, ux.ConnectTimeoutError):
        return (
            f"no answer from {host} within {connect_timeout():g} s, up to {CONNECT_TRIES} "
            f"tries: check the host and port, the VPN or firewall{tls_hint}"
        )
    if isinstance(exc, ux.ReadTimeoutError):
        return (
            f"KFP API at {host} did not answer within {read_timeout():g} s, up to {READ_TRIES} "
            f"tries ({READ_TIMEOUT_ENV} sets it): check the ml-pipeline deployment in the "
            f"cluster{tls_hint}"
        )
    if isinstance(exc, ux.SSLError):
        return _describe_tls(str(exc), host)
    return f"lost the connection to the KFP API at {host} ({type(exc).__name__}): try again"


def _describe_tls(text: str, host: str) -> str:
    found = re.search(r"\[SSL: ([A-Z_]+)\]|(CERTIFICATE_VERIFY_FAILED|WRONG_VERSION_NUMBER)", text)
    reason = next((g for g in found.groups() if g), "handshake failed") if found else "error"
    return (
        f"TLS with {host} failed ({reason.lower()}): for a plain-http port-forward use "
        "http://; for a private CA pass --ca-cert"
    )


def _describe_status(exc, settings: KfpSettings) -> str:
    status = exc.status or 0
    where = f"KFP API at {settings.host}"
    if status == 0 and str(exc.reason).startswith("SSLError"):  # kfp_server_api's wrapping
        return _describe_tls(str(exc.reason), settings.host)
    if status == 0:  # the client could not read the answer (a date that is not one, say)
        reason = " ".join(str(exc.reason).split())[:200]
        return f"{where} answered something the kfp client cannot read: {reason}"
    phrase = _phrase(status)
    if 300 <= status < 400:
        location = (exc.headers or {}).get("location", "elsewhere").split("?")[0]
        return (
            f"{where} answered {status} {phrase}, a redirect to {location} (a login page?): "
            "give a bearer token (--token, --token-file or KFP_TOKEN) and check --host"
        )
    if status >= 500:
        hint = (
            "server error: check the ml-pipeline pods (kubectl -n kubeflow logs deploy/ml-pipeline)"
        )
    else:
        hint = _HINTS.get(status, "the request was refused").format(
            ns=settings.namespace or "(none given)"
        )
    detail = _server_message(exc.body, settings.secrets())
    return f"{where} answered {status} {phrase}: {hint}" + (f" ({detail})" if detail else "")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _server_message(body: bytes | str | None, secrets: list[str], limit: int = 200) -> str:
    """The `message` of KFP's JSON error body on one line, cut short, any token masked."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = data.get("message") or data.get("error") or ""
    message = " ".join(str(message).split())
    for secret in secrets:
        message = message.replace(secret, "***")
    return message if len(message) <= limit else message[: limit - 3] + "..."
