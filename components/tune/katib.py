"""Hyper-parameter search with Katib: an Experiment over learning_rate, batch_size and epochs,
each trial a Job running components/tune/trial.py from the project's image, the objective the
test accuracy those trials print. Written as a plain dict (the kubeflow-katib 0.19 SDK cannot
be installed beside kfp 2.17: protobuf < 5 against >= 6.31) and created through
components/common/kube.py; the tests validate it with the `kubeflow-katib-api` models.

Katib needs, in the run's namespace, the label katib.kubeflow.org/metrics-collector-injection:
enabled (for the StdOut collector's sidecar), and RBAC to create Experiments
(manifests/base/katib). Trials run with sidecar.istio.io/inject: "false", as Katib requires
under Istio.
"""

from __future__ import annotations

from components.common.errors import InputError
from components.common.kube import Kind, Kube, name_for, restrict, succeeded
from components.common.parameters import ALGORITHMS
from components.train.config import TrainConfig

EXPERIMENT = Kind("kubeflow.org", "v1beta1", "experiments", "Experiment")
METRIC = "test_accuracy"
CONTAINER = "training-container"
# /tmp holds a trial's copy of the data set (about 60 MB); TF and Keras write there too.
TMP_SIZE = "2Gi"
# The searched space: names as the pipeline's parameters, and how each reaches a trial.
SPACE = (
    ("learning_rate", "double", {"min": "0.001", "max": "0.05"}, "learningRate"),
    ("batch_size", "discrete", {"list": ["64", "128", "256"]}, "batchSize"),
)


def experiment(
    name: str,
    namespace: str,
    image: str,
    dataset_uri: str,
    s3_endpoint: str,
    max_epochs: int,
    algorithm: str = "tpe",
    goal: float = 0.995,
    max_trials: int = 12,
    parallel_trials: int = 2,
    pod: dict | None = None,
    fixed: TrainConfig | None = None,
) -> dict:
    """The Experiment. Each trial trains with `fixed` (the pipeline's seed and train_limit)
    and the learning rate, batch size and epochs the search picks. `pod` adds scheduling
    (nodeSelector, tolerations, resources) and env to the trial pods, as the train step gets
    them (pipeline/cluster.py). Trials run restricted (components/common/kube.py restrict)."""
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    return {
        "apiVersion": EXPERIMENT.api_version,
        "kind": EXPERIMENT.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "goal": goal, "objectiveMetricName": METRIC},
            "algorithm": {"algorithmName": algorithm},
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "maxTrialCount": max_trials,
            "parallelTrialCount": parallel_trials,
            "maxFailedTrialCount": max(1, max_trials // 4),
            "parameters": _search_space(max_epochs),
            "trialTemplate": _trial_template(
                image, dataset_uri, s3_endpoint, pod or {}, fixed or TrainConfig()
            ),
        },
    }


def _search_space(max_epochs: int) -> list[dict]:
    """SPACE, and the epochs from 1 to `max_epochs`, as Katib's `parameters`."""
    space = [{"name": n, "parameterType": kind, "feasibleSpace": f} for n, kind, f, _ in SPACE]
    epochs = {"min": "1", "max": str(max_epochs)}
    return [*space, {"name": "epochs", "parameterType": "int", "feasibleSpace": epochs}]


def _trial_template(
    image: str, dataset_uri: str, s3_endpoint: str, pod: dict, fixed: TrainConfig
) -> dict:
    """A trial: a Job running components/tune/trial.py with the searched values substituted
    (`${trialParameters.<ref>}`) and `fixed`'s for the rest, restricted, scheduled as `pod`."""
    trial_parameters = [
        {"name": ref, "reference": n, "description": n} for n, _, _, ref in SPACE
    ] + [{"name": "epochs", "reference": "epochs", "description": "epochs"}]
    container = {
        "name": CONTAINER,
        "image": image,
        "command": [
            "python", "-m", "components.tune.trial",
            f"--dataset-uri={dataset_uri}",
            f"--s3-endpoint={s3_endpoint}",
            "--learning-rate=${trialParameters.learningRate}",
            "--batch-size=${trialParameters.batchSize}",
            "--epochs=${trialParameters.epochs}",
            *_fixed_flags(fixed),
        ],
        **({"env": pod["env"]} if pod.get("env") else {}),
        **({"resources": pod["resources"]} if pod.get("resources") else {}),
    }  # fmt: skip
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [container],
        **{k: pod[k] for k in ("nodeSelector", "tolerations") if pod.get(k)},
    }
    restrict(pod_spec, [container], tmp_size=TMP_SIZE)
    job = {
        "backoffLimit": 0,
        "template": {
            "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
            "spec": pod_spec,
        },
    }
    return {
        "primaryContainerName": CONTAINER,
        "trialParameters": trial_parameters,
        "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": job},
    }


def _fixed_flags(cfg: TrainConfig) -> list[str]:
    """The trial's flags for what the search does not choose (components/train/config.py)."""
    searched = {f"--{name.replace('_', '-')}=" for name, *_ in SPACE} | {"--epochs="}
    return [flag for flag in cfg.as_flags() if not flag.startswith(tuple(searched))]


def best_parameters(obj: dict) -> dict:
    """The best trial's values, typed: {"learning_rate": 0.02, "batch_size": 128, "epochs": 4}."""
    from components.common.kube import KubeError

    optimal = (obj.get("status") or {}).get("currentOptimalTrial") or {}
    assignments = {a["name"]: a["value"] for a in optimal.get("parameterAssignments") or []}
    try:
        return {
            "learning_rate": float(assignments["learning_rate"]),
            "batch_size": int(float(assignments["batch_size"])),
            "epochs": int(float(assignments["epochs"])),
        }
    except (KeyError, ValueError):
        raise KubeError(
            f"Experiment {obj['metadata']['name']} ended without a best trial: {optimal}"
        ) from None


def experiment_name(run_id: str) -> str:
    """The run's Experiment."""
    return name_for("mnist-tune", run_id)


def tune(body: dict, timeout: float, kube: Kube | None = None, interval: float = 15.0) -> dict:
    """Create (or patch) the Experiment, wait until it ends (at most `timeout` s), and return
    the best trial's parameters; a failed or unfinished Experiment is a KubeError."""
    kube = kube or Kube()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    kube.apply(EXPERIMENT, namespace, body)
    done = kube.wait(EXPERIMENT, namespace, name, succeeded, timeout, interval=interval)
    best = best_parameters(done)
    optimal = done["status"]["currentOptimalTrial"]
    metrics = (optimal.get("observation") or {}).get("metrics") or []
    shown = ", ".join(f"{m.get('name')}={m.get('max', m.get('latest'))}" for m in metrics)
    from components.common.log import get_logger

    get_logger("tune").info("best trial %s: %s (%s)", optimal.get("bestTrialName"), best, shown)
    return best
