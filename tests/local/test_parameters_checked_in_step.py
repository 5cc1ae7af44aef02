"""A run that no CLI checked (started from the Kubeflow UI, or a recurring run) fails in its
first step, check-parameters, with the very line the CLI prints, and nothing is downloaded.

The pipeline function runs under kfp.local with the values passed straight in, as the KFP
backend passes the UI's run form; only the steps' own checks stand between a bad value and the
cluster.
"""

from __future__ import annotations

import inspect
import io
import json
from pathlib import Path

import kfp.local
import pytest

from components.check_parameters.component import check_parameters
from components.common import spec
from components.common.failure import ERROR_FILE_ENV
from components.common.parameters import PARAMETERS, TUNE_PARAMETERS, ParameterError, check
from pipeline.cluster import ClusterOptions
from pipeline.dag import build_pipeline
from pipeline.local_run import LocalRunError, run_local


def cli_line(name: str, value) -> str:
    """What `mnist-pipeline run --param name=value` says of the value (pipeline/params.py)."""
    with pytest.raises(ParameterError) as refused:
        check(name, value)
    return str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("min_accuracy", 7.0), ("epochs", 0), ("store_uri", "ftp://x/y"), ("serving_endpoint", "a b")],
)
def test_a_ui_run_with_a_bad_value_fails_in_its_first_step_with_the_clis_line(
    tmp_path, name, value
):
    store = tmp_path / "store"
    arguments = {"source": str(tmp_path / "nowhere"), "store_uri": str(store), name: value}
    with pytest.raises(LocalRunError) as failed:
        run_local(arguments, tmp_path / "work", verbose=False, stream=io.StringIO())
    line, _, logs = str(failed.value).partition(" (step logs: ")
    assert line == f"{spec.CHECK_PARAMETERS}: {cli_line(name, value)}"
    assert (Path(logs.rstrip(")")) / f"{spec.CHECK_PARAMETERS}.log").is_file()
    assert not store.exists(), "a step after check-parameters ran"
    assert not list((tmp_path / "work").rglob("download")), "download started"


def test_each_step_checks_the_parameters_it_receives_too(tmp_path, monkeypatch):
    """A component reused in another pipeline, without check-parameters, still refuses."""
    from components.download.component import download

    errors = tmp_path / "errors.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    with pytest.raises(RuntimeError):
        download(source="gopher://mnist", verify_checksums=True, s3_endpoint="")
    (line,) = errors.read_text().splitlines()
    assert line == f"{spec.DOWNLOAD}: {cli_line('source', 'gopher://mnist')}"


def test_a_source_urlsplit_cannot_read_ends_the_check_step_in_one_line(tmp_path, monkeypatch):
    """urlsplit's own ValueError (a '[' with no ']') is no StepError: the check words it."""
    errors = tmp_path / "errors.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    values = {p.name: p.default for p in PARAMETERS}
    values["source"] = "http://[::1/mnist/"
    with pytest.raises(SystemExit) as ended:
        check_parameters.python_func(**values)
    assert ended.value.code == 1
    line = f"{spec.CHECK_PARAMETERS}: {cli_line('source', values['source'])}"
    assert errors.read_text().splitlines() == [line]


def test_the_check_step_takes_every_parameter_of_both_pipelines_with_the_tables_types():
    signature = dict(inspect.signature(check_parameters.python_func).parameters)
    table = {p.name: p for p in PARAMETERS + TUNE_PARAMETERS}
    signature.pop("train_gpu")  # not a parameter: the train pod's GPU settings, compiled in
    assert set(signature) == set(table)
    for name, arg in signature.items():
        assert arg.annotation in (table[name].type, table[name].type.__name__), name
        if arg.default is not inspect.Parameter.empty:
            assert arg.default == table[name].default, name


def test_good_values_pass_the_check_step(tmp_path):
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    values = {p.name: p.default for p in PARAMETERS}
    task = check_parameters(**values)
    # no GPU settings compiled in: the train pod asks for none
    assert task.outputs == {"train_gpus": 0, "train_node_selector": {}, "train_tolerations": []}
    gpu = {"limit": 1, "nodeSelector": {"gpu": "yes"}, "tolerations": [{"key": "gpu"}]}
    task = check_parameters(**values, train_gpu=json.dumps(gpu))
    assert task.outputs == {
        "train_gpus": 1,
        "train_node_selector": {"gpu": "yes"},
        "train_tolerations": [{"key": "gpu"}],
    }


def test_the_pipeline_function_reads_as_written():
    """Named parameters with the table's defaults, the table's descriptions for the UI."""
    func = build_pipeline(ClusterOptions()).pipeline_func
    names = list(inspect.signature(func).parameters)
    assert names == [p.name for p in PARAMETERS]
    for param in PARAMETERS:
        assert f"    {param.name}: {param.description}" in func.__doc__


def _steps():
    from components.batch_predict.component import batch_predict
    from components.download.component import download
    from components.export.component import export
    from components.train.component import train
    from components.tune.component import tune
    from components.unpack_upload.component import unpack_and_upload

    return [check_parameters, download, unpack_and_upload, train, tune, export, batch_predict]


BAD = {  # a refused value for each parameter a step may receive
    "source": "gopher://mnist", "store_uri": "ftp://x/y", "s3_endpoint": "a@b:1",
    "epochs": 0, "batch_size": 0, "learning_rate": 2.0, "seed": -1, "train_limit": -1,
    "validation_split": 0.6,
    "train_workers": 0, "min_accuracy": 7.0, "images_uri": "ftp://x", "results_uri": "ftp://x",
    "min_confidence": 2.0, "max_failed_fraction": -1.0, "serving_endpoint": "a b",
    "algorithm": "guess", "goal": 2.0, "max_trials": 0, "parallel_trials": 0, "max_epochs": 0,
}  # fmt: skip


@pytest.mark.parametrize("step", _steps(), ids=lambda c: c.name)
def test_every_step_refuses_each_table_parameter_it_receives_before_doing_anything(
    step, tmp_path, monkeypatch
):
    """The shim's body, called directly: any table parameter with a bad value ends the step at
    once (exit status 1) with the CLI's line; the other arguments are never touched."""
    errors = tmp_path / "errors.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    arguments = inspect.signature(step.python_func).parameters
    received = [name for name in arguments if name in BAD]
    assert received or step.name == "deploy", f"{step.name} receives no table parameter"
    defaults = {p.name: p.default for p in PARAMETERS + TUNE_PARAMETERS}
    for name in received:
        values = {arg: defaults.get(arg) for arg in arguments}  # artifacts: None, never reached
        values[name] = BAD[name]
        with pytest.raises(SystemExit) as ended:
            step.python_func(**values)
        assert ended.value.code == 1
        line = errors.read_text().splitlines()[-1]
        assert line == f"{step.name}: {cli_line(name, BAD[name])}", name
