"""Where the KFP API is and how to authenticate to it: `KfpSettings`, and what builds one.

The command line's flags and KFP_* variables end up here (pipeline/commands/connection.py reads
them); inside a Kubeflow pod the API's in-cluster address and its projected token are found as
`kfp.Client()` finds them. Bad values raise `KfpSettingsError`, one line naming the value.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.kfp.errors import KfpSettingsError
from pipeline.local_files import LocalFileError, read_small_text

ENV_HOST, ENV_NAMESPACE = "KFP_HOST", "KFP_NAMESPACE"
ENV_KF_ENDPOINT = "KF_PIPELINES_ENDPOINT"  # kfp's own variable, read when KFP_HOST is not set
ENV_TOKEN, ENV_TOKEN_FILE, ENV_CA_CERT = "KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_CA_CERT"

PORT_FORWARD = "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80"
# Inside a Kubeflow notebook or pod, as kfp.Client() does: the API's in-cluster address, and the
# token Kubeflow projects for it (KF_PIPELINES_SA_TOKEN_PATH) or else the service account's own.
IN_CLUSTER_HOST = "http://ml-pipeline.{namespace}.svc.cluster.local:8888"
KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
MAX_TOKEN_FILE = 64 * 1024  # bytes: a service account's JWT is about 1 kB


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


def read_token_file(path: str) -> str:
    """The bearer token in `path`, read with bounds (pipeline/local_files.py)."""
    return read_small_text(path, MAX_TOKEN_FILE, "a file holding a bearer token").strip()


def normalize_host(host: str) -> str:
    """`kubeflow.example.com/pipeline/` -> `https://kubeflow.example.com/pipeline`, or raise."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host  # as kfp.Client does
    try:
        parts = urlsplit(host)
    except ValueError as e:  # a '[' with no ']' where the host would be
        raise KfpSettingsError(f"{host!r} is not an http(s) URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KfpSettingsError(f"{host!r} is not an http(s) URL")
    if "@" in parts.netloc:
        raise KfpSettingsError("the URL must not carry credentials; use --token")
    return host


def in_cluster() -> tuple[str | None, str | None]:
    """(host, token file) when this process runs in a Kubernetes pod, else (None, None).
    The API is taken to be Kubeflow's, in namespace `kubeflow` (KFP_API_NAMESPACE changes it)."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None, None
    token_path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", KFP_TOKEN_PATH)
    token_file = next((p for p in (token_path, SA_TOKEN_PATH) if Path(p).is_file()), None)
    if token_file is None:
        return None, None
    namespace = os.environ.get("KFP_API_NAMESPACE", "kubeflow")
    return IN_CLUSTER_HOST.format(namespace=namespace), token_file
