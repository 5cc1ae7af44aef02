"""The pods the pipeline creates at run time run as locked down as the manifests' workloads: the
same check (tests/pss.py, the restricted Pod Security Standard plus the project's read-only root
and explicit UID) over KServe's predictor, each TFJob replica and Katib's trial pod, with the
GPU scheduling kept. The serving sync runs only inside manifests/base/serving (an init container
and a sidecar), so tests/compile/test_manifests.py covers it. The check itself is tested here
too: each violation it exists for must fail it."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from components.deploy import kserve
from components.train import tfjob
from components.tune import katib
from pipeline.cluster import ClusterOptions, trial_pod
from tests import needs
from tests.crds import crd_file
from tests.pss import assert_locked_down, assert_restricted

GPU = "nvidia.com/gpu"
RUNTIME = crd_file("kserve-tensorflow-serving-runtime.yaml")


def assert_tmp_is_an_empty_dir(pod: dict, where: str) -> None:
    """A read-only root needs somewhere to write: /tmp, on an emptyDir, in every container."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        (mount,) = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[mount["name"]], f"{where}, {c['name']}: /tmp"


def predictor_pod(predictor: dict) -> dict:
    """The pod KServe makes of the predictor: its pod fields, and the model's container merged
    over the runtime's (field by field in securityContext, as KServe's strategic merge does)."""
    container = {"name": "kserve-container", **copy.deepcopy(predictor["model"])}
    (runtime,) = yaml.safe_load(RUNTIME.read_text())["spec"]["containers"]
    ours = container.get("securityContext", {})
    container["securityContext"] = {**runtime.get("securityContext", {}), **ours}
    pod = {k: v for k, v in predictor.items() if k != "model"}
    return {**pod, "containers": [*predictor.get("containers", []), container]}


def test_the_kserve_predictor_is_restricted():
    isvc = kserve.inference_service("s3://mlpipeline/mnist/models/mnist", "team-a", 3)
    pod = predictor_pod(isvc["spec"]["predictor"])
    assert_locked_down(pod, "InferenceService predictor", isvc["metadata"]["annotations"])
    assert_tmp_is_an_empty_dir(pod, "InferenceService predictor")


def trial_pod_settings() -> dict:
    """What the pipeline hands the TFJob and Katib steps: the train step's GPU scheduling."""
    pod = trial_pod(ClusterOptions())
    assert pod["resources"]["limits"][GPU] == "1" and pod["nodeSelector"]
    return pod


def assert_gpu_scheduling_kept(pod: dict, settings: dict, where: str) -> None:
    (container,) = pod["containers"]
    assert container["resources"]["limits"][GPU] == settings["resources"]["limits"][GPU], where
    assert pod["nodeSelector"] == settings["nodeSelector"], where
    assert pod["tolerations"] == settings["tolerations"], where


@pytest.mark.parametrize("replica", ["Chief", "Worker"])
def test_each_tfjob_replica_is_restricted(replica):
    settings = trial_pod_settings()
    job = tfjob.tfjob("mnist-train-r1", "team-a", 3, ["--epochs=2"], settings)
    template = job["spec"]["tfReplicaSpecs"][replica]["template"]
    where = f"TFJob {replica}"
    assert_locked_down(template["spec"], where, template["metadata"].get("annotations"))
    assert_tmp_is_an_empty_dir(template["spec"], where)
    assert_gpu_scheduling_kept(template["spec"], settings, where)


def katib_trial_template() -> tuple[dict, dict]:
    settings = trial_pod_settings()
    experiment = katib.experiment(
        "mnist-tune-r1", "team-a", settings["image"], "s3://mlpipeline/mnist/datasets/mnist",
        "minio:9000", max_epochs=4, pod=settings,
    )  # fmt: skip
    trial_spec = experiment["spec"]["trialTemplate"]["trialSpec"]
    assert trial_spec["kind"] == "Job"  # a TFJob trial would keep its pods under tfReplicaSpecs
    return trial_spec, settings


def test_katibs_trial_pod_is_restricted():
    trial_spec, settings = katib_trial_template()
    template = trial_spec["spec"]["template"]
    where = "Katib trial"
    assert_locked_down(template["spec"], where, template["metadata"].get("annotations"))
    assert_tmp_is_an_empty_dir(template["spec"], where)
    assert_gpu_scheduling_kept(template["spec"], settings, where)


def test_katibs_trial_job_is_a_valid_kubernetes_job():
    """Katib keeps the trial's Job as free-form JSON (its models do not check it): the Job,
    securityContext and volumes included, must pass Kubernetes' own schema, strictly."""
    kubernetes_validate = needs.module("kubernetes_validate")
    trial_spec, _ = katib_trial_template()
    job = {**trial_spec, "metadata": {"name": "mnist-tune-r1-trial"}}
    kubernetes_validate.validate(job, "1.31.0", strict=True)


