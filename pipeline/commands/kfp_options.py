"""Options and settings the commands that talk to Kubeflow Pipelines share.

`@kfp_options` adds --host, --namespace, --token, --token-file and --ca-cert and passes a
`KfpSettings`; `@param_option` adds `--param NAME=VALUE`, typed and checked by the parameter
table. The client itself is made in kfp_connection.py, its failures worded in kfp_errors.py.
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from pipeline.local_files import LocalFileError, read_small_text
from pipeline.params import (
    TYPES,
    ParameterError,
    load_params_file,
    parse_assignments,
    validate_arguments,
)

ENV_HOST, ENV_NAMESPACE = "KFP_HOST", "KFP_NAMESPACE"
ENV_KF_ENDPOINT = "KF_PIPELINES_ENDPOINT"  # kfp's own variable, read when KFP_HOST is not set
ENV_TOKEN, ENV_TOKEN_FILE, ENV_CA_CERT = "KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_CA_CERT"

PORT_FORWARD = "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80"
# Inside a Kubeflow notebook or pod, as kfp.Client() does: the API's in-cluster address, and the
# token Kubeflow projects for it (KF_PIPELINES_SA_TOKEN_PATH) or else the service account's own.
IN_CLUSTER_HOST = "http://ml-pipeline.{namespace}.svc.cluster.local:8888"
KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


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
            with contextlib.suppress(LocalFileError):
                found.append(read_token_file(self.token_file))
        return [s for s in found if s]


MAX_TOKEN_FILE = 64 * 1024  # bytes: a service account's JWT is about 1 kB


def read_token_file(path: str) -> str:
    """The bearer token in `path`, read with bounds (pipeline/local_files.py)."""
    return read_small_text(path, MAX_TOKEN_FILE, "a file holding a bearer token").strip()


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
        try:
            token_text = read_token_file(token_file)
        except LocalFileError as e:
            raise click.BadParameter(str(e), param_hint="--token-file") from None
        if not token_text:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    return KfpSettings(normalize_host(host), namespace or None, token or None, token_file, ca_cert)


def in_cluster() -> tuple[str | None, str | None]:
    """(host, token file) when this process runs in a Kubernetes pod, else (None, None).
    The API is taken to be Kubeflow's, in namespace `kubeflow` (KFP_API_NAMESPACE changes it)."""
    import os

    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None, None
    token_path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", KFP_TOKEN_PATH)
    token_file = next((p for p in (token_path, SA_TOKEN_PATH) if Path(p).is_file()), None)
    if token_file is None:
        return None, None
    return IN_CLUSTER_HOST.format(
        namespace=os.environ.get("KFP_API_NAMESPACE", "kubeflow")
    ), token_file


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
        settings = settings_from_flags(host, namespace, token, token_file, ca_cert)
        return fn(*args, kfp_settings=settings, **kwargs)

    return wrapper


def param_option(fn):
    """--params-file FILE and --param NAME=VALUE (repeatable, it wins over the file), typed
    and range-checked before anything is sent; the command gets them as `params`."""

    @click.option(
        "--params-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Pipeline parameters from a YAML or JSON file of name: value pairs.",
    )
    @click.option(
        "--param",
        "param_pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="Pipeline parameter, repeatable, e.g. --param epochs=3; wins over --params-file. "
        f"Names: {', '.join(TYPES)}. Unset ones keep the pipeline's defaults.",
    )
    @functools.wraps(fn)
    def wrapper(*args, params_file, param_pairs, **kwargs):
        try:
            values = load_params_file(params_file) if params_file else {}
            values.update(parse_assignments(param_pairs))
            validate_arguments(values)
        except ParameterError as e:
            raise click.BadParameter(str(e), param_hint="--param / --params-file") from None
        return fn(*args, params=values, **kwargs)

    return wrapper


@contextlib.contextmanager
def compiled_package(
    flags: dict, caching: bool | None = None, tuning: bool = False
) -> Iterator[str]:
    """Compile the pipeline (`tuning`: the tuning pipeline) with the cluster flags to a
    temporary YAML file; yield its path. `caching` True or False sets every task's cache
    option (None keeps the compiled ones)."""
    from pipeline.commands.options import options_from_flags
    from pipeline.dag import PIPELINE_NAME, compile_pipeline

    options = options_from_flags(**flags)
    with tempfile.TemporaryDirectory(prefix="mnist-kfp-") as work:
        path = str(Path(work) / f"{PIPELINE_NAME}.yaml")
        compile_pipeline(path, options, tuning)
        if caching is not None:
            set_caching(path, caching)
        yield path


def set_caching(package: str, enabled: bool) -> None:
    """Set the cache option of every task, inside conditions too. (kfp.Client's own
    enable_caching reaches only the top-level tasks: export and batch-predict run inside the
    accuracy gate's sub-DAG.)"""
    import yaml

    with open(package) as f:
        docs = list(yaml.safe_load_all(f))
    spec = docs[0]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for task in dag["tasks"].values():
            if "componentRef" in task and not task["componentRef"]["name"].startswith(
                "comp-condition"
            ):
                task["cachingOptions"] = {"enableCache": enabled}
    with open(package, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)


def quietly(method, *args, **kwargs):
    """Call a kfp.Client method without the 'Run details: ...' lines it prints itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        return method(*args, **kwargs)


def uploaded_pipeline_options(fn):
    """--pipeline NAME [--version NAME]: run what was uploaded (what the UI shows) instead of
    compiling the local code; passed as `pipeline_name` and `version_name`."""
    fn = click.option(
        "--version",
        "version_name",
        metavar="NAME",
        help="With --pipeline: this version of it. [default: its newest]",
    )(fn)
    return click.option(
        "--pipeline",
        "pipeline_name",
        metavar="NAME",
        help="Run this uploaded pipeline (see `upload`) instead of compiling the local code.",
    )(fn)


def caching_option(fn):
    return click.option(
        "--enable-caching/--disable-caching",
        "enable_caching",
        default=None,
        help="Reuse (or not) the outputs of earlier identical steps. [default: as compiled: "
        "download and unpack-and-upload cached, train and batch-predict not]",
    )(fn)


def resolve_uploaded(client, settings: KfpSettings, name: str, version: str | None):
    """(pipeline id, version id, version name) of an uploaded pipeline; a one-line error
    naming what exists when it is not there."""
    from pipeline.commands.kfp_connection import KfpApiError
    from pipeline.commands.upload import find_pipeline_id

    pipeline_id = find_pipeline_id(client, name, settings.namespace)
    if pipeline_id is None:
        raise KfpApiError(
            f"no uploaded pipeline named {name!r} at {settings.host}: upload it first "
            "(mnist-pipeline upload)"
        )
    answer = client.list_pipeline_versions(pipeline_id, page_size=100, sort_by="created_at desc")
    versions = answer.pipeline_versions or []
    if version is None:
        if not versions:
            raise KfpApiError(f"pipeline {name!r} has no version at {settings.host}")
        chosen = versions[0]
    else:
        chosen = next((v for v in versions if v.display_name == version), None)
        if chosen is None:
            known = ", ".join(v.display_name for v in versions[:10]) or "none"
            raise KfpApiError(f"pipeline {name!r} has no version {version!r}; newest: {known}")
    return pipeline_id, chosen.pipeline_version_id, chosen.display_name
