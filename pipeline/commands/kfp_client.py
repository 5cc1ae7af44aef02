"""What the commands that talk to Kubeflow Pipelines share: options, the client, its errors.

The one place a `kfp.Client` is made. A command takes `@kfp_options` (host, namespace, token)
and does::

    with kfp_client(settings) as client:
        ...

Inside the block, a refused connection, a DNS or TLS failure, a timeout, or an HTTP error (401,
403, 404, 5xx...) leaves as a `KfpApiError`: one line on stderr that names the host, the status
and what to check, exit code 3; never a traceback, never the token. kfp is imported only when a
client is made, so `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from pipeline.params import TYPES, ParameterError, parse_assignments, validate_arguments

ENV_HOST, ENV_NAMESPACE = "KFP_HOST", "KFP_NAMESPACE"
ENV_TOKEN, ENV_TOKEN_FILE, ENV_CA_CERT = "KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_CA_CERT"
EXIT_API_ERROR = 3
CONNECT_TIMEOUT = 10  # seconds; the stock client waits forever
READ_TIMEOUT_ENV, READ_TIMEOUT = "MNIST_KFP_TIMEOUT", 30.0  # seconds for an answer, per try
READ_TRIES = 3  # a read is tried this often (idempotent calls only), so at most 3 x 30 s


CONNECT_TRIES = 3


def read_timeout() -> float:
    return float(os.environ.get(READ_TIMEOUT_ENV) or READ_TIMEOUT)


def connect_timeout() -> float:
    return min(CONNECT_TIMEOUT, read_timeout())


PORT_FORWARD = "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80"


class KfpApiError(click.ClickException):
    """The KFP API could not be reached, refused us, or answered an error: one line, exit 3."""

    exit_code = EXIT_API_ERROR


@dataclass(frozen=True)
class KfpSettings:
    """Where the KFP API is and how to authenticate to it (from flags or KFP_* variables)."""

    host: str
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    ca_cert: str | None = None

    def link(self, fragment: str) -> str:
        """A KFP UI link, e.g. link('runs/details/ID'); the UI is served beside the API."""
        return f"{self.host}/#/{fragment}"

    def secrets(self) -> list[str]:
        """The token values that must never be printed."""
        found = [self.token] if self.token else []
        if self.token_file:
            with contextlib.suppress(OSError):
                found.append(Path(self.token_file).read_text().strip())
        return [s for s in found if s]


def normalize_host(host: str) -> str:
    """`kubeflow.example.com/pipeline/` -> `https://kubeflow.example.com/pipeline`, or raise."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host  # as kfp.Client does
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{host!r} is not an http(s) URL", param_hint="--host")
    if "@" in parts.netloc:
        raise click.BadParameter(
            "the URL must not carry credentials; use --token", param_hint="--host"
        )
    return host


def _pick_token(token: str | None, token_file: str | None) -> tuple[str | None, str | None]:
    """A flag on the command line beats the environment; two of the same kind is an error."""
    if not (token and token_file):
        return token, token_file
    source = click.get_current_context().get_parameter_source
    from_line = {
        name: source(name) == ParameterSource.COMMANDLINE for name in ("token", "token_file")
    }
    if from_line["token"] == from_line["token_file"]:
        raise click.UsageError(
            "give either --token or --token-file (KFP_TOKEN or KFP_TOKEN_FILE), not both"
        )
    return (token, None) if from_line["token"] else (None, token_file)


def settings_from_flags(
    host: str | None,
    namespace: str | None,
    token: str | None,
    token_file: str | None,
    ca_cert: str | None,
) -> KfpSettings:
    """Check the connection flags and bundle them; raises click usage errors."""
    if not host:
        raise click.UsageError(
            f"no KFP API given: pass --host URL or set {ENV_HOST} (for a "
            f"port-forward, `{PORT_FORWARD}` then --host http://localhost:8080)"
        )
    token, token_file = _pick_token(token, token_file)
    if token_file and not Path(token_file).read_text().strip():
        raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    return KfpSettings(normalize_host(host), namespace or None, token or None, token_file, ca_cert)


