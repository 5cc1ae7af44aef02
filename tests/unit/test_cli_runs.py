"""`runs`, `-o json|yaml`, `submit --dry-run` and KF_PIPELINES_ENDPOINT, against the fake KFP API
on 127.0.0.1 (tests/kfp_server.py) and, for --dry-run, against nothing at all."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.kfp_server import KfpServer
from tests.servers import free_port
from tests.unit.test_cli_kfp import cli, one_line_error

pytestmark = pytest.mark.usefixtures("no_kfp_context")

SUBMIT_KEYS = {"run_id", "run_name", "experiment", "url", "state"}
RUN_KEYS = {"run_id", "name", "state", "experiment_id", "created_at", "finished_at", "url", "error"}
PLAN_KEYS = {
    "pipeline", "host", "namespace", "experiment", "run_name", "parameters", "images", "sent",
}  # fmt: skip


def submitted(kfp_api, *args) -> dict:
    result = cli("submit", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_submit_json_has_the_documented_keys_and_nothing_else_on_stdout(kfp_api):
    data = submitted(kfp_api, "--run-name", "nightly")
    assert set(data) == SUBMIT_KEYS
    assert data["run_name"] == "nightly" and data["url"].endswith(
        f"/#/runs/details/{data['run_id']}"
    )
    assert data["run_id"] in kfp_api.runs


def test_submit_wait_json_carries_the_final_state_and_progress_goes_to_stderr(kfp_api):
    kfp_api.script_run_states("RUNNING", "SUCCEEDED")
    result = cli("submit", "-o", "json", "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "SUCCEEDED"
    assert "SUCCEEDED" in result.stderr


def test_submit_yaml_is_the_same_document(kfp_api):
    result = cli("submit", "-o", "yaml", "--run-name", "y")
    assert set(yaml.safe_load(result.stdout)) == SUBMIT_KEYS


@pytest.mark.parametrize("output", ["text", "json"])
def test_dry_run_needs_no_server_and_sends_nothing(output):
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = cli("submit", "--dry-run", "--host", host, "--param", "epochs=3", "-o", output)
    assert result.exit_code == 0, result.output
    if output == "json":
        plan = json.loads(result.stdout)
        assert set(plan) == PLAN_KEYS and plan["sent"] is False
        assert plan["parameters"]["epochs"] == 3 and plan["parameters"]["batch_size"] == 128
        assert len(plan["images"]) == 3
    else:
        assert result.stdout.startswith(f"dry run: nothing sent to {host}")
        assert "  epochs = 3" in result.stdout


def test_dry_run_still_refuses_a_bad_parameter():
    result = cli("submit", "--dry-run", "--host", "http://127.0.0.1:9", "--param", "epochs=0")
    assert result.exit_code == 2 and "epochs" in result.output


def test_tune_dry_run_plans_the_tuning_pipeline_and_refuses_what_the_search_sets():
    """`tune` imports what the search sets lazily, in the command's body: a name moved
    elsewhere fails only when the command runs, as a traceback."""
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = cli("tune", "--dry-run", "--host", host, "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["pipeline"] == "mnist-tune" and plan["sent"] is False
    assert plan["parameters"]["max_trials"] == 12 and "epochs" not in plan["parameters"]
    refused = cli("tune", "--dry-run", "--host", host, "--param", "epochs=3")
    assert refused.exit_code == 2 and "the search sets these" in refused.output


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--host", "http://127.0.0.1:9", "--param", "source=http://[::1/mnist/"], "--param"),
        (["--host", "http://[::1"], "--host"),
    ],
)
def test_a_url_urlsplit_cannot_read_is_a_usage_error_not_a_traceback(args, flag):
    result = cli("submit", "--dry-run", *args)  # cli() fails the test on a traceback
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}" in result.output and "IPv6 URL" in result.output


def test_a_nul_in_a_store_uri_from_a_params_file_is_refused_before_the_run(tmp_path):
    """YAML can spell a NUL (argv cannot); the OS then refuses the path with a bare
    ValueError, a traceback unless the parameter's check refuses it first."""
    params = tmp_path / "params.yaml"
    params.write_text('store_uri: "st\\0ore"\n')
    result = cli("run", "--local", "--params-file", str(params), "--workdir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "store_uri=" in result.output and "NUL character" in result.output
    assert not list(tmp_path.glob("runs")), "the run started"


def test_kf_pipelines_endpoint_is_read_when_kfp_host_is_not_set(monkeypatch):
    with KfpServer() as server:
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)
        result = cli("runs", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no runs"


def test_runs_list_newest_first_by_state_and_limit(kfp_api):
    ids = [submitted(kfp_api, "--run-name", f"r{i}")["run_id"] for i in range(3)]
    kfp_api.runs[ids[0]]["state"] = "FAILED"
    result = cli("runs", "list", "-o", "json")
    rows = json.loads(result.stdout)
    assert [r["run_id"] for r in rows] == ids[::-1]
    assert all(set(r) == RUN_KEYS for r in rows)
    failed = json.loads(cli("runs", "list", "--state", "FAILED", "-o", "json").stdout)
    assert [r["run_id"] for r in failed] == [ids[0]]
    assert len(json.loads(cli("runs", "list", "--limit", "2", "-o", "json").stdout)) == 2
    text = cli("runs", "list").stdout.splitlines()
    assert text[0].startswith(ids[2]) and text[0].endswith("r2")


def test_runs_list_by_experiment(kfp_api):
    mine = submitted(kfp_api, "--experiment", "mine")["run_id"]
    submitted(kfp_api, "--experiment", "other")
    rows = json.loads(cli("runs", "list", "--experiment", "mine", "-o", "json").stdout)
    assert [r["run_id"] for r in rows] == [mine]


def test_runs_get_names_the_failed_task_and_how_to_read_its_log(kfp_api):
    run_id = submitted(kfp_api)["run_id"]
    kfp_api.runs[run_id].update(
        state="FAILED",
        error={"code": 2, "message": "train failed"},
        run_details={
            "task_details": [
                {"display_name": "download", "state": "SUCCEEDED", "pod_name": "mnist-abc-1"},
                {
                    "display_name": "train",
                    "state": "FAILED",
                    "child_tasks": [{"pod_name": "mnist-abc-2"}],
                    "error": {"code": 2, "message": "OOMKilled"},
                },
            ]
        },
    )
    data = json.loads(cli("runs", "get", run_id, "-o", "json", "-n", "team-a").stdout)
    assert set(data) == RUN_KEYS | {"tasks"}
    assert data["state"] == "FAILED" and data["error"] == "train failed"
    train = data["tasks"][1]
    assert train == {
        "name": "train",
        "state": "FAILED",
        "pod": "mnist-abc-2",
        "error": "OOMKilled",
        "logs": "kubectl logs -n team-a mnist-abc-2 -c main",
    }
    assert data["tasks"][0]["logs"] is None
    text = cli("runs", "get", run_id, "-n", "team-a").stdout
    assert "its log: kubectl logs -n team-a mnist-abc-2 -c main" in text


def test_runs_get_watch_exits_with_the_runs_outcome(kfp_api):
    run_id = submitted(kfp_api)["run_id"]
    kfp_api.script_run_states("RUNNING", "FAILED", error="boom")
    result = cli("runs", "get", run_id, "--watch", "--poll-interval", "0")
    assert result.exit_code == 1
    assert [line.split()[-1] for line in result.stdout.splitlines() if " s  " in line] == [
        "RUNNING",
        "FAILED",
    ]


def test_runs_get_of_an_unknown_run_is_one_line(kfp_api):
    line = one_line_error(cli("runs", "get", "no-such-run"))
    assert "404" in line or "not found" in line


def test_runs_cancel_and_retry(kfp_api):
    run_id = submitted(kfp_api)["run_id"]
    result = cli("runs", "cancel", run_id, "-o", "json")
    assert json.loads(result.stdout) == {"run_id": run_id, "action": "cancel"}
    assert kfp_api.last("POST", ":terminate").path.endswith(f"/runs/{run_id}:terminate")
    kfp_api.runs[run_id]["state"] = "CANCELED"
    result = cli("runs", "retry", run_id)
    assert result.exit_code == 0 and result.stdout.startswith(f"retrying run {run_id}")
    assert kfp_api.runs[run_id]["state"] == "RUNNING"


def test_retry_refuses_a_run_that_has_not_failed(kfp_api):
    run_id = submitted(kfp_api)["run_id"]
    kfp_api.runs[run_id]["state"] = "RUNNING"
    result = cli("runs", "retry", run_id)
    assert result.exit_code == 2 and "only a failed or canceled run" in result.output
    assert not kfp_api.calls("POST", ":retry")


def test_the_readme_cli_table_lists_every_command():
    from pipeline.cli import COMMANDS
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## The CLI") : readme.index("**Machine-readable output.**")]
    for name in COMMANDS:
        assert f"`mnist-pipeline {name}" in table, f"the README's CLI table misses {name}"
    for verb in ("list", "get", "cancel", "retry"):
        assert f"runs {verb}" in table


def test_shell_completion_works_as_the_readme_says():
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "mnist-pipeline"
    env = {**os.environ, "_MNIST_PIPELINE_COMPLETE": "bash_source"}
    script = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "_mnist_pipeline_completion" in script and "complete " in script


def test_inside_a_pod_the_in_cluster_api_and_its_token_are_used(monkeypatch, tmp_path):
    """As kfp.Client() does in a Kubeflow notebook: no --host needed."""
    from pipeline.kfp import settings

    token = tmp_path / "token"
    token.write_text("projected-token\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    with KfpServer(token="projected-token") as server:
        monkeypatch.setattr(settings, "IN_CLUSTER_HOST", server.url)  # stands in for the DNS name
        result = cli("runs", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no runs"


def test_outside_a_pod_no_host_is_one_line_saying_what_to_pass():
    result = cli("runs", "list")
    assert result.exit_code == 2 and "no KFP API given: pass --host URL" in result.output


def test_submit_runs_an_uploaded_version_newest_by_default(kfp_api):
    assert cli("upload").exit_code == 0
    assert cli("upload", "--version", "v2").exit_code == 0
    versions = {v["display_name"]: v["pipeline_version_id"] for v in kfp_api.versions.values()}
    compiled_before = len(kfp_api.calls("POST", "/runs"))
    result = cli("submit", "--pipeline", "mnist-digits", "--param", "epochs=2", "-o", "json")
    assert result.exit_code == 0, result.output
    body = kfp_api.last("POST", "/runs").body
    assert body["pipeline_version_reference"]["pipeline_version_id"] == versions["v2"]
    assert "pipeline_spec" not in body or not body["pipeline_spec"]
    assert body["runtime_config"]["parameters"]["epochs"] == 2
    assert "version v2" in result.stderr
    assert len(kfp_api.calls("POST", "/runs")) == compiled_before + 1


def test_submit_a_named_version_and_a_missing_one(kfp_api):
    cli("upload")
    (first,) = kfp_api.versions.values()
    cli("upload", "--version", "v2")
    result = cli("submit", "--pipeline", "mnist-digits", "--version", first["display_name"])
    assert result.exit_code == 0, result.output
    sent = kfp_api.last("POST", "/runs").body["pipeline_version_reference"]
    assert sent["pipeline_version_id"] == first["pipeline_version_id"]
    line = one_line_error(cli("submit", "--pipeline", "mnist-digits", "--version", "v9"))
    assert "has no version 'v9'; newest: v2" in line
    line = one_line_error(cli("submit", "--pipeline", "nope"))
    assert "no uploaded pipeline named 'nope'" in line


@pytest.mark.parametrize(
    ("flag", "expected"), [("--disable-caching", False), ("--enable-caching", True)]
)
def test_caching_flags_reach_every_task(kfp_api, flag, expected):
    assert cli("submit", flag).exit_code == 0
    spec = kfp_api.last("POST", "/runs").body["pipeline_spec"]["pipeline_spec"]
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    for name, task in tasks.items():
        if not name.startswith("condition"):
            assert task["cachingOptions"].get("enableCache", False) is expected, name


def test_upload_json_then_a_version(kfp_api):
    first = json.loads(cli("upload", "-o", "json").stdout)
    assert set(first) == {"uploaded", "pipeline", "pipeline_id", "version", "version_id", "url"}
    assert first["uploaded"] == "pipeline" and first["version_id"] in kfp_api.versions
    second = json.loads(cli("upload", "--version", "v2", "-o", "json").stdout)
    assert second["uploaded"] == "version" and second["version"] == "v2"
    assert second["pipeline_id"] == first["pipeline_id"]


def test_upload_dry_run_needs_no_server():
    host = f"http://127.0.0.1:{free_port()}"
    result = cli("upload", "--dry-run", "--host", host, "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["sent"] is False and plan["pipeline"] == "mnist-digits"
    assert plan["parameters"]["epochs"] == 10


def test_the_readme_cli_reference_is_generated_from_the_code():
    from pipeline import reference

    assert reference.main(["--check"]) == 0, "run `python -m pipeline.reference` and commit"
