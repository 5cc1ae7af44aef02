"""Hyper-parameter search with Katib: an Experiment over learning_rate, batch_size and epochs
(components/tune/search.py), each trial a Job running components/tune/trial.py from the
project's image, the objective the validation accuracy of a trial's last epoch. Written as a
plain dict (the kubeflow-katib 0.19 SDK cannot be installed beside kfp 2.17: protobuf < 5
against >= 6.31) and created through components/common/kube.py; the tests validate it with the
`kubeflow-katib-api` models and resolve it as Katib's webhook and trial controller do
(tests/katib_controller.py).

Katib needs, in the run's namespace, the label katib.kubeflow.org/metrics-collector-injection:
enabled (for the StdOut collector's sidecar), and RBAC to create Experiments and list their
Trials (manifests/base/katib). Trials run with sidecar.istio.io/inject: "false", as Katib
requires under Istio.
"""

from __future__ import annotations

import shlex

from components.common.kube import Kind, Kube, name_for, restrict, succeeded
from components.common.log import get_logger
from components.common.parameters import DEFAULTS, TUNE_DEFAULTS
from components.train.config import TrainConfig
from components.tune.search import REFERENCES, Search
from components.tune.trial import LOSS, METRIC, require_validation_split

EXPERIMENT = Kind("kubeflow.org", "v1beta1", "experiments", "Experiment")
TRIAL = Kind("kubeflow.org", "v1beta1", "trials", "Trial")
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"  # on each Trial, naming its Experiment
# Katib's webhook refuses a longer Experiment name.
MAX_NAME = 40
# Every metric counts as its last reported value: the final epoch's, not the best epoch's
# (Katib's default for a maximized objective is `max`).
STRATEGY = "latest"
CONTAINER = "training-container"
# /tmp holds a trial's copy of the data set (about 60 MB); TF and Keras write there too.
TMP_SIZE = "2Gi"
log = get_logger("tune")


def experiment(
    name: str,
    namespace: str,
    image: str,
    dataset_uri: str,
    s3_endpoint: str,
    max_epochs: int,
    algorithm: str = DEFAULTS["algorithm"],
    goal: float = DEFAULTS["goal"],
    max_trials: int = DEFAULTS["max_trials"],
    parallel_trials: int = DEFAULTS["parallel_trials"],
    pod: dict | None = None,
    fixed: TrainConfig | None = None,
) -> dict:
    """The Experiment. Each trial trains with `fixed` (the pipeline's training parameters:
    seed, train_limit, validation_split...; by default the tuning pipeline's) and the learning
    rate, batch size and epochs the search picks. `pod` adds scheduling (nodeSelector,
    tolerations, resources) and env to the trial pods, as the train step gets them
    (pipeline/cluster.py). Trials run restricted (components/common/kube.py restrict).
    A search Katib would refuse, or a config with no validation split, is an InputError.
    The search's values not given are the pipeline's defaults."""
    fixed = fixed or TrainConfig(**TUNE_DEFAULTS)
    require_validation_split(fixed)
    search = Search(algorithm, max_epochs, max_trials, parallel_trials, fixed.seed).check()
    return {
        "apiVersion": EXPERIMENT.api_version,
        "kind": EXPERIMENT.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {
                "type": "maximize",
                "goal": goal,
                "objectiveMetricName": METRIC,
                "additionalMetricNames": [LOSS],
                "metricStrategies": [{"name": m, "value": STRATEGY} for m in (METRIC, LOSS)],
            },
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": search.settings()},
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "maxTrialCount": max_trials,
            "parallelTrialCount": parallel_trials,
            "maxFailedTrialCount": max(1, max_trials // 4),
            "parameters": search.parameters(),
            "trialTemplate": _trial_template(image, dataset_uri, s3_endpoint, pod or {}, fixed),
        },
    }


def trial_command(dataset_uri: str, s3_endpoint: str, fixed: TrainConfig) -> list[str]:
    """`sh -c '<the trial, every argument quoted>'`. Katib's StdOut collector joins a trial's
    command with spaces into a `sh -c` of its own (appending its redirection), unquoted, so a
    store path with a space or a `;` would be split or run; an `sh -c` command it keeps as is
    and only appends to. The searched values arrive as `${trialParameters.<name>}`."""
    searched = [
        f"--{name.replace('_', '-')}=${{trialParameters.{ref}}}" for name, ref in REFERENCES.items()
    ]
    argv = [
        "python", "-m", "components.tune.trial",
        f"--dataset-uri={dataset_uri}",
        f"--s3-endpoint={s3_endpoint}",
        *searched,
        *_fixed_flags(fixed),
    ]  # fmt: skip
    return ["sh", "-c", shlex.join(argv)]


def _trial_template(
    image: str, dataset_uri: str, s3_endpoint: str, pod: dict, fixed: TrainConfig
) -> dict:
    """A trial: a Job running components/tune/trial.py with the searched values substituted
    and `fixed`'s for the rest, restricted, scheduled as `pod`."""
    trial_parameters = [
        {"name": ref, "reference": name, "description": name}
        for name, ref in REFERENCES.items()  # the command's placeholder, the searched name
    ]
    container = {
        "name": CONTAINER,
        "image": image,
        "command": trial_command(dataset_uri, s3_endpoint, fixed),
        **({"env": pod["env"]} if pod.get("env") else {}),
        **({"resources": pod["resources"]} if pod.get("resources") else {}),
    }
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
    """The trial's flags for what the search does not choose: every other training parameter
    (components/train/config.py as_flags), so a new one reaches the trials with no change here."""
    searched = tuple(f"--{name.replace('_', '-')}=" for name in REFERENCES)
    return [flag for flag in cfg.as_flags() if not flag.startswith(searched)]


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
    """The run's Experiment: a DNS label Katib's webhook takes (at most 40 characters)."""
    return name_for("mnist-tune", run_id)[:MAX_NAME].rstrip("-")


def tune(
    body: dict,
    timeout: float,
    kube: Kube | None = None,
    interval: float = 15.0,
    report_path: str | None = None,
) -> dict:
    """Create (or patch) the Experiment, wait until it ends (at most `timeout` s), and return
    the best trial's parameters; a failed or unfinished Experiment is a KubeError. With
    `report_path`, write the trials report there (components/tune/report.py)."""
    kube = kube or Kube()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    kube.apply(EXPERIMENT, namespace, body)
    done = kube.wait(EXPERIMENT, namespace, name, succeeded, timeout, interval=interval)
    best = best_parameters(done)
    optimal = done["status"]["currentOptimalTrial"]
    metrics = (optimal.get("observation") or {}).get("metrics") or []
    shown = ", ".join(f"{m.get('name')}={m.get(STRATEGY)}" for m in metrics)
    log.info("best trial %s: %s (%s)", optimal.get("bestTrialName"), best, shown)
    if report_path:
        write_report(kube, done, report_path)
    return best


def write_report(kube: Kube, done: dict, path: str) -> None:
    """The trials report of the ended Experiment `done`. Trials that cannot be listed (no
    `list` on trials in the Role) leave a report of the best trial alone, and a warning: the
    search itself succeeded."""
    from pathlib import Path

    from components.common.failure import one_line
    from components.common.kube import KubeError
    from components.tune.report import trials_report

    namespace, name = done["metadata"]["namespace"], done["metadata"]["name"]
    try:
        trials, problem = kube.list_labelled(TRIAL, namespace, {EXPERIMENT_LABEL: name}), ""
    except KubeError as e:
        trials, problem = [], one_line(e)
        log.warning("trials report without the trials: %s", problem)
    Path(path).write_text(trials_report(done, trials, problem), encoding="utf-8")
