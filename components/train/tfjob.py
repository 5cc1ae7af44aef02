"""Multi-worker training through the Kubeflow Training Operator: a TFJob of a chief and N-1
workers running components/train/distributed.py from the project's GPU image, with the train
step's scheduling. The Training Operator v1 is in maintenance but is the only one with a
TensorFlow runtime (Kubeflow Trainer v2 has none: kubeflow/trainer#2699). The operator injects
TF_CONFIG; the chief writes the model under `checkpoints/<run id>/tfjob/` in the store, and the
train step hands it on to export as usual.
"""

from __future__ import annotations

from components.common.errors import InputError
from components.common.kube import TFJOB, Kube, KubeError, name_for, restrict, succeeded
from components.common.log import get_logger
from components.common.records import RecordError, parse_record
from components.store import StoreError, join, open_store
from components.train.config import TrainConfig

log = get_logger("train")
CONTAINER = "tensorflow"  # the container name the Training Operator expects
# /tmp holds a replica's copy of the data set (about 60 MB) and its model; TF and Keras write there.
TMP_SIZE = "2Gi"


def job_name(run_id: str) -> str:
    return name_for("mnist-train", run_id)


def tfjob(name: str, namespace: str, workers: int, args: list[str], pod: dict) -> dict:
    """The TFJob: one Chief and `workers - 1` Workers, each with `pod`'s image, resources,
    env and scheduling (pipeline/cluster.py trial_pod), without an Istio sidecar, locked down
    as the restricted Pod Security Standard asks (components/common/kube.py restrict)."""
    if workers < 2:
        raise InputError(f"a TFJob is for 2 workers or more, got {workers}")
    container = {
        "name": CONTAINER,
        "image": pod["image"],
        "command": ["python", "-m", "components.train.distributed", *args],
        **{k: pod[k] for k in ("env", "resources") if pod.get(k)},
    }
    template = {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": restrict(
            {
                "containers": [container],
                **{k: pod[k] for k in ("nodeSelector", "tolerations") if pod.get(k)},
            },
            [container],
            tmp_size=TMP_SIZE,
        ),
    }
    replica = {"restartPolicy": "OnFailure", "template": template}
    return {
        "apiVersion": TFJOB.api_version,
        "kind": TFJOB.kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "mnist-kfp"},
        },  # fmt: skip
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 3},
            "tfReplicaSpecs": {
                "Chief": {"replicas": 1, **replica},
                "Worker": {"replicas": workers - 1, **replica},
            },
        },
    }


def train_with_tfjob(
    run_id: str,
    namespace: str,
    workers: int,
    store_uri: str,
    s3_endpoint: str,
    dataset_uri: str,
    cfg: TrainConfig,
    pod: dict,
    timeout: float,
    kube: Kube | None = None,
    interval: float = 15.0,
) -> tuple[str, dict]:
    """Run the TFJob and wait for it (at most `timeout` s); (the chief's output URI, its
    result.json). Each replica trains with `cfg`."""
    from components.train.checkpoints import run_prefix
    from components.train.distributed import RESULT

    # beside the run's checkpoints: export removes both, and `clean` the leftovers
    out = join(store_uri, run_prefix(run_id), "tfjob")
    args = [f"--dataset-uri={dataset_uri}", f"--out={out}", f"--s3-endpoint={s3_endpoint}"]
    args += cfg.as_flags()
    name = job_name(run_id)
    kube = kube or Kube()
    kube.apply(TFJOB, namespace, tfjob(name, namespace, workers, args, pod))
    kube.wait(TFJOB, namespace, name, succeeded, timeout, interval=interval)
    store = open_store(out, s3_endpoint)
    try:
        result = parse_record(
            store.get_bytes(RESULT),
            store.uri(RESULT),
            required={"test_accuracy": (int, float), "replicas": int},
        )
    except StoreError as e:
        raise KubeError(
            f"TFJob {namespace}/{name} succeeded but its chief left no {RESULT}: {e}"
        ) from None
    except RecordError as e:
        raise KubeError(f"TFJob {namespace}/{name} succeeded but {e}") from None
    log.info("TFJob %s/%s: test accuracy %.4f with %d replicas", namespace, name,
             result["test_accuracy"], result["replicas"])  # fmt: skip
    return out, result
