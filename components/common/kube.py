"""Kubernetes custom resources from a pipeline step: create-or-patch, wait on conditions, delete.

One small module on the `kubernetes` client's CustomObjectsApi, for the steps that hand work to
an operator (a TFJob for multi-worker training). Inside a pod it uses the pod's service account;
elsewhere the kubeconfig. Every failure becomes one KubeError line naming the resource, the
status and what to check (a 403 names the verb the Role lacks); waits are bounded and log
progress on a timer.

The pods those resources make (TFJob replicas, Katib trials, KServe's predictor) are locked down
here too, in one place (`restrict`): the "restricted" Pod Security Standard, as manifests/base
runs its own workloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from components.common.errors import StepError
from components.common.log import get_logger
from components.common.units import human_seconds

log = get_logger("kube")


class KubeError(StepError, RuntimeError):
    """A Kubernetes call failed or a resource did not get ready: one line saying why."""


@dataclass(frozen=True)
class Kind:
    """A custom resource type: TFJOB = Kind("kubeflow.org", "v1", "tfjobs", "TFJob")."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


TFJOB = Kind("kubeflow.org", "v1", "tfjobs", "TFJob")
INFERENCE_SERVICE = Kind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
# The verbs `Kube` uses, for the Role that lets the pipeline's service account use it.
VERBS = ("create", "get", "patch", "delete")
# Inside a pod: the namespace it runs in, where a step makes its resources.
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# The images' user and group (docker/Dockerfile: USER 10001:10001), as in manifests/base.
RUN_AS = 10001
TMP_VOLUME = "tmp"


