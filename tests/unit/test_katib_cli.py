"""`compile --tune` and `upload --tune`: the tuning pipeline reaches the Kubeflow UI as the main
pipeline does (tests/unit/test_cli_kfp.py's style: the real CLI, a local KFP v2beta1 API, what
the server received)."""

from __future__ import annotations

import pytest
import yaml

from components.common.parameters import TUNE_PARAMETERS
from pipeline.dag import (
    PIPELINE_NAME,
    TUNE_PIPELINE_DESCRIPTION,
    TUNE_PIPELINE_DISPLAY_NAME,
    TUNE_PIPELINE_NAME,
)
from pipeline.signature import TUNING
from tests.unit.test_cli_kfp import cli, task_names

TUNE_TASKS = {
    "check-parameters", "download", "unpack-and-upload", "tune", "train", "export",
    "batch-predict", "deploy",
}  # fmt: skip
pytestmark = pytest.mark.usefixtures("no_kfp_context")


def test_compile_tune_writes_the_tuning_pipeline(tmp_path):
    out = tmp_path / "out" / "tune.yaml"
    result = cli("compile", "--tune", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}\n"
    pipeline_spec = next(yaml.safe_load_all(out.read_text()))
    assert pipeline_spec["pipelineInfo"]["name"] == TUNE_PIPELINE_NAME
    assert pipeline_spec["pipelineInfo"]["displayName"] == TUNE_PIPELINE_DISPLAY_NAME
    assert task_names(pipeline_spec) == TUNE_TASKS


def test_compile_tune_names_its_file_apart_from_the_main_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("compile", "--tune").exit_code == 0
    assert cli("compile").exit_code == 0
    tuned = next(yaml.safe_load_all((tmp_path / "mnist_tune.yaml").read_text()))
    main = next(yaml.safe_load_all((tmp_path / "mnist_pipeline.yaml").read_text()))
    assert tuned["pipelineInfo"]["name"] == TUNE_PIPELINE_NAME
    assert main["pipelineInfo"]["name"] == PIPELINE_NAME


def test_compile_tune_takes_the_cluster_flags(tmp_path):
    out = tmp_path / "tune.yaml"
    assert cli("compile", "--tune", "-o", str(out), "--secret-name", "my-minio").exit_code == 0
    assert "my-minio" in out.read_text()


def test_upload_tune_creates_the_tuning_pipeline_with_descriptions_and_defaults(kfp_api):
    result = cli("upload", "--tune")
    assert result.exit_code == 0, result.output
    upload = kfp_api.last("POST", "/pipelines/upload")
    assert upload.arg("name") == TUNE_PIPELINE_NAME
    assert upload.arg("description") == TUNE_PIPELINE_DESCRIPTION
    pipeline_spec = next(yaml.safe_load_all(upload.files["uploadfile"]))
    assert pipeline_spec["pipelineInfo"]["description"] == TUNE_PIPELINE_DESCRIPTION
    assert task_names(pipeline_spec) == TUNE_TASKS
    parameters = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {p.name for p in TUNING}
    for param in TUNING:  # what the UI's "Create run" form shows
        definition = parameters[param.name]
        assert " ".join(definition["description"].split()) == param.description, param.name
        assert definition["defaultValue"] == param.default, param.name
    assert parameters["validation_split"]["defaultValue"] == 0.1
    assert {p.name for p in TUNE_PARAMETERS} <= set(parameters)
    pipeline_id = next(iter(kfp_api.pipelines))
    assert f"/#/pipelines/details/{pipeline_id}" in result.stdout


def test_upload_tune_twice_adds_a_version_of_the_tuning_pipeline(kfp_api):
    cli("upload")  # the main pipeline, beside it
    cli("upload", "--tune")
    result = cli("upload", "--tune", "--version", "v2-hyperband")
    assert result.exit_code == 0, result.output
    assert len(kfp_api.pipelines) == 2
    version = kfp_api.last("POST", "/pipelines/upload_version")
    assert version.arg("name") == "v2-hyperband"
    assert task_names(next(yaml.safe_load_all(version.files["uploadfile"]))) == TUNE_TASKS
    assert f"uploaded version v2-hyperband of pipeline {TUNE_PIPELINE_NAME}" in result.stdout


def test_upload_tune_dry_run_plans_the_tuning_pipeline(kfp_api):
    import json

    result = cli("upload", "--tune", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["pipeline"] == TUNE_PIPELINE_NAME and plan["sent"] is False
    assert plan["parameters"]["algorithm"] == "tpe" and "epochs" not in plan["parameters"]
    assert kfp_api.requests == []


def test_the_help_says_what_tune_does():
    for verb in ("compile", "upload"):
        result = cli(verb, "--help")
        assert "--tune" in result.output and "Katib" in result.output