def kfp_options(fn):
    """Add --host, --namespace, --token, --token-file, --ca-cert; pass `kfp_settings`."""

    @click.option(
        "--host",
        envvar=ENV_HOST,
        show_envvar=True,
        metavar="URL",
        help="Kubeflow Pipelines API URL, e.g. https://kubeflow.example.com/pipeline, "
        f"or http://localhost:8080 with `{PORT_FORWARD}`.",
    )
    @click.option(
        "--namespace",
        "-n",
        envvar=ENV_NAMESPACE,
        show_envvar=True,
        help="Your Kubeflow profile namespace (multi-user Kubeflow); experiments, "
        "runs and pipelines go there.",
    )
    @click.option(
        "--token",
        envvar=ENV_TOKEN,
        show_envvar=True,
        metavar="TOKEN",
        help="Bearer token for a multi-user Kubeflow. Prefer the variable or "
        "--token-file: a flag is visible to other users in `ps`.",
    )
    @click.option(
        "--token-file",
        envvar=ENV_TOKEN_FILE,
        show_envvar=True,
        type=click.Path(exists=True, dir_okay=False, readable=True),
        help="File holding the bearer token, read before every request, so a "
        "rotated (e.g. projected service-account) token keeps working.",
    )
    @click.option(
        "--ca-cert",
        envvar=ENV_CA_CERT,
        show_envvar=True,
        type=click.Path(exists=True, dir_okay=False),
        help="CA bundle that signed the host's TLS certificate (private CA).",
    )
    @functools.wraps(fn)
    def wrapper(*args, host, namespace, token, token_file, ca_cert, **kwargs):
        settings = settings_from_flags(host, namespace, token, token_file, ca_cert)
        return fn(*args, kfp_settings=settings, **kwargs)

    return wrapper


def _parse_params(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]) -> dict:
    try:
        return validate_arguments(parse_assignments(pairs))
    except ParameterError as e:
        raise click.BadParameter(str(e)) from None


def param_option(fn):
    """--param NAME=VALUE (repeatable), typed and range-checked before anything is sent."""
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_parse_params,
        help="Pipeline parameter, repeatable, e.g. --param epochs=3. Names: "
        f"{', '.join(TYPES)}. Unset ones keep the pipeline's defaults.",
    )(fn)


@contextlib.contextmanager
def compiled_package(flags: dict) -> Iterator[str]:
    """Compile the pipeline with the cluster flags to a temporary YAML file; yield its path."""
    from pipeline.commands.options import options_from_flags
    from pipeline.dag import PIPELINE_NAME, compile_pipeline

    options = options_from_flags(**flags)
    with tempfile.TemporaryDirectory(prefix="mnist-kfp-") as work:
        path = str(Path(work) / f"{PIPELINE_NAME}.yaml")
        compile_pipeline(path, options)
        yield path


def quietly(method, *args, **kwargs):
    """Call a kfp.Client method without the 'Run details: ...' lines it prints itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        return method(*args, **kwargs)


@contextlib.contextmanager
def kfp_client(settings: KfpSettings) -> Iterator[Any]:
    """A health-checked kfp.Client; API failures in the block become a one-line KfpApiError."""
    with api_errors(settings):
        yield connect(settings)


@contextlib.contextmanager
def api_errors(settings: KfpSettings) -> Iterator[None]:
    """Turn a failure to reach or use the KFP API into KfpApiError; let the rest through."""
    try:
        yield
    except KfpApiError:
        raise
    except Exception as e:  # describe_failure decides which failures are the API's
        message = describe_failure(e, settings)
        if message is None:
            raise
        raise KfpApiError(message) from None


def connect(settings: KfpSettings):
    """Make the client and check the API's health once; returns the `kfp.Client`."""
    client_class = _client_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only works with KFP v2.0.0-beta.2 and later"
        client = client_class(
            host=settings.host,
            namespace=settings.namespace or "kubeflow",  # kfp's default keeps its context file
            existing_token=settings.token,
            credentials=_file_credentials(settings.token_file),
            ssl_ca_cert=settings.ca_cert,
        )
    healthz = client.get_kfp_healthz()
    if healthz.multi_user and not (settings.namespace or client.get_user_namespace()):
        raise KfpApiError(
            f"KFP API at {settings.host} is multi-user: pass --namespace (your "
            f"Kubeflow profile namespace) or set {ENV_NAMESPACE}"
        )
    return client