def pod_security_context() -> dict:
    """The pod level of the "restricted" Pod Security Standard, as manifests/base has it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict:
    """The container level: no privilege escalation, no capabilities, a read-only root."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def restrict(pod: dict, containers: list[dict], tmp_size: str) -> dict:
    """Lock down a pod spec we hand to an operator (or KServe's predictor, whose pod fields sit
    beside its `model` container): the security contexts above, and, since the root filesystem
    is read-only, an emptyDir of `tmp_size` at /tmp in each container (TensorFlow, Keras and
    the steps' temporary folders write there). Changes and returns `pod`."""
    pod["securityContext"] = pod_security_context()
    tmp = {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": tmp_size}}
    pod["volumes"] = [*pod.get("volumes", []), tmp]
    for container in containers:
        container["securityContext"] = container_security_context()
        mount = {"name": TMP_VOLUME, "mountPath": "/tmp"}
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
    return pod


def own_namespace() -> str:
    """The namespace of the pod this runs in (the run's namespace, for a pipeline step)."""
    from pathlib import Path

    try:
        return Path(NAMESPACE_FILE).read_text().strip()
    except OSError:
        raise KubeError(f"not in a Kubernetes pod: {NAMESPACE_FILE} cannot be read") from None


def name_for(prefix: str, run_id: str) -> str:
    """A DNS-1123 name for a run's resource: `<prefix>-<run id>`, at most 63 characters."""
    safe = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{prefix}-{safe}"[:63].rstrip("-")


def succeeded(obj: dict) -> bool | None:
    """The outcome of a job-like resource (a TFJob, a Katib Experiment): True when its
    Succeeded condition holds, False when Failed does, None while it runs."""
    if condition(obj, "Succeeded"):
        return True
    if condition(obj, "Failed"):
        return False
    return None


def condition(obj: dict, kind: str) -> dict | None:
    """The status condition of type `kind` that is "True", if any."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and str(c.get("status")) == "True":
            return c
    return None


def latest_condition(obj: dict) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not conditions:
        return "no status yet"
    last = conditions[-1]
    reason = f" ({last.get('reason')}: {last.get('message', '')})" if last.get("reason") else ""
    return f"{last.get('type')}={last.get('status')}{reason}"


class Kube:
    def __init__(self, api_client=None):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except config.ConfigException as e:
                    raise KubeError(
                        f"no Kubernetes API: not in a pod and no kubeconfig ({e})"
                    ) from None
            api_client = client.ApiClient()
        self.api = client.CustomObjectsApi(api_client)

    def _call(
        self, verb: str, kind: Kind, namespace: str, name: str, fn, *args, missing_ok=False, **kw
    ):
        """`fn(group, version, namespace, plural, *args)`; with `missing_ok` a 404 is None."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(kind.group, kind.version, namespace, kind.plural, *args, **kw)
        except ApiException as e:
            if missing_ok and e.status == 404:
                return None
            raise KubeError(_describe(e, verb, kind, namespace, name)) from None
        except (HTTPError, OSError) as e:  # connection refused, DNS, TLS: urllib3's, after retries
            raise KubeError(_unreachable(e, verb, kind, namespace, name)) from None

    def apply(self, kind: Kind, namespace: str, body: dict, patch: dict | None = None) -> dict:
        """Create `body`, or merge-patch `patch` (default: `body`) onto the existing object of
        the same name; the object as the API server returns it (with its new generation)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        name = body["metadata"]["name"]
        try:
            created = self.api.create_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, body
            )
            log.info("created %s %s/%s", kind.kind, namespace, name)
            return created
        except ApiException as e:
            if e.status != 409:
                raise KubeError(_describe(e, "create", kind, namespace, name)) from None
        except (HTTPError, OSError) as e:
            raise KubeError(_unreachable(e, "create", kind, namespace, name)) from None
        patched = self._call(
            "patch", kind, namespace, name, self.api.patch_namespaced_custom_object, name,
            body if patch is None else patch,
        )  # fmt: skip
        log.info("patched the existing %s %s/%s", kind.kind, namespace, name)
        return patched

    def get(self, kind: Kind, namespace: str, name: str) -> dict:
        return self._call("get", kind, namespace, name, self.api.get_namespaced_custom_object, name)

    def list_labelled(self, kind: Kind, namespace: str, labels: dict[str, str]) -> list[dict]:
        """The objects of `kind` in `namespace` that carry every label in `labels`."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        found = self._call(
            "list", kind, namespace, f"[{selector}]", self.api.list_namespaced_custom_object,
            label_selector=selector,
        )  # fmt: skip
        return list(found.get("items") or [])

    def find(self, kind: Kind, namespace: str, name: str) -> dict | None:
        """The object, or None when there is none."""
        fn = self.api.get_namespaced_custom_object
        return self._call("get", kind, namespace, name, fn, name, missing_ok=True)

    def openapi(self, kind: Kind) -> dict:
        """The OpenAPI v3 document of `kind`'s group/version: the installed CRD's schema, which
        any account may read (the `system:discovery` ClusterRole)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        path = f"/openapi/v3/apis/{kind.api_version}"
        try:
            return self.api.api_client.call_api(
                path, "GET", response_type="object", auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )  # fmt: skip
        except (ApiException, HTTPError, OSError) as e:
            why = f"HTTP {e.status}" if isinstance(e, ApiException) else "no answer"
            raise KubeError(f"cannot read {path}: {why}") from None

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        self._call("delete", kind, namespace, name, self.api.delete_namespaced_custom_object, name)

    def wait(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        outcome: Callable[[dict], bool | None],
        timeout: float,
        interval: float = 5.0,
        progress_every: float = 30.0,
        describe: Callable[[dict], str] = latest_condition,
    ) -> dict:
        """Poll the object until `outcome(obj)` is True (returns it) or False (raises, naming
        its latest condition); KubeError after `timeout` seconds, naming the last state as
        `describe` tells it."""
        start = last_line = time.monotonic()
        while True:
            obj = self.get(kind, namespace, name)
            verdict = outcome(obj)
            if verdict is True:
                return obj
            if verdict is False:
                raise KubeError(f"{kind.kind} {namespace}/{name} failed: {latest_condition(obj)}")
            now = time.monotonic()
            if now - start >= timeout:
                raise KubeError(
                    f"{kind.kind} {namespace}/{name} not done after {human_seconds(timeout)}: "
                    f"{describe(obj)}"
                )
            if now - last_line >= progress_every:
                last_line = now
                log.info(
                    "waiting for %s %s/%s (%s so far): %s",
                    kind.kind,
                    namespace,
                    name,
                    human_seconds(now - start),
                    describe(obj),
                )
            time.sleep(interval)


def _unreachable(e: Exception, verb: str, kind: Kind, namespace: str, name: str) -> str:
    """A call that got no answer: urllib3 gives up with MaxRetryError (no OSError), whose
    reason names what failed (a refused connection, a name that does not resolve, TLS)."""
    reason = getattr(e, "reason", None) or e
    return (
        f"cannot {verb} {kind.kind} {namespace}/{name}: the Kubernetes API cannot be reached "
        f"({type(reason).__name__})"
    )


def _describe(e, verb: str, kind: Kind, namespace: str, name: str) -> str:
    from components.common.records import RecordError, parse_record

    body = e.body or b"{}"
    try:  # the API server's Status object, or whatever stands in its place
        status = parse_record(body.encode() if isinstance(body, str) else body, "Status")
        message = " ".join(str(status.get("message", ""))[:300].split())
    except RecordError:
        message = ""
    what = f"cannot {verb} {kind.kind} {namespace}/{name}: HTTP {e.status}"
    if e.status == 403 and "admission webhook" in message:  # the operator refused the object
        return f"{what}: {message}"
    if e.status == 403:
        return (
            f"{what} forbidden: the pipeline's service account needs `{verb}` on "
            f"{kind.plural}.{kind.group} in {namespace} (manifests/base/pipeline-runner/role.yaml)"
        )
    if e.status == 404 and verb == "create":
        return f"{what}: the {kind.api_version} API is not installed in this cluster ({message})"
    return f"{what}" + (f": {message}" if message else "")
