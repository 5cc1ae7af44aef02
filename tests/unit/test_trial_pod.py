"""The pods Katib and the Training Operator make for us get the train step's GPU scheduling
(pipeline/cluster.py trial_pod): read where each controller reads it, a Katib trial's Job pod
template and each TFJob replica's template. The node selector and the toleration put the pod on
a GPU node; `resources.limits["nvidia.com/gpu"]` (or the configured accelerator) is how many
GPUs the device plugin gives its container. Checked with settings that are not the defaults, so
a value written as a constant is caught."""

from __future__ import annotations

import pytest

from components.common import spec
from components.common.errors import InputError
from components.images import GPU_IMAGE
from components.train import tfjob
from components.tune import katib
from pipeline.cluster import RESOURCES, ClusterOptions, GpuOptions, trial_pod

CUSTOM = GpuOptions(
    accelerator="amd.com/gpu",
    limit=2,
    node_label_key="pool",
    node_label_value="a100",
    toleration_key="dedicated-gpu",
)


def katib_trial_pod(options: ClusterOptions) -> tuple[dict, dict]:
    """(pod spec, the trial's container): the Job template Katib's trial controller creates."""
    experiment = katib.experiment(
        "mnist-tune-r1", "team-a", GPU_IMAGE, "s3://mlpipeline/mnist/datasets/mnist",
        "minio:9000", max_epochs=4, pod=trial_pod(options),
    )  # fmt: skip
    template = experiment["spec"]["trialTemplate"]
    pod = template["trialSpec"]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == template["primaryContainerName"]]
    return pod, container


def tfjob_replica_pods(options: ClusterOptions) -> dict[str, tuple[dict, dict]]:
    """{Chief, Worker: (pod spec, the `tensorflow` container)}, as the Training Operator reads."""
    job = tfjob.tfjob("mnist-train-r1", "team-a", 3, ["--epochs=2"], trial_pod(options))
    pods = {}
    for replica, replica_spec in job["spec"]["tfReplicaSpecs"].items():
        pod = replica_spec["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == tfjob.CONTAINER]
        pods[replica] = (pod, container)
    return pods


def scheduled_pods(options: ClusterOptions) -> dict[str, tuple[dict, dict]]:
    return {"Katib trial": katib_trial_pod(options), **tfjob_replica_pods(options)}


@pytest.mark.parametrize("gpu", [GpuOptions(), CUSTOM], ids=["default", "custom"])
def test_every_trial_and_replica_pod_goes_to_a_gpu_node_with_its_gpus(gpu):
    for where, (pod, container) in scheduled_pods(ClusterOptions(gpu=gpu)).items():
        assert pod["nodeSelector"] == {gpu.node_label_key: gpu.node_label_value}, where
        assert pod["tolerations"] == [
            {"key": gpu.toleration_key, "operator": "Exists", "effect": "NoSchedule"}
        ], where
        limits = container["resources"]["limits"]
        assert limits[gpu.accelerator] == str(gpu.limit), where
        assert container["image"] == GPU_IMAGE, where


def test_without_a_gpu_no_pod_asks_for_one_or_waits_for_a_gpu_node():
    for where, (pod, container) in scheduled_pods(ClusterOptions(gpu=GpuOptions(False))).items():
        assert "nodeSelector" not in pod and "tolerations" not in pod, where
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, where


def test_trial_and_replica_pods_get_the_train_steps_cpu_and_memory():
    train = RESOURCES[spec.TRAIN]
    for where, (_, container) in scheduled_pods(ClusterOptions()).items():
        resources = container["resources"]
        assert resources["requests"] == {"cpu": train.cpu_request, "memory": train.memory_request}
        assert resources["limits"]["cpu"] == train.cpu_limit, where
        assert resources["limits"]["memory"] == train.memory_limit, where


def test_the_store_credentials_come_from_the_named_secret():
    options = ClusterOptions(secret_name="team-a-minio")
    for where, (_, container) in scheduled_pods(options).items():
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env == {
            "AWS_ACCESS_KEY_ID": {"name": "team-a-minio", "key": "accesskey"},
            "AWS_SECRET_ACCESS_KEY": {"name": "team-a-minio", "key": "secretkey"},
        }, where


def test_each_call_gives_a_pod_of_its_own():
    """A caller that edits the pod it got (Katib and TFJob each add to theirs) cannot change
    the next one."""
    first = trial_pod(ClusterOptions())
    first["resources"]["limits"]["cpu"] = "99"
    first["nodeSelector"]["pool"] = "other"
    assert trial_pod(ClusterOptions()) == trial_pod(ClusterOptions())
    assert (
        trial_pod(ClusterOptions())["resources"]["limits"]["cpu"] == RESOURCES[spec.TRAIN].cpu_limit
    )


@pytest.mark.parametrize(
    "gpu, message",
    [
        (GpuOptions(limit=0), "gpu limit must be at least 1, got 0"),
        (GpuOptions(node_label_key=" "), "--gpu-node-label must be KEY=VALUE with a non-empty KEY"),
        (GpuOptions(toleration_key=""), "--gpu-toleration-key must not be empty (or use --no-gpu)"),
    ],
)
def test_gpu_settings_that_cannot_schedule_are_refused_in_one_line(gpu, message):
    with pytest.raises(InputError) as e:
        ClusterOptions(gpu=gpu).validate()
    assert str(e.value) == message


def test_without_a_gpu_its_settings_are_not_checked():
    ClusterOptions(
        gpu=GpuOptions(enabled=False, limit=0, node_label_key="", toleration_key="")
    ).validate()
    GpuOptions(limit=1, node_label_key="k", toleration_key="t").validate()


def test_a_blank_secret_name_is_refused():
    with pytest.raises(
        InputError, match="--secret-name must not be empty: name the store's Secret"
    ):
        ClusterOptions(secret_name="  ").validate()
