"""The tuning pipeline's Katib step: the Experiment it writes, validated with the
`kubeflow-katib-api` models (strictly: a key they do not know fails) and resolved as Katib
resolves it (tests/katib_controller.py: its webhook, its trial template substitution, its
StdOut collector's `sh -c`), down to the command line a trial parses; the objective Katib
counts; the search run against a Kubernetes API stand-in (Succeeded with a best trial and a
trials report, Failed, never ending); the trial's metric lines; the compiled tuning pipeline
and the Role."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.common.errors import InputError
from components.common.kube import VERBS, Kube, KubeError
from components.common.parameters import ALGORITHMS
from components.train.config import TrainConfig
from components.tune import katib, trial
from tests import katib_controller as controller
from tests.conftest import REPO
from tests.kube_server import client_for, kube_api

# Values each algorithm can run with (hyperband starts 3 trials at once over 8 epochs).
RUNNABLE = {"parallel_trials": 3}
# A suggestion Katib's services could make for each algorithm, as its strings.
SUGGESTION = {"learning_rate": "0.0213", "batch_size": "64", "epochs": "3"}
GRID_SUGGESTION = {"learning_rate": "0.005", "batch_size": "256", "epochs": "7"}


def body(**overrides) -> dict:
    pod = {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "12Gi"}},
    }
    args = dict(
        name="mnist-tune-run-1", namespace="team-a", image="registry/mnist-pipeline-gpu:0.1.0",
        dataset_uri="s3://mlpipeline/mnist/datasets/mnist", s3_endpoint="minio:9000",
        max_epochs=6, pod=pod,
    )  # fmt: skip
    return katib.experiment(**{**args, **overrides})


def keys(value, path="") -> set[str]:
    if isinstance(value, dict):
        return {f"{path}.{k}" for k in value} | {
            x for k, v in value.items() for x in keys(v, f"{path}.{k}")
        }
    if isinstance(value, list):
        return {x for i, v in enumerate(value) for x in keys(v, f"{path}[{i}]")}
    return set()


def katib_errors(obj: dict) -> list[str]:
    """Validate with the kubeflow-katib-api models; keys they drop on a round trip are unknown
    to Katib (a misspelt field). The trial's Job spec is free-form there, and kept as is."""
    models = pytest.importorskip("kubeflow_katib_api.models")
    parsed = models.V1beta1Experiment.from_dict(obj)
    back = parsed.to_dict()
    return sorted(keys(obj) - keys(back))


def container_of(job_or_template: dict) -> dict:
    spec = job_or_template.get("trialSpec", job_or_template)
    (container,) = spec["spec"]["template"]["spec"]["containers"]
    return container


def trial_argv(experiment: dict, assignments: dict[str, str], tmp_path: Path) -> list[str]:
    """The arguments the trial's `python` gets on a cluster: the controller substitutes the
    suggestion into the template, the collector wraps the command in its `sh -c`, and a real
    sh runs it (with a `python` that records its argv instead of training)."""
    assert controller.webhook_errors(experiment) == []
    job = controller.run_spec(experiment, "mnist-tune-run-1-x7k2m9qd", "team-a", assignments)
    metrics = tmp_path / "katib" / "metrics.log"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    command = controller.collector_command(container_of(job), str(metrics))
    bin_dir, argv_file = tmp_path / "bin", tmp_path / "argv"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python"
    stub.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$ARGV_FILE"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ARGV_FILE": str(argv_file)}
    subprocess.run(command, env=env, cwd=tmp_path, check=True, timeout=30)
    argv = argv_file.read_bytes().decode().split("\0")[:-1]
    assert argv[:2] == ["-m", "components.tune.trial"]
    return argv[2:]


def parsed_config(argv: list[str]) -> TrainConfig:
    """The trial's config from its argv, through components/tune/trial.py's own parser."""
    return TrainConfig.from_values(vars(trial.parser().parse_args(argv)))


