"""`@kfp_options`: the flags that say where the KFP API is and how to authenticate to it.

--host, --namespace, --token, --token-file and --ca-cert (or their KFP_* variables) become a
`KfpSettings` (pipeline/kfp/settings.py), checked before anything is sent: no host, a host that
is not an http(s) URL, two tokens, or a token file that cannot be read is a usage error (exit 2).
A --dry-run with no host anywhere is not: it sends nothing, so it runs with no cluster at all.
"""

from __future__ import annotations

import functools

import click
from click.core import ParameterSource

from pipeline.kfp.errors import KfpSettingsError
from pipeline.kfp.settings import (
    ENV_CA_CERT,
    ENV_HOST,
    ENV_KF_ENDPOINT,
    ENV_NAMESPACE,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    PORT_FORWARD,
    KfpSettings,
    in_cluster,
    normalize_host,
    read_token_file,
)
from pipeline.local_files import LocalFileError

NO_HOST = ""  # a --dry-run's host when none is given: it calls no API, so it needs none


def kfp_options(fn):
    """Add --host, --namespace, --token, --token-file, --ca-cert; pass `kfp_settings`."""

    @click.option(
        "--host",
        envvar=[ENV_HOST, ENV_KF_ENDPOINT],
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
        if kwargs.get("dry_run") and not (host or in_cluster()[0]):
            settings = KfpSettings(NO_HOST, namespace or None)  # a dry run sends nothing
        else:
            settings = settings_from_flags(host, namespace, token, token_file, ca_cert)
        return fn(*args, kfp_settings=settings, **kwargs)

    return wrapper


def settings_from_flags(
    host: str | None,
    namespace: str | None,
    token: str | None,
    token_file: str | None,
    ca_cert: str | None,
) -> KfpSettings:
    """Check the connection flags and bundle them; raises click usage errors."""
    if not host:
        host, found_token_file = in_cluster()
        if host and not (token or token_file):
            token_file = found_token_file
    if not host:
        raise click.UsageError(
            f"no KFP API given: pass --host URL or set {ENV_HOST} (for a "
            f"port-forward, `{PORT_FORWARD}` then --host http://localhost:8080)"
        )
    token, token_file = _pick_token(token, token_file)
    if token_file:
        _check_token_file(token_file)
    try:
        host = normalize_host(host)
    except KfpSettingsError as e:
        raise click.BadParameter(e.message, param_hint="--host") from None
    return KfpSettings(host, namespace or None, token or None, token_file, ca_cert)


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


def _check_token_file(token_file: str) -> None:
    try:
        token_text = read_token_file(token_file)
    except LocalFileError as e:
        raise click.BadParameter(str(e), param_hint="--token-file") from None
    if not token_text:
        raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