def _file_credentials(token_file: str | None):
    if not token_file:
        return None
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials(path=token_file)


@functools.cache
def _client_class():
    """kfp.Client with bounded waits and one health check, built on first use (imports kfp).

    The stock client retries the health check five times five seconds apart, follows redirects
    (to a login page), and has no socket timeout; a CLI should fail fast and say why.
    """
    import kfp
    import urllib3

    retries = urllib3.Retry(
        total=3,
        connect=CONNECT_TRIES - 1,
        read=READ_TRIES - 1,
        status=0,
        other=0,
        redirect=False,
        backoff_factor=0.25,
    )  # read retries are for idempotent methods only

    class BoundedClient(kfp.Client):
        def __init__(self, **kwargs):
            self._healthz = None
            super().__init__(**kwargs)
            pool = self._healthz_api.api_client.rest_client.pool_manager
            timeout = urllib3.Timeout(connect=connect_timeout(), read=read_timeout())
            pool.connection_pool_kw["timeout"] = timeout
            pool.clear()

        def _load_config(self, *args, **kwargs):
            config = super()._load_config(*args, **kwargs)
            config.retries = retries
            return config

        def get_kfp_healthz(self, sleep_duration: int = 5):
            if self._healthz is None:
                self._healthz = check_health(self._healthz_api)
            return self._healthz

    return BoundedClient


class NotKfpApi(Exception):
    """The host answered, but not as the KFP API does (an HTML page, say)."""


def check_health(healthz_api):
    """One GET of /apis/v2beta1/healthz; raise NotKfpApi unless it answers KFP's JSON."""
    import kfp_server_api

    response = healthz_api.healthz_service_get_healthz(
        _preload_content=False, _request_timeout=(connect_timeout(), read_timeout())
    )
    kind = response.headers.get("content-type", "")
    try:
        data = json.loads(response.data)
    except ValueError:
        data = None
    if "json" not in kind or not isinstance(data, dict):
        raise NotKfpApi(kind.split(";")[0] or "no content type")
    return kfp_server_api.V2beta1GetHealthzResponse(
        multi_user=data.get("multi_user"), pipeline_store=data.get("pipeline_store")
    )


def is_transient(exc: Exception) -> bool:
    """Worth retrying a read: a 5xx or 429 answer, or a lost connection."""
    import kfp_server_api
    import urllib3

    if isinstance(exc, kfp_server_api.ApiException):
        return exc.status == 429 or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError)


def describe_failure(exc: Exception, settings: KfpSettings) -> str | None:
    """One line naming the host, what went wrong and what to check; None if not an API failure."""
    import kfp_server_api
    import urllib3

    host = settings.host
    if isinstance(exc, kfp_server_api.ApiException):
        return _describe_status(exc, settings)
    if isinstance(exc, NotKfpApi):
        return (
            f"{host} answered with {exc} instead of the KFP API's JSON: check --host is the "
            "KFP API URL (for Kubeflow, https://<your-kubeflow>/pipeline)"
        )
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return _describe_network(exc, host)
    if isinstance(exc, OSError) and settings.token_file and exc.filename == settings.token_file:
        return f"cannot read the token file {exc.filename}: {exc.strerror}"
    if isinstance(exc, ValueError) and _raised_in_kfp(exc):  # e.g. two experiments, one name
        return f"KFP API at {host}: {exc}"
    return None


def _raised_in_kfp(exc: Exception) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("kfp")


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


_HINTS = {
    401: "the token is missing, wrong or expired: check --token, --token-file or KFP_TOKEN",
    403: "the token's user may not do this in namespace {ns}: check --namespace/KFP_NAMESPACE "
    "and that the user is a contributor of that profile",
    404: "check --host is the KFP API URL (for Kubeflow, https://<your-kubeflow>/pipeline) "
    "and that the ID or name exists",
    409: "it already exists",
    429: "too many requests: try again later",
}


def _describe_status(exc, settings: KfpSettings) -> str:
    status = exc.status or 0
    where = f"KFP API at {settings.host}"
    if status == 0:  # kfp_server_api's wrapping of an SSL error
        return _describe_tls(str(exc.reason), settings.host)
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