def test_the_experiment_is_what_katib_reads():
    experiment = body()
    assert katib_errors(experiment) == []
    assert controller.webhook_errors(experiment) == []
    spec = experiment["spec"]
    assert spec["objective"]["objectiveMetricName"] == "validation_accuracy"
    assert spec["objective"]["type"] == "maximize" and spec["objective"]["goal"] == 0.995
    assert spec["algorithm"]["algorithmName"] == "tpe"
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert [p["name"] for p in spec["parameters"]] == ["learning_rate", "batch_size", "epochs"]
    template = spec["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    container = container_of(spec["trialTemplate"])
    assert container["name"] == spec["trialTemplate"]["primaryContainerName"]
    assert template["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    misspelt = body()
    misspelt["spec"]["maxTrialCounts"] = 3
    assert katib_errors(misspelt) == [".spec.maxTrialCounts"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_katib_admits_the_experiment_of_every_algorithm(algorithm):
    experiment = body(algorithm=algorithm, **RUNNABLE)
    assert katib_errors(experiment) == []
    assert controller.webhook_errors(experiment) == []
    assert controller.suggestion_error(experiment) is None


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_suggestion_reaches_the_trial_as_the_values_katib_chose(algorithm, tmp_path):
    """Resolved as Katib resolves it: each `${trialParameters.X}` of the command names a trial
    parameter, each trial parameter a searched one; the suggestion's values, substituted and
    run through the collector's shell, parse with the trial's parser to those very values,
    and the rest is the pipeline's (one builder: components/train/config.py)."""
    fixed = TrainConfig(seed=7, train_limit=1234, validation_split=0.2)
    experiment = body(algorithm=algorithm, fixed=fixed, **RUNNABLE)
    chosen = GRID_SUGGESTION if algorithm == "grid" else SUGGESTION
    cfg = parsed_config(trial_argv(experiment, chosen, tmp_path))
    assert cfg == TrainConfig(
        epochs=int(chosen["epochs"]), batch_size=int(chosen["batch_size"]),
        learning_rate=float(chosen["learning_rate"]), seed=7, train_limit=1234,
        validation_split=0.2,
    )  # fmt: skip


def test_every_placeholder_names_a_trial_parameter_and_each_a_searched_one():
    """Katib's own rules, said plainly (its webhook applies them as tests/katib_controller.py
    does): a renamed `${trialParameters.batchSize}`, or a trial parameter that references
    anything but a searched name, is refused before any trial runs."""
    template = body()["spec"]["trialTemplate"]
    searched = {p["name"] for p in body()["spec"]["parameters"]}
    text = controller.template_string(body())
    used = {m[len("${trialParameters.") : -1] for m in controller.PLACEHOLDERS.findall(text)}
    assert used == {p["name"] for p in template["trialParameters"]}
    assert {p["reference"] for p in template["trialParameters"]} == searched


def wrong(experiment: dict, mistake: str) -> dict:
    """`experiment` with one of the mistakes a trial template can hold."""
    template = experiment["spec"]["trialTemplate"]
    command, params = container_of(template)["command"], template["trialParameters"]
    if mistake == "placeholder renamed":
        command[2] = command[2].replace("${trialParameters.batchSize}", "${trialParameters.batch}")
    elif mistake == "reference names the placeholder":
        params[1]["reference"] = params[1]["name"]
    elif mistake == "references swapped":
        params[0]["reference"], params[1]["reference"] = "batch_size", "learning_rate"
    return experiment


def test_katibs_resolution_catches_each_way_a_template_can_be_wrong(tmp_path):
    """The checks above, against hand-made wrong templates: Katib's webhook refuses the first
    two; the third it admits, and the trial then gets the batch size as its learning rate,
    which its parser refuses."""
    for mistake in ("placeholder renamed", "reference names the placeholder"):
        assert controller.webhook_errors(wrong(body(), mistake)), mistake
    with pytest.raises(controller.Refused):
        controller.run_spec(wrong(body(), "reference names the placeholder"), "t", "ns", SUGGESTION)
    swapped = wrong(body(), "references swapped")
    assert controller.webhook_errors(swapped) == []
    with pytest.raises(SystemExit):  # argparse: --batch-size=0.0213 is not an int
        parsed_config(trial_argv(swapped, SUGGESTION, tmp_path))


def test_store_paths_reach_the_trial_whole_through_katibs_shell(tmp_path):
    """The StdOut collector runs the command through `sh -c`, unquoted: a space, a `;` or a
    `$(...)` in a store path (the table accepts them) arrives as written and runs nothing."""
    hostile = "s3://mlpipeline/it's a; touch pwned $(touch pwned2) `x`/datasets/mnist"
    experiment = body(dataset_uri=hostile, s3_endpoint="http://minio:9000")
    argv = trial_argv(experiment, SUGGESTION, tmp_path)
    args = trial.parser().parse_args(argv)
    assert args.dataset_uri == hostile and args.s3_endpoint == "http://minio:9000"
    assert not list(tmp_path.glob("pwned*"))


def test_a_new_training_parameter_reaches_the_trials_with_no_change_to_katib(monkeypatch, tmp_path):
    """A FIELDS entry of components/train/config.py (here a made-up `warmup_epochs`) is in the
    trial's command and parsed back by the trial: katib.py lists no training parameter."""
    from components.common import parameters
    from components.train import config

    param = parameters.Param("warmup_epochs", int, 1, "Epochs of warm-up.")
    monkeypatch.setattr(config, "FIELDS", (*config.FIELDS, param.name))
    monkeypatch.setitem(config.BY_NAME, param.name, param)
    monkeypatch.setitem(parameters._ALL, param.name, param)

    @dataclass(frozen=True)
    class Wider(TrainConfig):
        warmup_epochs: int = 1

    experiment = body(fixed=Wider(warmup_epochs=3, validation_split=0.1))
    args = trial.parser().parse_args(trial_argv(experiment, SUGGESTION, tmp_path))
    assert args.warmup_epochs == 3


def test_the_objective_is_the_last_epochs_value():
    """Katib's default strategy for a maximized metric is its max over the epochs: the
    Experiment sets `latest`, kept by Katib's defaulting, so a trial that peaked early and
    ended lower counts by its last epoch, for the best trial and for the goal."""
    stored = controller.defaulted(body())
    strategies = {s["name"]: s["value"] for s in stored["spec"]["objective"]["metricStrategies"]}
    assert strategies == {"validation_accuracy": "latest", "validation_loss": "latest"}
    peaked = {"name": "validation_accuracy", "min": "0.95", "max": "0.991", "latest": "0.984"}
    assert controller.objective_value(peaked, strategies["validation_accuracy"]) == "0.984"


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm 'annealing' is not one of random, grid, tpe"):
        body(algorithm="annealing")


def test_a_search_without_a_validation_split_is_refused_before_anything_is_made():
    with pytest.raises(InputError) as e:
        body(fixed=TrainConfig(validation_split=0.0))
    assert "validation_split=0.0: a Katib trial is scored on its validation split" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_trial_without_a_validation_split_refuses_in_one_line(tmp_path):
    """Before anything is fetched (the store here does not exist)."""
    result = subprocess.run(
        [sys.executable, "-m", "components.tune.trial", f"--dataset-uri={tmp_path}/none",
         "--learning-rate=0.01", "--batch-size=64", "--epochs=2", "--validation-split=0"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = [x for x in (result.stdout + result.stderr).splitlines() if x.strip()]
    assert line.endswith(
        "ERROR mnist.trial: trial: validation_split=0.0: a Katib trial is scored on its "
        "validation split and this one holds out nothing; set validation_split above 0 "
        "(mnist-tune's default is 0.1), the test set is kept for the accuracy gate"
    )


SUCCEEDED = {
    "conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}],
    "currentOptimalTrial": {
        "bestTrialName": "mnist-tune-run-1-abc",
        "parameterAssignments": [
            {"name": "learning_rate", "value": "0.0213"},
            {"name": "batch_size", "value": "128"},
            {"name": "epochs", "value": "5"},
        ],
        "observation": {"metrics": [
            {"name": "validation_accuracy", "min": "0.95", "max": "0.9931", "latest": "0.9925"},
            {"name": "validation_loss", "min": "0.031", "max": "0.2", "latest": "0.033"},
        ]},
    },
}  # fmt: skip


def test_the_search_ends_with_the_best_trials_values_and_logs_their_latest(caplog):
    with kube_api() as (api, url), caplog.at_level(logging.INFO, logger="mnist.tune"):
        api.script_status("experiments", "mnist-tune-run-1", {"conditions": []}, SUCCEEDED)
        best = katib.tune(body(), timeout=30, kube=Kube(client_for(url)), interval=0.05)
    assert best == {"learning_rate": 0.0213, "batch_size": 128, "epochs": 5}
    (created,) = api.objects.values()
    assert created["spec"]["maxTrialCount"] == 12
    (line,) = [r.getMessage() for r in caplog.records if "best trial" in r.getMessage()]
    assert "validation_accuracy=0.9925" in line and "0.9931" not in line


def katib_trial(name: str, values: tuple, latest: str | None, state: str = "Succeeded") -> dict:
    """A Trial as Katib's controller keeps it (checked against the kubeflow-katib-api model)."""
    lr, batch, epochs = values
    observation = (
        {"metrics": [{"name": "validation_accuracy", "min": "0.9", "max": "0.999",
                      "latest": latest},
                     {"name": "validation_loss", "min": "0.02", "max": "0.3", "latest": "0.04"}]}
        if latest else {"metrics": [{"name": "validation_accuracy", "min": "unavailable",
                                     "max": "unavailable", "latest": "unavailable"}]}
    )  # fmt: skip
    obj = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {"name": name, "namespace": "team-a",
                     "labels": {"katib.kubeflow.org/experiment": "mnist-tune-run-1"}},
        "spec": {
            "objective": controller.defaulted(body())["spec"]["objective"],  # Katib copies it
            "parameterAssignments": [{"name": "learning_rate", "value": lr},
                                     {"name": "batch_size", "value": batch},
                                     {"name": "epochs", "value": epochs}],
        },
        "status": {"conditions": [{"type": "Created", "status": "True"},
                                  {"type": state, "status": "True"}],
                   "observation": observation},
    }  # fmt: skip
    models = pytest.importorskip("kubeflow_katib_api.models")
    assert sorted(keys(obj) - keys(models.V1beta1Trial.from_dict(obj).to_dict())) == []
    return obj


def test_the_search_writes_a_trials_report_with_the_best_marked(tmp_path):
    from html.parser import HTMLParser

    trials = [
        katib_trial("mnist-tune-run-1-aaa", ("0.001", "256", "2"), "0.9710"),
        katib_trial("mnist-tune-run-1-abc", ("0.0213", "128", "5"), "0.9925"),
        katib_trial("mnist-tune-run-1-zzz", ("0.05", "64", "8"), None, state="Failed"),
        katib_trial("<script>alert(1)</script>", ("0.01", "64", "1"), "0.5"),
    ]
    other = katib_trial("other-experiments-trial", ("0.01", "64", "1"), "0.999")
    other["metadata"]["labels"]["katib.kubeflow.org/experiment"] = "mnist-tune-run-2"
    report = tmp_path / "report.html"
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", SUCCEEDED)
        for obj in [*trials, other]:
            api.put("trials", obj)
        katib.tune(body(), 30, Kube(client_for(url)), 0.05, report_path=str(report))
    page = report.read_text()

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.scripts = [], 0

        def handle_starttag(self, tag, attrs):
            self.scripts += tag == "script"
            if tag == "tr":
                self.rows.append([dict(attrs).get("class"), ""])

        def handle_data(self, data):
            if self.rows:
                self.rows[-1][1] += data + "|"

    parsed = Rows()
    parsed.feed(page)
    header, *rows = parsed.rows
    assert "validation_accuracy (latest)" in header[1]
    assert len(rows) == 4 and parsed.scripts == 0  # the other experiment's trial is not listed
    (best,) = [text for cls, text in rows if cls == "best"]
    assert best.startswith("★ best|mnist-tune-run-1-abc|Succeeded|0.0213|128|5|0.9925|")
    assert rows[0][1] == best and "Failed" in rows[-1][1] and "—" in rows[-1][1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Katib search: best validation_accuracy 0.9925 (mnist-tune-run-1-abc)" in page


def test_a_report_whose_trials_cannot_be_listed_still_shows_the_best_and_says_why(tmp_path):
    report = tmp_path / "report.html"
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", SUCCEEDED)
        api.forbid("list")
        best = katib.tune(body(), 30, Kube(client_for(url)), 0.05, report_path=str(report))
    assert best["epochs"] == 5  # the search succeeded: its result stands
    page = report.read_text()
    assert "The trials could not be listed: cannot list Trial team-a/" in page
    assert "needs `list` on trials.kubeflow.org" in page
    assert "mnist-tune-run-1-abc" in page and "0.9925" in page


def test_the_report_is_written_on_the_slim_image_which_has_no_pillow_nor_tensorflow():
    code = (
        "import sys; sys.modules['PIL'] = sys.modules['tensorflow'] = None; "
        "from components.tune import katib, report; "
        "print(report.trials_report({}, [])[:15])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!doctype html>")


def test_a_failed_search_says_why_in_one_line():
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "ExperimentFailed",
                              "message": "max failed trial count reached"}]}  # fmt: skip
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", failed)
        with pytest.raises(KubeError) as e:
            katib.tune(body(), timeout=30, kube=Kube(client_for(url)), interval=0.05)
    assert str(e.value) == (
        "Experiment team-a/mnist-tune-run-1 failed: Failed=True "
        "(ExperimentFailed: max failed trial count reached)"
    )


def test_a_search_that_never_ends_is_bounded():
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", {"conditions": []})
        with pytest.raises(KubeError, match="not done after 1.0 s"):
            katib.tune(body(), timeout=1, kube=Kube(client_for(url)), interval=0.1)


def test_experiment_names_are_names_katibs_webhook_takes():
    name = katib.experiment_name("8F2A_c3/..Run")
    assert name == "mnist-tune-8f2a-c3---run" and len(katib.experiment_name("x" * 200)) <= 40
    run_id = "0b6f8a4e-5c1d-4d8e-9b3a-2f7c6e1d9a40"  # a KFP run ID
    named = body(name=katib.experiment_name(run_id))
    assert controller.webhook_errors(named) == []
    assert katib.experiment_name("a" * 28 + "-" + "b" * 10) == "mnist-tune-" + "a" * 28


def test_a_trial_prints_the_lines_katibs_collector_reads(small_mnist_dir, tmp_path):
    pytest.importorskip("tensorflow")
    from components.store import LocalStore
    from components.unpack_upload.unpack import unpack_and_upload

    unpack_and_upload(small_mnist_dir, LocalStore(tmp_path), canonical=False)
    result = subprocess.run(
        [sys.executable, "-m", "components.tune.trial", f"--dataset-uri={tmp_path}/datasets/mnist",
         "--learning-rate=0.01", "--batch-size=64", "--epochs=2", "--train-limit=600",
         "--validation-split=0.2"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    accuracy = [line for line in lines if line.startswith("validation_accuracy=")]
    assert len(accuracy) == 2  # one per epoch: the last one is the final epoch's
    assert all(0 <= float(m.split("=")[1]) <= 1 for m in accuracy)
    assert len([line for line in lines if line.startswith("validation_loss=")]) == 2
    assert not [line for line in lines if line.startswith("test_")]  # the test set is not scored


def test_the_tuning_pipeline_compiles_with_the_trials_scheduling_and_a_validation_split(tmp_path):
    import yaml

    from pipeline.dag import compile_pipeline
    from tests.conftest import FAKE_SECRET_KEY

    compile_pipeline(str(tmp_path / "tune.yaml"), tuning=True)
    text = (tmp_path / "tune.yaml").read_text()
    spec = next(yaml.safe_load_all(text))
    tasks = spec["root"]["dag"]["tasks"]
    assert {"download", "unpack-and-upload", "tune", "train"} <= set(tasks)
    assert tasks["train"]["inputs"]["parameters"]["epochs"]["taskOutputParameter"] == {
        "outputParameterKey": "epochs", "producerTask": "tune"}  # fmt: skip
    pod = json.loads(tasks["tune"]["inputs"]["parameters"]["trial_pod"]["runtimeValue"]["constant"])
    assert pod["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mlpipeline-minio-artifact"
    assert FAKE_SECRET_KEY not in text
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert "epochs" not in inputs
    assert inputs["validation_split"]["defaultValue"] == 0.1  # the main pipeline's is 0
    assert tasks["tune"]["inputs"]["parameters"]["validation_split"] == {
        "componentInputParameter": "validation_split"
    }
    outputs = spec["components"]["comp-tune"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"


def test_the_katib_overlay_role_covers_every_call(tmp_path):
    import yaml

    from tests.compile.test_manifests import copy_manifests

    root = copy_manifests(tmp_path / "manifests")
    rendered = subprocess.run(["kubectl", "kustomize", str(root / "overlays" / "katib")],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    roles = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Role"]
    rules = [r for role in roles for r in role["rules"] if "kubeflow.org" in r["apiGroups"]]
    experiments = [r for r in rules if r["resources"] == ["experiments"]]
    assert experiments and set(VERBS) <= {v for r in experiments for v in r["verbs"]}
    trials = [r for r in rules if r["resources"] == ["trials"]]
    assert [r["verbs"] for r in trials] == [["list"]]  # the trials report, nothing more
    assert len(experiments) + len(trials) == len(rules)
