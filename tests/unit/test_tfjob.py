"""Multi-worker training: the TFJob the train step writes (validated strictly against the
Training Operator's CRD), its launch and wait against the Kubernetes API stand-in, and a real
two-replica MultiWorkerMirroredStrategy run of the replicas' code in two local processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components.common.kube import Kube, KubeError
from components.store import LocalStore
from components.train import tfjob
from components.train.config import TrainConfig
from tests import needs, servers
from tests.conftest import REPO
from tests.crds import errors
from tests.kube_server import client_for, kube_api

CRD = "kubeflow.org_tfjobs.yaml"
POD = {
    "image": "registry/mnist-pipeline-gpu:0.1.0",
    "resources": {"limits": {"nvidia.com/gpu": "1"}},
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "env": [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
        "name": "mlpipeline-minio-artifact", "key": "accesskey"}}}],
}  # fmt: skip
CFG = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, seed=42, train_limit=1200)


def test_the_tfjob_validates_strictly_against_the_training_operators_crd():
    job = tfjob.tfjob("mnist-train-r1", "team-a", 3, ["--epochs=2"], POD)
    assert errors(job, CRD, "v1") == []
    specs = job["spec"]["tfReplicaSpecs"]
    assert specs["Chief"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2
    (container,) = specs["Worker"]["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow" and container["image"] == POD["image"]
    misspelt = json.loads(json.dumps(job))
    misspelt["spec"]["tfReplicaSpecs"]["Chief"]["replica"] = 1
    assert errors(misspelt, CRD, "v1")


def test_one_worker_is_not_a_tfjob():
    with pytest.raises(ValueError, match="2 workers or more"):
        tfjob.tfjob("x", "ns", 1, [], POD)


SUCCEEDED = {"conditions": [{"type": "Running", "status": "False"},
                            {"type": "Succeeded", "status": "True"}]}  # fmt: skip


def test_the_launcher_waits_and_takes_the_chiefs_result(tmp_path):
    from components.train.distributed import RESULT

    store = LocalStore(tmp_path / "store")
    out = "checkpoints/r1/tfjob"
    store.put_bytes(f"{out}/{RESULT}", json.dumps({"test_accuracy": 0.99, "replicas": 3}).encode())
    with kube_api() as (api, url):
        api.script_status("tfjobs", "mnist-train-r1", {"conditions": []}, SUCCEEDED)
        where, result = tfjob.train_with_tfjob(
            "r1", "team-a", 3, str(tmp_path / "store"), "", "s3://b/datasets/mnist", CFG,
            POD, timeout=30, kube=Kube(client_for(url)), interval=0.05,
        )  # fmt: skip
    assert where == str(tmp_path / "store" / out) and result["test_accuracy"] == 0.99
    (created,) = api.objects.values()
    command = created["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]
    assert f"--out={tmp_path / 'store' / out}" in command["command"]
    assert "--learning-rate=0.01" in command["command"]


def test_a_failed_tfjob_is_one_line(tmp_path):
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "TFJobFailed",
                              "message": "chief exited with code 1"}]}  # fmt: skip
    with kube_api() as (api, url):
        api.script_status("tfjobs", "mnist-train-r1", failed)
        with pytest.raises(KubeError) as e:
            tfjob.train_with_tfjob(
                "r1", "team-a", 2, str(tmp_path), "", "x", CFG, POD, timeout=30,
                kube=Kube(client_for(url)), interval=0.05,
            )  # fmt: skip
    assert str(e.value) == (
        "TFJob team-a/mnist-train-r1 failed: Failed=True (TFJobFailed: chief exited with code 1)"
    )


def test_two_replicas_train_in_step_and_only_the_chief_writes(small_mnist_dir, tmp_path):
    """MultiWorkerMirroredStrategy across two local processes, as a TFJob's chief and worker."""
    needs.module("tensorflow")
    from components.unpack_upload.unpack import unpack_and_upload

    unpack_and_upload(small_mnist_dir, LocalStore(tmp_path / "store"), canonical=False)
    ports = [servers.free_port(), servers.free_port()]
    cluster = {"chief": [f"localhost:{ports[0]}"], "worker": [f"localhost:{ports[1]}"]}
    args = [
        f"--dataset-uri={tmp_path}/store/datasets/mnist",
        f"--out={tmp_path}/out",
    ] + CFG.as_flags()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "components.train.distributed", *args],
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": 0}}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )  # fmt: skip
        for kind in ("chief", "worker")
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "2 replicas (MultiWorkerMirroredStrategy): global batch 64" in outputs[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["replicas"] == 2 and result["test_accuracy"] > 0.6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "model.keras", "report.html", "result.json"]  # fmt: skip
