"""Multi-worker training: the TFJob the train step writes (validated strictly against the
Training Operator's CRD), its launch and wait against the Kubernetes API stand-in, and a real
two-replica MultiWorkerMirroredStrategy run of the replicas' code in two local processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from components.common.kube import Kube, KubeError
from components.store import LocalStore
from components.train import tfjob
from components.train.config import TrainConfig
from tests import needs, servers
from tests.conftest import REPO, have_full_mnist
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


@pytest.mark.parametrize("pod", [POD, "trial_pod"], ids=["pod", "trial_pod"])
def test_every_replica_keeps_the_pods_gpu_scheduling_and_resources(pod):
    """What the Training Operator copies into each replica's pod: the node selector, the
    toleration and the GPU limit of the pod it was given (the train step passes
    pipeline/cluster.py trial_pod), so N replicas land on N GPU nodes."""
    if pod == "trial_pod":
        from pipeline.cluster import ClusterOptions, trial_pod

        pod = trial_pod(ClusterOptions())
    job = tfjob.tfjob("mnist-train-r1", "team-a", 3, [], pod)
    for kind in ("Chief", "Worker"):
        spec = job["spec"]["tfReplicaSpecs"][kind]["template"]["spec"]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, kind
        assert spec["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ], kind
        (container,) = [c for c in spec["containers"] if c["name"] == tfjob.CONTAINER]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", kind
        assert container["resources"] == pod["resources"], kind
        assert container["env"] == pod["env"], kind


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


STEP = """
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
import keras
import numpy as np

from components.dataset import mnist
from components.train import devices, distributed
from components.train import model as model_

images, labels = mnist.load_split(sys.argv[1], "train")
x, y = images[:64], labels[:64].astype("int32")
# one strategy per device count for the process: a second MirroredStrategy over the same
# devices may reuse the first one's collective keys and abort on a shape mismatch
STRATEGIES = {2: devices.choose_strategy(["/cpu:0", "/cpu:1"]), 1: devices.choose_strategy()}


def trainable(model):
    return np.concatenate([np.ravel(w.numpy()) for w in model.trainable_weights])


def one_step(replicas, synchronized):
    # distributed.train_step once on one global batch of 64 with plain SGD at rate 1, so the
    # update is minus the gradient: (the loss the step returns, the update)
    model_.seed_everything(3)
    strategy = STRATEGIES[replicas]
    with strategy.scope():
        model = model_.build_model(dropout=0.0, synchronized=synchronized)
        sgd = keras.optimizers.SGD(1.0)
    before = trainable(model)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    step = distributed.train_step(strategy, model, sgd, 64)
    loss = float(step(next(iter(strategy.experimental_distribute_dataset(batches)))))
    return loss, trainable(model) - before


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


