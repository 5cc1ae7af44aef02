"""What each task asks of the cluster (pipeline/cluster.py), read in the compiled YAML as the KFP
backend reads it: the resources of the table, value by value; the two retry policies, field by
field; the GPU request, node selector and toleration with settings that are not the defaults;
the identity the step runs as. tests/compile/test_compiled_yaml.py checks the rest of the YAML."""

from __future__ import annotations

import pytest

from components.common import spec
from pipeline.cluster import RESOURCES, ClusterOptions, GpuOptions
from tests.compile.test_compiled_yaml import TASKS, all_tasks, compiled, executor, k8s

NETWORK_RETRIES = {
    "maxRetryCount": 3, "backoffDuration": "30s", "backoffFactor": 2.0,
    "backoffMaxDuration": "600s",
}  # fmt: skip
PREEMPTION_RETRIES = {
    "maxRetryCount": 5, "backoffDuration": "60s", "backoffFactor": 2.0,
    "backoffMaxDuration": "900s",
}  # fmt: skip
CUSTOM = GpuOptions(
    accelerator="amd.com/gpu",
    limit=2,
    node_label_key="pool",
    node_label_value="a100",
    toleration_key="dedicated-gpu",
)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return compiled(tmp_path_factory.mktemp("yaml"))


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    return compiled(tmp_path_factory.mktemp("yaml"), ClusterOptions(gpu=CUSTOM))


@pytest.mark.parametrize("task", [*TASKS, spec.CHECK_PARAMETERS])
def test_each_task_gets_the_resources_of_the_table(default, task):
    resources = executor(default["spec"], task)["resources"]
    table = RESOURCES[task]
    asked = {k: resources[k] for k in resources if k.startswith(("resourceCpu", "resourceMem"))}
    assert asked == {
        "resourceCpuRequest": table.cpu_request,
        "resourceCpuLimit": table.cpu_limit,
        "resourceMemoryRequest": table.memory_request,
        "resourceMemoryLimit": table.memory_limit,
    }


def test_steps_that_talk_to_the_network_retry_with_backoff(default):
    tasks = all_tasks(default["spec"])
    for task in ("download", "unpack-and-upload", "export", "batch-predict", "deploy"):
        assert tasks[task]["retryPolicy"] == NETWORK_RETRIES, task


def test_train_retries_a_preempted_pod_five_times_over_half_an_hour(default):
    assert all_tasks(default["spec"])["train"]["retryPolicy"] == PREEMPTION_RETRIES


def test_without_pod_retries_no_task_is_retried(tmp_path):
    doc = compiled(tmp_path, ClusterOptions(pod_retries=False))
    assert not [name for name, task in all_tasks(doc["spec"]).items() if "retryPolicy" in task]


def test_the_train_task_asks_for_the_configured_gpus_on_the_configured_nodes(custom):
    accelerator = executor(custom["spec"], "train")["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("amd.com/gpu", "2")
    platform = k8s(custom, "train")
    assert platform["nodeSelector"]["labels"] == {"pool": "a100"}
    assert platform["tolerations"] == [
        {"key": "dedicated-gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    for task in set(TASKS) - {"train"}:
        assert "nodeSelector" not in k8s(custom, task) and "tolerations" not in k8s(custom, task)


@pytest.mark.parametrize("task", [*TASKS, spec.CHECK_PARAMETERS])
def test_every_task_runs_as_the_images_user_and_group(default, task):
    context = k8s(default, task)["securityContext"]
    assert context == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}
