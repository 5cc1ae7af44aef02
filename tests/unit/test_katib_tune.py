"""The tuning pipeline's Katib step: the Experiment it writes (validated with the
`kubeflow-katib-api` models, strictly: a key they do not know fails), the search run against a
Kubernetes API stand-in (Succeeded with a best trial, Failed, never ending), the trial's metric
lines, the compiled tuning pipeline and the Role."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.common.kube import VERBS, Kube, KubeError
from components.tune import katib
from tests.conftest import REPO
from tests.kube_server import client_for, kube_api


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


def test_the_experiment_is_what_katib_reads():
    experiment = body()
    assert katib_errors(experiment) == []
    spec = experiment["spec"]
    assert spec["objective"] == {"type": "maximize", "goal": 0.995,
                                 "objectiveMetricName": "test_accuracy"}  # fmt: skip
    assert spec["algorithm"] == {"algorithmName": "tpe"}
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert [p["name"] for p in spec["parameters"]] == ["learning_rate", "batch_size", "epochs"]
    template = spec["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    (container,) = template["spec"]["containers"]
    assert container["name"] == spec["trialTemplate"]["primaryContainerName"]
    assert "--learning-rate=${trialParameters.learningRate}" in container["command"]
    assert template["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    misspelt = body()
    misspelt["spec"]["maxTrialCounts"] = 3
    assert katib_errors(misspelt) == [".spec.maxTrialCounts"]


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm 'annealing' is not one of random, grid, tpe"):
        body(algorithm="annealing")


SUCCEEDED = {
    "conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}],
    "currentOptimalTrial": {
        "bestTrialName": "mnist-tune-run-1-abc",
        "parameterAssignments": [
            {"name": "learning_rate", "value": "0.0213"},
            {"name": "batch_size", "value": "128"},
            {"name": "epochs", "value": "5"},
        ],
        "observation": {"metrics": [{"name": "test_accuracy", "max": "0.9931"}]},
    },
}


def test_the_search_ends_with_the_best_trials_values():
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", {"conditions": []}, SUCCEEDED)
        best = katib.tune(body(), timeout=30, kube=Kube(client_for(url)), interval=0.05)
    assert best == {"learning_rate": 0.0213, "batch_size": 128, "epochs": 5}
    (created,) = api.objects.values()
    assert created["spec"]["maxTrialCount"] == 12


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


def test_experiment_names_are_dns_labels():
    name = katib.experiment_name("8F2A_c3/..Run")
    assert name == "mnist-tune-8f2a-c3---run" and len(katib.experiment_name("x" * 200)) <= 63


def test_a_trial_prints_the_lines_katibs_collector_reads(small_mnist_dir, tmp_path):
    pytest.importorskip("tensorflow")
    from components.store import LocalStore
    from components.unpack_upload.unpack import unpack_and_upload

    unpack_and_upload(small_mnist_dir, LocalStore(tmp_path), canonical=False)
    result = subprocess.run(
        [sys.executable, "-m", "components.tune.trial", f"--dataset-uri={tmp_path}/datasets/mnist",
         "--learning-rate=0.01", "--batch-size=64", "--epochs=2", "--train-limit=600"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = [line for line in result.stdout.splitlines() if line.startswith("test_accuracy=")]
    assert len(metrics) == 3  # one per epoch and the final one
    assert all(0 <= float(m.split("=")[1]) <= 1 for m in metrics)


def test_the_tuning_pipeline_compiles_with_the_trials_scheduling(tmp_path):
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
    assert "epochs" not in spec["root"]["inputDefinitions"]["parameters"]


def test_the_katib_overlay_role_covers_every_call(tmp_path):
    import yaml

    from tests.compile.test_manifests import copy_manifests

    root = copy_manifests(tmp_path / "manifests")
    rendered = subprocess.run(["kubectl", "kustomize", str(root / "overlays" / "katib")],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    roles = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Role"]
    rules = [r for role in roles for r in role["rules"] if "kubeflow.org" in r["apiGroups"]]
    assert rules and set(VERBS) <= {v for r in rules for v in r["verbs"]}
    assert all(r["resources"] == ["experiments"] for r in rules)


def test_trials_train_with_the_pipelines_seed_and_train_limit_and_the_searched_values():
    """The trial command, parsed as a trial parses it: the search's three values, the rest the
    pipeline's own (one builder, components/train/config.py), nothing dropped."""
    import argparse

    from components.train.config import TrainConfig, add_flags

    fixed = TrainConfig(seed=7, train_limit=1234)
    template = body(fixed=fixed)["spec"]["trialTemplate"]
    (container,) = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    chosen = {"learningRate": "0.02", "batchSize": "64", "epochs": "3"}
    flags = [arg for arg in container["command"] if arg.startswith("--")]
    for ref, value in chosen.items():
        flags = [f.replace(f"${{trialParameters.{ref}}}", value) for f in flags]
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset-uri")
    parser.add_argument("--s3-endpoint")
    add_flags(parser, required=("learning_rate", "batch_size", "epochs"))
    parsed = TrainConfig.from_values(vars(parser.parse_args(flags)))
    assert parsed == TrainConfig(
        epochs=3, batch_size=64, learning_rate=0.02, seed=7, train_limit=1234
    )
    refs = {p["name"] for p in template["trialParameters"]}
    assert all(f"${{trialParameters.{ref}}}" in " ".join(container["command"]) for ref in refs)