model_.seed_everything(3)
probabilities = model_.build_model(dropout=0.0)(x, training=True)
out = {"mean": float(np.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities)))}
out["loss_two"], update_two = one_step(2, True)
out["loss_one"], update_one = one_step(1, False)
out["update"] = relative(update_two, update_one)
out["update_unsynchronized"] = relative(one_step(2, False)[1], update_one)
print("RESULT", json.dumps(out))
"""


def test_a_replicas_step_is_the_global_batchs_mean_loss_and_its_gradient(small_mnist_dir):
    """distributed.train_step on two replicas (two logical CPU devices, 32 examples each) of
    a global batch of 64, against one device with the same 64: the loss the step returns is
    the mean per-example loss of the 64 (each replica divides its sum by the global batch, so
    their sum is the global mean), and the update (plain SGD at rate 1: minus the gradient)
    is the same, with batch normalisation synchronized across the replicas.

    The tolerances: float32 rounds at about 6e-8 and the two runs add the same terms in
    another order (two partial sums of 32, synchronized batch norm's variance as
    E[x^2] - E[x]^2): measured 2e-7 on the loss and 6e-6 to 9e-6 on the update, so 1e-5 and
    1e-4. A loss divided by one replica's batch is twice the mean; batch norm statistics per
    replica move the update by 9e-2 (asserted, so the measure can see such a mistake)."""
    result = subprocess.run(
        [sys.executable, "-c", STEP, str(small_mnist_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line.split(" ", 1)[1])
    assert out["loss_two"] == pytest.approx(out["mean"], rel=1e-5)
    assert out["loss_one"] == pytest.approx(out["mean"], rel=1e-5)
    assert out["update"] < 1e-4
    assert out["update_unsynchronized"] > 1e-2


def test_two_replicas_train_in_step_and_only_the_chief_writes(small_mnist_dir, tmp_path):
    """MultiWorkerMirroredStrategy across two local processes, as a TFJob's chief and worker.
    Each gets its own --out here (in a TFJob they share one), so whatever a replica writes is
    seen where it wrote it: the worker must leave nothing in the store."""
    needs.module("tensorflow")
    from components.unpack_upload.unpack import unpack_and_upload

    unpack_and_upload(small_mnist_dir, LocalStore(tmp_path / "store"), canonical=False)
    args = [f"--dataset-uri={tmp_path}/store/datasets/mnist"]
    args += replace(CFG, validation_split=0.25).as_flags()
    outs = {"chief": tmp_path / "out", "worker": tmp_path / "worker-out"}
    codes, outputs = run_replicas(args, outs, tmp_path)
    if codes != [0, 0] and "already in use" in "".join(outputs).lower():
        # free_port's port was taken before TensorFlow bound it (seconds later): new ports
        codes, outputs = run_replicas(args, outs, tmp_path)
    assert codes == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "2 replicas (MultiWorkerMirroredStrategy): global batch 64" in outputs[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    # far above chance (0.1); the synthetic stand-in for MNIST (tests/conftest.py), whose
    # classes differ by where their bars are, is blurred by the shifts: less, by luck
    assert result["replicas"] == 2 and result["test_accuracy"] > (
        0.6 if have_full_mnist() else 0.25
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "model.keras", "report.html", "result.json"]  # fmt: skip
    assert list(outs["worker"].rglob("*")) == []  # the worker's model went with its temp folder
    assert all({"validation_accuracy", "validation_loss"} <= set(r) for r in result["history"])
    assert batch_norms_synchronized(tmp_path / "out" / "model.keras") == [True] * 3


def run_replicas(args: list[str], outs: dict, tmp_path, timeout: float = 600):
    """Run a chief and a worker on two free ports; ([their exit codes], [their outputs]). When
    one fails, the other is stopped: a replica whose peer is gone waits for it for ever. The
    output goes to files, so a chatty replica cannot fill a pipe nobody reads."""
    import time

    ports = [servers.free_port(), servers.free_port()]
    cluster = {"chief": [f"localhost:{ports[0]}"], "worker": [f"localhost:{ports[1]}"]}
    logs = [tmp_path / f"{kind}.log" for kind in outs]
    processes = []
    for kind, log in zip(outs, logs, strict=True):
        with open(log, "w") as sink:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "components.train.distributed", *args,
                 f"--out={outs[kind]}"],
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                     "TF_CONFIG": json.dumps({"cluster": cluster,
                                              "task": {"type": kind, "index": 0}})},
                stdout=sink, stderr=subprocess.STDOUT, cwd=REPO,
            ))  # fmt: skip
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
        failed = any(p.returncode not in (None, 0) for p in processes)
        if failed or time.monotonic() > deadline:
            for p in processes:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.2)
    return [p.wait() for p in processes], [log.read_text() for log in logs]


def batch_norms_synchronized(keras_file) -> list[bool]:
    """The `synchronized` setting of each BatchNormalization layer saved in a .keras file."""
    import zipfile

    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))
    layers = config["config"]["layers"]
    return [layer["config"]["synchronized"] for layer in layers
            if layer["class_name"] == "BatchNormalization"]  # fmt: skip
