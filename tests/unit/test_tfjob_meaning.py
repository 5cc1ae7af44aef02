"""The TFJob as the Training Operator, Istio and the API server read it, and its launch as the
train step's user sees it (components/train/tfjob.py): how many replicas of each kind, how a
failed one is retried and cleaned up, the sidecar left out, the command each runs, the bounded
/tmp; the object created being exactly that one, the polling at the interval given, the
chief's result read from the store at the step's endpoint, and each failure in one line."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest

from components.common import kube as kube_module
from components.common.errors import InputError
from components.common.kube import Kube, KubeError
from components.deploy import kserve
from components.store import LocalStore
from components.train import tfjob
from components.train.config import TrainConfig
from components.train.distributed import RESULT
from tests import servers
from tests.kube_server import Clock, client_for, kube_api

POD = {
    "image": "registry/mnist-pipeline-gpu:0.1.0",
    "resources": {"limits": {"nvidia.com/gpu": "1"}},
    "env": [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
        "name": "mlpipeline-minio-artifact", "key": "accesskey"}}}],
}  # fmt: skip
CFG = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, seed=42, train_limit=1200)
NAME = "mnist-train-r1"
SUCCEEDED = {"conditions": [{"type": "Succeeded", "status": "True"}]}
RUNNING = {"conditions": [{"type": "Running", "status": "True"}]}


def replicas(job: dict) -> dict[str, dict]:
    return job["spec"]["tfReplicaSpecs"]


# -- the TFJob object -------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 5])
def test_n_workers_are_one_chief_and_n_minus_one_workers(workers):
    specs = replicas(tfjob.tfjob(NAME, "team-a", workers, [], POD))
    assert {kind: spec["replicas"] for kind, spec in specs.items()} == {
        "Chief": 1,
        "Worker": workers - 1,
    }


@pytest.mark.parametrize("workers", [1, 0, -3])
def test_fewer_than_two_workers_are_refused_in_one_line(workers):
    with pytest.raises(InputError) as e:
        tfjob.tfjob(NAME, "team-a", workers, [], POD)
    assert str(e.value) == f"a TFJob is for 2 workers or more, got {workers}"


def test_a_failed_replica_is_restarted_and_the_job_gives_up_after_three_restarts():
    """restartPolicy OnFailure: the operator restarts a replica whose container failed (a
    preempted node, an OOM) in place, and the job fails after backoffLimit 3 restarts; once
    it ends, cleanPodPolicy Running removes the pods still running and keeps the finished
    ones, whose logs say what happened."""
    job = tfjob.tfjob(NAME, "team-a", 3, [], POD)
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 3}
    for kind, spec in replicas(job).items():
        assert spec["restartPolicy"] == "OnFailure", kind


def test_no_replica_gets_an_istio_sidecar():
    """A sidecar would keep a replica's pod running after TensorFlow exits, so the TFJob
    would never succeed; Istio reads exactly the string "false"."""
    for kind, spec in replicas(tfjob.tfjob(NAME, "team-a", 2, [], POD)).items():
        assert spec["template"]["metadata"]["annotations"] == {
            "sidecar.istio.io/inject": "false"
        }, kind


def test_the_tfjob_carries_the_projects_label_as_the_inference_service_does():
    """`kubectl get tfjobs,inferenceservices -l app.kubernetes.io/part-of=mnist-kfp` lists
    what the pipeline made."""
    job = tfjob.tfjob(NAME, "team-a", 2, [], POD)
    isvc = kserve.inference_service("s3://mlpipeline/mnist/models/mnist", "team-a", 3)
    assert job["metadata"]["labels"] == {"app.kubernetes.io/part-of": "mnist-kfp"}
    part_of = "app.kubernetes.io/part-of"
    assert job["metadata"]["labels"][part_of] == isvc["metadata"]["labels"][part_of]
    assert (job["metadata"]["name"], job["metadata"]["namespace"]) == (NAME, "team-a")


def test_each_replica_runs_the_distributed_module_with_the_arguments_given():
    args = ["--dataset-uri=s3://b/datasets/mnist", "--epochs=2"]
    for kind, spec in replicas(tfjob.tfjob(NAME, "team-a", 2, args, POD)).items():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["name"] == tfjob.CONTAINER == "tensorflow", kind  # the operator's
        assert container["command"] == ["python", "-m", "components.train.distributed", *args]
        assert importlib.util.find_spec(container["command"][2]) is not None


def test_each_replicas_tmp_is_an_empty_dir_of_the_bound_size():
    for kind, spec in replicas(tfjob.tfjob(NAME, "team-a", 2, [], POD)).items():
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["emptyDir"] == {"sizeLimit": tfjob.TMP_SIZE}, kind


def test_a_pod_without_gpu_scheduling_or_env_gives_replicas_without_them():
    """--no-gpu: no node selector nor toleration to wait for a GPU node, no empty fields."""
    spec = replicas(tfjob.tfjob(NAME, "team-a", 2, [], {"image": POD["image"]}))["Worker"]
    pod = spec["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    (container,) = pod["containers"]
    assert "env" not in container and "resources" not in container


# -- the launch -------------------------------------------------------------------------------


def chief_left(root, result) -> None:
    data = result if isinstance(result, bytes) else json.dumps(result).encode()
    LocalStore(root).put_bytes(f"checkpoints/r1/tfjob/{RESULT}", data)


def launch(root, api_url, **kwargs):
    return tfjob.train_with_tfjob(
        "r1", "team-a", 3, str(root), kwargs.pop("endpoint", ""), "s3://b/datasets/mnist", CFG,
        POD, timeout=kwargs.pop("timeout", 300), kube=Kube(client_for(api_url)), **kwargs,
    )  # fmt: skip


def test_the_job_created_is_the_one_tfjob_describes_with_the_steps_arguments(tmp_path):
    chief_left(tmp_path, {"test_accuracy": 0.99, "replicas": 3})
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, SUCCEEDED)
        launch(tmp_path, url, endpoint="minio.kubeflow:9000", interval=0.01)
    (body,) = [body for method, _, body in api.requests if method == "POST"]
    out = f"{tmp_path}/checkpoints/r1/tfjob"
    args = [
        "--dataset-uri=s3://b/datasets/mnist",
        f"--out={out}",
        "--s3-endpoint=minio.kubeflow:9000",
        *CFG.as_flags(),
    ]
    assert body == tfjob.tfjob(NAME, "team-a", 3, args, POD)
    assert list(api.objects) == [("tfjobs", "team-a", NAME)]


def test_the_job_is_polled_at_the_interval_given(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(kube_module, "time", clock)
    chief_left(tmp_path, {"test_accuracy": 0.99, "replicas": 3})
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, RUNNING, RUNNING, SUCCEEDED)
        launch(tmp_path, url, interval=7.0)
    assert clock.sleeps == [7.0, 7.0]


def test_the_chiefs_result_is_read_at_the_steps_endpoint_not_the_environments(
    s3_bucket, s3_env, monkeypatch
):
    from components.store import open_store

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{servers.free_port()}")  # nobody
    store = open_store(f"s3://{s3_bucket}", s3_env)
    result = {"test_accuracy": 0.97, "replicas": 3}
    store.put_bytes(f"checkpoints/r1/tfjob/{RESULT}", json.dumps(result).encode())
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, SUCCEEDED)
        where, got = tfjob.train_with_tfjob(
            "r1", "team-a", 3, f"s3://{s3_bucket}", s3_env, "s3://b/datasets/mnist", CFG, POD,
            timeout=30, kube=Kube(client_for(url)), interval=0.01,
        )  # fmt: skip
    assert (where, got) == (f"s3://{s3_bucket}/checkpoints/r1/tfjob", result)


def test_the_result_is_said_in_one_line(tmp_path, caplog):
    chief_left(tmp_path, {"test_accuracy": 0.98765, "replicas": 3})
    with kube_api() as (api, url), caplog.at_level(logging.INFO, logger="mnist"):
        api.script_status("tfjobs", NAME, SUCCEEDED)
        launch(tmp_path, url, interval=0.01)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("mnist.train")]
    assert said == ["TFJob team-a/mnist-train-r1: test accuracy 0.9877 with 3 replicas"]


def test_a_job_that_succeeded_without_a_result_is_one_line_naming_it(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, SUCCEEDED)
        with pytest.raises(KubeError) as e:
            launch(tmp_path, url, interval=0.01)
    where = f"{tmp_path}/checkpoints/r1/tfjob/{RESULT}"
    assert str(e.value) == (
        f"TFJob team-a/{NAME} succeeded but its chief left no {RESULT}: no object {where}"
    )


@pytest.mark.parametrize(
    "result, why",
    [
        (b"{cut", "not valid JSON (JSONDecodeError)"),
        ({"test_accuracy": 0.9}, "has no 'replicas' field"),
        ({"replicas": 2}, "has no 'test_accuracy' field"),
        ({"test_accuracy": "0.9", "replicas": 2}, "field 'test_accuracy' is a str"),
        ({"test_accuracy": 0.9, "replicas": 2.0}, "field 'replicas' is a float"),
    ],
)
def test_a_result_that_is_not_the_chiefs_is_one_line_naming_it(tmp_path, result, why):
    chief_left(tmp_path, result)
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, SUCCEEDED)
        with pytest.raises(KubeError) as e:
            launch(tmp_path, url, interval=0.01)
    where = f"{tmp_path}/checkpoints/r1/tfjob/{RESULT}"
    assert str(e.value) == f"TFJob team-a/{NAME} succeeded but {where}: {why}"


def test_a_tfjob_still_running_at_the_timeout_is_one_line(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(kube_module, "time", clock)
    with kube_api() as (api, url):
        api.script_status("tfjobs", NAME, RUNNING)
        with pytest.raises(KubeError) as e:
            launch(tmp_path, url, interval=60.0, timeout=600)
    assert str(e.value).startswith(f"TFJob team-a/{NAME} not done after ")
    assert str(e.value).endswith(": Running=True")
    assert sum(clock.sleeps) == 600
