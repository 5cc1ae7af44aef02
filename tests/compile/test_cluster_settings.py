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


def train_pod(doc: dict, train_workers: int) -> dict:
    """The train pod's GPU limit, node selector and tolerations as the KFP backend resolves them
    in a run with `train_workers`: the check-parameters task runs (its own function, with the
    constant the YAML gives it), and the train task's placeholders take its outputs."""
    import inspect
    import json

    from components.check_parameters.component import check_parameters
    from components.common.parameters import DEFAULTS

    checked = all_tasks(doc["spec"])[spec.CHECK_PARAMETERS]["inputs"]["parameters"]
    takes = inspect.signature(check_parameters.python_func).parameters
    values = {name: DEFAULTS[name] for name in takes if name in DEFAULTS}
    values |= {"train_workers": train_workers}
    values["train_gpu"] = checked["train_gpu"]["runtimeValue"]["constant"]
    names = (spec.TRAIN_GPUS, spec.TRAIN_NODE_SELECTOR, spec.TRAIN_TOLERATIONS)
    outputs = dict(zip(names, check_parameters.python_func(**values), strict=True))
    train = all_tasks(doc["spec"])["train"]["inputs"]["parameters"]

    def output(wire: dict):
        source = wire["taskOutputParameter"]
        assert source["producerTask"] == spec.CHECK_PARAMETERS
        return json.loads(json.dumps(outputs[source["outputParameterKey"]]))

    pod = {"gpus": None, "nodeSelector": {}, "tolerations": []}
    accelerator = executor(doc["spec"], "train").get("resources", {}).get("accelerator")
    if accelerator:
        count = accelerator["resourceCount"]  # {{$.inputs.parameters['<input>']}}
        pod["gpus"] = (accelerator["resourceType"], output(train[count.split("'")[1]]))
    platform = k8s(doc, "train")
    if "nodeSelector" in platform:
        pod["nodeSelector"] = output(platform["nodeSelector"]["nodeSelectorJson"])
    for toleration in platform.get("tolerations", []):
        pod["tolerations"] += output(toleration["tolerationJson"])
    return pod


def test_the_train_task_asks_for_the_configured_gpus_on_the_configured_nodes(custom):
    assert train_pod(custom, train_workers=1) == {
        "gpus": ("amd.com/gpu", 2),
        "nodeSelector": {"pool": "a100"},
        "tolerations": [{"key": "dedicated-gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    for task in set(TASKS) - {"train"}:
        assert "nodeSelector" not in k8s(custom, task) and "tolerations" not in k8s(custom, task)
        assert "accelerator" not in executor(custom["spec"], task).get("resources", {})


@pytest.mark.parametrize("workers", [2, 8])
def test_a_train_task_that_launches_a_tfjob_holds_no_gpu(custom, workers):
    """With train_workers >= 2 the train task only creates the TFJob and waits: its replicas
    hold the GPUs (tests/unit/test_trial_pod.py), the waiting pod none, on no GPU node."""
    assert train_pod(custom, workers) == {
        "gpus": ("amd.com/gpu", 0),
        "nodeSelector": {},
        "tolerations": [],
    }


def test_without_a_gpu_the_train_task_asks_for_none(tmp_path):
    doc = compiled(tmp_path, ClusterOptions(gpu=GpuOptions(enabled=False)))
    assert train_pod(doc, 1) == {"gpus": None, "nodeSelector": {}, "tolerations": []}


@pytest.mark.parametrize("task", [*TASKS, spec.CHECK_PARAMETERS])
def test_every_task_runs_as_the_images_user_and_group(default, task):
    context = k8s(default, task)["securityContext"]
    assert context == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}
