"""What each task asks of the cluster (pipeline/cluster.py), as the KFP backend and the
scheduler read the compiled YAML, each test compiling its own pipeline (a module's shared
YAML would be made during the first test only, so mutmut would credit that test alone with
every helper run while compiling): how often and how long a failed pod is retried, the
resources, the identity, the store's Secret, the GPU request and where it comes from."""

from __future__ import annotations

import re

import pytest

from components.common import spec
from components.common.kube import RUN_AS
from pipeline.cluster import RESOURCES, ClusterOptions, GpuOptions
from tests.compile.test_cluster_settings import train_pod
from tests.compile.test_compiled_yaml import TASKS, all_tasks, compiled, executor, k8s

NETWORK_STEPS = ("download", "unpack-and-upload", "export", "batch-predict", "deploy")


def seconds(duration: str) -> int:
    """A retry duration as the KFP backend reads it ("60s")."""
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match[1])


def waits(policy: dict) -> list[int]:
    """The wait before each retry: the backoff, times the factor after each, at most the
    maximum (Argo's retryStrategy backoff, which the KFP backend makes of the policy)."""
    first, factor = seconds(policy["backoffDuration"]), policy["backoffFactor"]
    cap = seconds(policy["backoffMaxDuration"])
    return [min(first * factor**n, cap) for n in range(policy["maxRetryCount"])]


def test_a_preempted_train_pod_comes_back_five_times_over_half_an_hour(tmp_path):
    """Time for a spot node pool to replace the node: 1, 2, 4, 8 then 15 minutes."""
    policy = all_tasks(compiled(tmp_path)["spec"])["train"]["retryPolicy"]
    assert set(policy) == {"maxRetryCount", "backoffDuration", "backoffFactor",
                           "backoffMaxDuration"}  # fmt: skip
    assert waits(policy) == [60, 120, 240, 480, 900]
    assert sum(waits(policy)) == 30 * 60


def test_a_step_that_talks_to_the_network_is_retried_three_times_within_four_minutes(tmp_path):
    tasks = all_tasks(compiled(tmp_path)["spec"])
    for task in NETWORK_STEPS:
        policy = tasks[task]["retryPolicy"]
        assert policy["backoffMaxDuration"] == "600s", task  # a cap above the last wait
        assert waits(policy) == [30, 60, 120], task


def test_the_tuning_step_is_retried_as_a_network_step(tmp_path):
    import yaml

    from pipeline.dag import compile_pipeline

    out = tmp_path / "tune.yaml"
    compile_pipeline(str(out), tuning=True)
    tasks = all_tasks(next(yaml.safe_load_all(out.read_text())))
    assert waits(tasks[spec.TUNE]["retryPolicy"]) == [30, 60, 120]


def test_each_task_asks_for_the_cpu_and_memory_of_its_row(tmp_path):
    doc = compiled(tmp_path)
    for task in [*TASKS, spec.CHECK_PARAMETERS]:
        asked = executor(doc["spec"], task)["resources"]
        row = RESOURCES[task]
        assert (asked["resourceCpuRequest"], asked["resourceCpuLimit"]) == (
            row.cpu_request, row.cpu_limit), task  # fmt: skip
        assert (asked["resourceMemoryRequest"], asked["resourceMemoryLimit"]) == (
            row.memory_request, row.memory_limit), task  # fmt: skip


def test_every_task_runs_as_the_images_user_and_never_as_root(tmp_path):
    doc = compiled(tmp_path)
    for task in [*TASKS, spec.CHECK_PARAMETERS]:
        context = k8s(doc, task)["securityContext"]
        assert context["runAsNonRoot"] is True, task
        assert int(context["runAsUser"]) == int(context["runAsGroup"]) == RUN_AS, task


def test_the_store_credentials_come_from_the_secret_named_at_compile_time(tmp_path):
    doc = compiled(tmp_path, ClusterOptions(secret_name="team-a-minio"))
    for task in TASKS:
        (secret,) = k8s(doc, task)["secretAsEnv"]
        assert secret["secretName"] == "team-a-minio", task
        assert {m["secretKey"]: m["envVar"] for m in secret["keyToEnv"]} == {
            "accesskey": "AWS_ACCESS_KEY_ID",  # what boto3 reads from the environment
            "secretkey": "AWS_SECRET_ACCESS_KEY",
        }, task


def test_the_train_task_takes_its_gpus_and_node_from_the_check_parameters_task(tmp_path):
    """The accelerator type is compiled in; its count, the node selector and the toleration
    are the check-parameters task's outputs for the run."""
    gpu = GpuOptions(accelerator="amd.com/gpu", limit=3, node_label_key="pool",
                     node_label_value="mi300", toleration_key="dedicated")  # fmt: skip
    doc = compiled(tmp_path, ClusterOptions(gpu=gpu))
    assert train_pod(doc, train_workers=1) == {
        "gpus": ("amd.com/gpu", 3),
        "nodeSelector": {"pool": "mi300"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    }
    platform = k8s(doc, "train")
    for wire in (platform["nodeSelector"]["nodeSelectorJson"],
                 *(t["tolerationJson"] for t in platform["tolerations"])):  # fmt: skip
        assert wire["taskOutputParameter"]["producerTask"] == spec.CHECK_PARAMETERS


@pytest.mark.parametrize("retries", [True, False])
def test_without_a_gpu_no_task_asks_for_one_or_for_a_gpu_node(tmp_path, retries):
    doc = compiled(tmp_path, ClusterOptions(gpu=GpuOptions(enabled=False), pod_retries=retries))
    for task in [*TASKS, spec.CHECK_PARAMETERS]:
        assert "accelerator" not in executor(doc["spec"], task).get("resources", {}), task
        assert not {"nodeSelector", "tolerations"} & set(k8s(doc, task)), task
        assert ("retryPolicy" in all_tasks(doc["spec"])[task]) == (
            retries and task != spec.CHECK_PARAMETERS
        ), task


def test_a_blank_secret_name_is_refused_when_the_pipeline_is_built(tmp_path):
    from components.common.errors import InputError
    from pipeline.dag import build_pipeline

    with pytest.raises(InputError) as e:
        build_pipeline(ClusterOptions(secret_name=" \t"))
    assert str(e.value) == "--secret-name must not be empty: name the store's Secret"