# --- the check itself: a locked-down pod passes, and each violation fails it ---------------


def locked_down_pod() -> dict:
    """Written out, not made by components/common/kube.py: the check must not lean on the code
    it checks."""
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "main",
            "image": "registry/image:1.0",
            "ports": [{"containerPort": 8080}],
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "token", "projected": {}}],
    }  # fmt: skip


DELETE = object()


def set_path(obj: dict, path: str, value) -> None:
    """Set (or, with DELETE, remove) the field at a dotted path such as containers.0.ports."""
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[int(key)] if isinstance(obj, list) else obj.setdefault(key, {})
    if value is DELETE:
        del obj[last]
    else:
        obj[last] = value


# (field, value, what the failure names): each control of the standard, pod and container level.
PSS_VIOLATIONS = [
    ("hostNetwork", True, "hostNetwork"),
    ("hostPID", True, "hostPID"),
    ("hostIPC", True, "hostIPC"),
    ("volumes", [{"name": "host", "hostPath": {"path": "/var/run"}}], "volume host"),
    ("securityContext.runAsNonRoot", False, "runAsNonRoot"),
    ("securityContext.runAsUser", 0, "runAsUser 0"),
    ("securityContext.seccompProfile", {"type": "Unconfined"}, "seccompProfile Unconfined"),
    ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], "unsafe sysctls"),
    ("securityContext.seLinuxOptions", {"type": "spc_t"}, "seLinuxOptions.type"),
    ("securityContext.seLinuxOptions", {"user": "system_u"}, "seLinux user/role"),
    ("securityContext.appArmorProfile", {"type": "Unconfined"}, "appArmorProfile"),
    ("containers.0.securityContext.runAsNonRoot", False, "runAsNonRoot"),
    ("containers.0.securityContext.runAsUser", 0, "runAsUser 0"),
    ("containers.0.securityContext.privileged", True, "privileged"),
    ("containers.0.securityContext.allowPrivilegeEscalation", True, "allowPrivilegeEscalation"),
    ("containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}, "not dropped"),
    ("containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
     "capabilities added"),
    ("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}, "seccompProfile"),
    ("containers.0.securityContext.procMount", "Unmasked", "procMount"),
    ("containers.0.securityContext.windowsOptions", {"hostProcess": True}, "hostProcess"),
    ("containers.0.ports", [{"containerPort": 8080, "hostPort": 8080}], "hostPort 8080"),
    ("initContainers", [{"name": "init", "image": "registry/image:1.0"}], "container init"),
]  # fmt: skip


def test_the_locked_down_pod_passes():
    assert_locked_down(locked_down_pod(), "pod")


@pytest.mark.parametrize(
    ("path", "value", "named"), PSS_VIOLATIONS, ids=[v[0] for v in PSS_VIOLATIONS]
)
def test_the_check_refuses_what_the_standard_forbids(path, value, named):
    pod = locked_down_pod()
    set_path(pod, path, value)
    with pytest.raises(AssertionError, match=re.escape(named)):
        assert_restricted(pod, "pod")


@pytest.mark.parametrize("field", ["runAsNonRoot", "seccompProfile"])
def test_a_pod_level_setting_left_out_must_be_on_every_container(field):
    pod = locked_down_pod()
    value = pod["securityContext"].pop(field)
    with pytest.raises(AssertionError):
        assert_restricted(pod, "pod")
    pod["containers"][0]["securityContext"][field] = value
    assert_restricted(pod, "pod")  # set on the container instead: allowed


def test_the_apparmor_annotation_must_not_unconfine():
    key = "container.apparmor.security.beta.kubernetes.io/main"
    assert_restricted(locked_down_pod(), "pod", {key: "runtime/default"})
    with pytest.raises(AssertionError):
        assert_restricted(locked_down_pod(), "pod", {key: "unconfined"})


PROJECT_RULES = [
    ("containers.0.securityContext.readOnlyRootFilesystem", False),
    ("securityContext.runAsUser", DELETE),
    ("containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
    ("securityContext.seccompProfile", {"type": "Localhost", "localhostProfile": "mnist.json"}),
]


@pytest.mark.parametrize(("path", "value"), PROJECT_RULES, ids=[p for p, _ in PROJECT_RULES])
def test_the_projects_rules_go_beyond_the_standard(path, value):
    pod = locked_down_pod()
    set_path(pod, path, value)
    assert_restricted(pod, "pod")
    with pytest.raises(AssertionError):
        assert_locked_down(pod, "pod")
