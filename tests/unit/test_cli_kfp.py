"""The Kubeflow verbs (submit, upload, schedule) against a local KFP v2beta1 API, and clean.

Each test drives the real CLI through click's CliRunner and asserts what the server received
(the compiled spec, typed parameters, cron, experiment) and how failures read: one line on
stderr, no traceback, never the token.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3
import yaml
from click.testing import CliRunner

from components.common import spec
from components.store import open_store
from pipeline.cli import main
from pipeline.commands.cron import validate_cron
from pipeline.dag import PIPELINE_DESCRIPTION, PIPELINE_NAME
from pipeline.kfp.describe import describe_failure
from pipeline.kfp.settings import KfpSettings
from pipeline.params import TYPES
from tests.kfp_server import KfpServer
from tests.servers import free_port

TOKEN = "eyJhbGciOiJSUzI1NiJ9.fake-token-Qx7-never-print"
# every task of the compiled DAG, those inside the accuracy gate's condition too
TASKS = {
    "check-parameters", "download", "unpack-and-upload", "train", "export", "batch-predict",
    "deploy",
}  # fmt: skip
pytestmark = pytest.mark.usefixtures("no_kfp_context")


def cli(*args: str, env: dict | None = None):
    """Run `mnist-pipeline ARGS`; fail the test on an unhandled exception (a traceback)."""
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def one_line_error(result, exit_code: int = 3) -> str:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def split_spec(run_body: dict) -> tuple[dict, dict]:
    """(pipeline spec, platform spec) of a run or recurring run body."""
    sent = run_body["pipeline_spec"]
    return sent["pipeline_spec"], sent["platform_spec"]


def task_names(pipeline_spec: dict) -> set[str]:
    """Every task in the DAG, inside conditions too."""
    dags = [pipeline_spec["root"]["dag"]] + [
        c["dag"] for c in pipeline_spec["components"].values() if "dag" in c
    ]
    return {name for dag in dags for name in dag["tasks"] if not name.startswith("condition")}


# -- help ------------------------------------------------------------------------------------


def test_root_help_lists_the_verbs_without_importing_kfp():
    code = (
        "import sys; from click.testing import CliRunner; from pipeline.cli import main; "
        "out = CliRunner().invoke(main, ['--help']).output; "
        "assert 'kfp' not in sys.modules, 'kfp imported'; print(out)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for verb in ("submit", "upload", "schedule", "clean"):
        assert f"  {verb} " in out


@pytest.mark.parametrize(
    "args, phrases",
    [
        (["submit"], ["KFP_HOST", "--wait", "Exit codes", "--param NAME=VALUE", "port-forward"]),
        (["upload"], ["Kubeflow UI", "version", "description"]),
        (["schedule"], ["6 fields, seconds first", "0 0 2 * * *", "schedule list", "disable"]),
        (["schedule", "create"], ["--cron", "--interval", "--no-catchup", "ISO 8601", "1 to 10"]),
        (["schedule", "delete"], ["ID", "KFP_TOKEN", "--token TOKEN"]),
        (["clean"], ["dry run", "--yes", "--include-images"]),
    ],
)
def test_help_reads_well(args, phrases):
    result = cli(*args, "--help")
    assert result.exit_code == 0
    for phrase in phrases:
        assert phrase in result.output, phrase


# -- submit ----------------------------------------------------------------------------------


def test_submit_sends_the_compiled_pipeline_typed_params_experiment_and_name(kfp_api):
    result = cli(
        "submit",
        "--experiment",
        "nightly",
        "--run-name",
        "first try",
        "--param",
        "epochs=3",
        "--param",
        "verify_checksums=false",
        "--param",
        "learning_rate=0.01",
        "--param",
        "store_uri=s3://bucket/mnist",
        "--secret-name",
        "my-minio",
    )
    assert result.exit_code == 0, result.output
    experiment = kfp_api.last("POST", "/experiments").body
    assert experiment["display_name"] == "nightly"
    run = kfp_api.last("POST", "/runs").body
    assert run["display_name"] == "first try"
    assert run["experiment_id"] == kfp_api.runs[next(iter(kfp_api.runs))]["experiment_id"]
    params = run["runtime_config"]["parameters"]
    assert params == {
        "epochs": 3,
        "verify_checksums": False,
        "learning_rate": 0.01,
        "store_uri": "s3://bucket/mnist",
    }
    assert type(params["epochs"]) is int and type(params["learning_rate"]) is float
    pipeline_spec, platform_spec = split_spec(run)
    assert task_names(pipeline_spec) == TASKS
    assert set(pipeline_spec["root"]["inputDefinitions"]["parameters"]) == set(TYPES)
    assert "my-minio" in json.dumps(platform_spec)
    run_id = next(iter(kfp_api.runs))
    assert f"run id:     {run_id}" in result.stdout
    assert f"{kfp_api.url}/#/runs/details/{run_id}" in result.stdout


def test_submit_reuses_an_existing_experiment(kfp_api):
    cli("submit", "--experiment", "shared")
    cli("submit", "--experiment", "shared")
    assert len(kfp_api.calls("POST", "/experiments")) == 1
    assert len(kfp_api.calls("POST", "/runs")) == 2


@pytest.mark.parametrize(
    "param, phrase",
    [
        ("epochs=0", "epochs=0 is out of range"),
        ("epoch=3", "unknown parameter 'epoch'"),
        ("verify_checksums=maybe", "not a boolean"),
        ("store_uri=ftp://x", "store_uri"),
        ("epochs", "name=value"),
    ],
)
def test_submit_refuses_bad_params_before_calling_the_server(kfp_api, param, phrase):
    result = cli("submit", "--param", param)
    assert result.exit_code == 2
    assert phrase in result.stderr
    assert kfp_api.requests == []


def test_submit_wait_prints_state_changes_and_exits_0_on_success(kfp_api):
    kfp_api.script_run_states("PENDING", "RUNNING", "RUNNING", "SUCCEEDED")
    result = cli("submit", "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    states = [line.split()[-1] for line in result.stdout.splitlines() if " s  " in line]
    assert states == ["PENDING", "RUNNING", "SUCCEEDED"]


@pytest.mark.parametrize("state", ["FAILED", "CANCELED"])
def test_submit_wait_exits_1_when_the_run_does_not_succeed(kfp_api, state):
    kfp_api.script_run_states("RUNNING", state, error="train: out of memory")
    result = cli("submit", "--wait", "--poll-interval", "0")
    assert result.exit_code == 1
    assert f"run {state.lower()}" in result.stderr
    assert "/#/runs/details/" in result.stderr
    if state == "FAILED":
        assert "train: out of memory" in result.stderr


def test_submit_wait_rides_out_a_passing_server_error(kfp_api):
    kfp_api.script_run_states("RUNNING", "SUCCEEDED")
    kfp_api.fail(503, times=1, method="GET", path="/runs/")
    result = cli("submit", "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "retrying 1/3" in result.stderr


def test_submit_wait_timeout_exits_4_and_the_run_goes_on(kfp_api):
    kfp_api.script_run_states("RUNNING")
    result = cli("submit", "--wait", "--timeout", "1", "--poll-interval", "0.05")
    assert result.exit_code == 4
    assert "still RUNNING after 1 s" in result.stderr


def test_submit_end_to_end_in_a_subprocess(kfp_api, tmp_path):
    env = {**os.environ, "KFP_HOST": kfp_api.url, "KFP_TOKEN": TOKEN, "HOME": str(tmp_path)}
    exe = Path(sys.executable).with_name("mnist-pipeline")
    done = subprocess.run(
        [str(exe), "submit", "--param", "epochs=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "/#/runs/details/" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert kfp_api.last("POST", "/runs").headers["authorization"] == f"Bearer {TOKEN}"


# -- upload ----------------------------------------------------------------------------------


def test_upload_creates_the_pipeline_with_descriptions_and_defaults(kfp_api):
    result = cli("upload")
    assert result.exit_code == 0, result.output
    upload = kfp_api.last("POST", "/pipelines/upload")
    assert upload.arg("name") == PIPELINE_NAME
    assert upload.arg("description") == PIPELINE_DESCRIPTION
    pipeline_spec = next(yaml.safe_load_all(upload.files["uploadfile"]))
    assert pipeline_spec["pipelineInfo"]["description"] == PIPELINE_DESCRIPTION
    assert task_names(pipeline_spec) == TASKS
    parameters = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == set(TYPES)
    for name, definition in parameters.items():  # what the UI's "Create run" form shows
        assert definition.get("description"), f"{name} has no description"
        assert "defaultValue" in definition, f"{name} has no default"
    assert parameters["store_uri"]["defaultValue"] == spec.DEFAULT_STORE
    pipeline_id = next(iter(kfp_api.pipelines))
    assert f"/#/pipelines/details/{pipeline_id}" in result.stdout


def test_upload_of_an_existing_pipeline_adds_a_version(kfp_api):
    cli("upload", "--name", "digits")
    result = cli("upload", "--name", "digits", "--version", "v2-more-epochs")
    assert result.exit_code == 0, result.output
    pipeline_id = next(iter(kfp_api.pipelines))
    version = kfp_api.last("POST", "/pipelines/upload_version")
    assert version.arg("pipelineid") == pipeline_id
    assert version.arg("name") == "v2-more-epochs"
    assert task_names(next(yaml.safe_load_all(version.files["uploadfile"]))) == TASKS
    lookup = json.loads(kfp_api.last("GET", "/pipelines").arg("filter"))
    assert lookup["predicates"][0]["stringValue"] == "digits"
    assert "uploaded version v2-more-epochs of pipeline digits" in result.stdout


def test_upload_names_a_version_when_not_told(kfp_api):
    cli("upload")
    assert cli("upload").exit_code == 0
    assert kfp_api.last("POST", "/upload_version").arg("name").startswith("v0.")


def test_upload_of_a_new_pipeline_explains_what_happens_to_version(kfp_api):
    result = cli("upload", "--version", "v1")
    assert result.exit_code == 0
    assert "applies from the next upload" in result.stdout


# -- schedule --------------------------------------------------------------------------------


def test_schedule_cron_sends_trigger_concurrency_catchup_times_experiment(kfp_api):
    result = cli(
        "schedule",
        "--cron",
        "0 0 2 * * *",
        "--max-concurrency",
        "3",
        "--no-catchup",
        "--start",
        "2025-02-01T00:00:00",
        "--end",
        "2025-03-01T01:00:00+01:00",
        "--experiment",
        "nightly",
        "--name",
        "nightly-train",
        "--param",
        "epochs=5",
    )
    assert result.exit_code == 0, result.output
    body = kfp_api.last("POST", "/recurringruns").body
    assert body["trigger"] == {
        "cron_schedule": {
            "cron": "0 0 2 * * *",
            "start_time": "2025-02-01T00:00:00Z",
            "end_time": "2025-03-01T00:00:00Z",
        }
    }
    assert body["max_concurrency"] == 3 and body["no_catchup"] is True
    assert body["mode"] == "ENABLE" and body["display_name"] == "nightly-train"
    assert body["runtime_config"]["parameters"] == {"epochs": 5}
    assert kfp_api.experiments[body["experiment_id"]]["display_name"] == "nightly"
    assert task_names(split_spec(body)[0]) == TASKS
    assert "/#/recurringrun/details/" in result.stdout


def test_schedule_create_interval_defaults_to_catchup(kfp_api):
    result = cli("schedule", "create", "--interval", "3600")
    assert result.exit_code == 0, result.output
    body = kfp_api.last("POST", "/recurringruns").body
    assert body["trigger"] == {"periodic_schedule": {"interval_second": 3600}}
    assert body["no_catchup"] is False and body["max_concurrency"] == 1
    assert kfp_api.experiments[body["experiment_id"]]["display_name"] == PIPELINE_NAME


def test_schedule_explains_six_fields_when_given_a_crontab_line(kfp_api):
    result = cli("schedule", "--cron", "0 2 * * *")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "has 5 field(s), but KFP cron takes 6, seconds first" in message
    assert '"0 0 2 * * *"' in message
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    "cron, phrase",
    [
        ("0 0 25 * * *", "hour '25' is out of range"),
        ("0 61 * * * *", "minute '61'"),
        ("0 0 2 * * 7", "day of week '7'"),
        ("0 */0 * * * *", "step of 0"),
        ("0 0 2 * FOO *", "month 'FOO'"),
        ("0 0 2 L * *", "day of month 'L'"),
        ("@often", "is not a KFP cron descriptor"),
        ("@every 0s", "more than once a second"),
        ("0 0 2 31 2 *", "never fires"),
    ],
)
def test_validate_cron_names_the_bad_field(cron, phrase):
    with pytest.raises(ValueError, match=re.escape(phrase)):
        validate_cron(cron)


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 2 * * *",
        "0 30 6 * * 1-5",
        "0 0 2 ? * MON-FRI",
        "*/10 * * * * *",
        "0 0 0 1 jan,JUL *",
        "0  0 2 * * *",
    ],
)
def test_validate_cron_accepts_kfp_expressions(cron):
    assert len(validate_cron(cron).split()) == 6


@pytest.mark.parametrize(
    ("cron", "first_three"),
    [
        ("@daily", ["2026-11-29T00:00:00", "2026-11-30T00:00:00", "2026-12-01T00:00:00"]),
        ("@hourly", ["2026-11-28T11:00:00", "2026-11-28T12:00:00", "2026-11-28T13:00:00"]),
        ("@every 1h30m", ["2026-11-28T12:00:00", "2026-11-28T13:30:00", "2026-11-28T15:00:00"]),
        # day of week counts from Sunday = 0, as in KFP: 2026-11-28 is a Saturday
        ("0 30 6 * * 1-5", ["2026-11-30T06:30:00", "2026-12-01T06:30:00", "2026-12-02T06:30:00"]),
        ("0 0 0 29 2 *", ["2028-02-29T00:00:00", "2032-02-29T00:00:00", "2036-02-29T00:00:00"]),
    ],
)
def test_descriptors_and_next_fire_times_in_kfps_dialect(cron, first_three):
    from pipeline.commands.cron import UTC, next_fire_times

    after = datetime.datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    assert validate_cron(cron) == cron
    times = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in next_fire_times(cron, after)]
    assert times == first_three


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--cron", "0 0 2 * * *", "--interval", "60"], "exactly one of --cron or --interval"),
        ([], "exactly one of --cron or --interval"),
        (["--interval", "60", "--start", "2025-02-01", "--end", "2025-01-01"], "is not after"),
        (["--interval", "60", "--start", "tomorrow"], "not an ISO 8601 time"),
        (["--interval", "60", "--max-concurrency", "11"], "1<=x<=10"),
    ],
)
def test_schedule_refuses_bad_flags_before_calling_the_server(kfp_api, args, phrase):
    result = cli("schedule", "create", *args)
    assert result.exit_code == 2
    assert phrase in " ".join(result.stderr.split())
    assert kfp_api.requests == []


def test_schedule_list_enable_disable_delete(kfp_api):
    cli("schedule", "--cron", "0 0 2 * * *", "--name", "nightly")
    cli("schedule", "--interval", "3600", "--name", "hourly")
    listing = cli("schedule", "list")
    assert listing.exit_code == 0
    rows = listing.stdout.splitlines()
    assert rows[0].split() == ["ID", "STATUS", "TRIGGER", "NAME"]
    assert "cron 0 0 2 * * *" in listing.stdout and "every 3600 s" in listing.stdout
    nightly = next(i for i, r in kfp_api.recurring_runs.items() if r["display_name"] == "nightly")
    assert any(nightly in row and "ENABLED" in row and "nightly" in row for row in rows)

    assert cli("schedule", "disable", nightly).exit_code == 0
    assert kfp_api.recurring_runs[nightly]["status"] == "DISABLED"
    assert f"{nightly}  DISABLED" in cli("schedule", "list").stdout
    enabled = cli("schedule", "enable", nightly).stdout.strip()
    assert enabled == f"enabled recurring run {nightly} (nightly)"
    assert kfp_api.last("POST", ":enable").path.endswith(f"/recurringruns/{nightly}:enable")
    assert cli("schedule", "delete", nightly).exit_code == 0
    assert nightly not in kfp_api.recurring_runs
    line = one_line_error(cli("schedule", "delete", nightly), exit_code=2)
    assert f"no recurring run has the ID or name {nightly!r}" in line and "schedule list" in line


# -- connection, auth and errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "status, hint",
    [
        (401, "token is missing, wrong or expired"),
        (403, "namespace"),
        (404, "check --host is the KFP API URL"),
        (500, "ml-pipeline"),
    ],
)
def test_server_errors_are_one_line_naming_host_and_status(kfp_api, status, hint):
    kfp_api.fail(status)
    result = cli("schedule", "list", env={"KFP_TOKEN": TOKEN})
    line = one_line_error(result)
    assert kfp_api.url in line and f" {status} " in line and hint in line
    assert TOKEN not in result.output


def test_an_error_after_the_health_check_is_one_line_too(kfp_api):
    kfp_api.fail(500, method="POST", path="/runs", message="Internal error: workflow rejected")
    line = one_line_error(cli("submit"))
    assert "500 Internal Server Error" in line and "workflow rejected" in line
    assert kfp_api.calls("POST", "/experiments")


def test_a_server_message_that_echoes_the_token_is_masked(kfp_api):
    kfp_api.fail(400, method="POST", message=f"bad request with header Bearer {TOKEN}")
    result = cli("submit", env={"KFP_TOKEN": TOKEN})
    assert "Bearer ***" in one_line_error(result)
    assert TOKEN not in result.output


def test_an_error_kfp_raises_itself_is_one_line(kfp_api):
    for _ in range(2):  # KFP allows it; kfp.Client then cannot pick one
        kfp_api.experiments[f"id-{_}"] = {"experiment_id": f"id-{_}", "display_name": "dup"}
    line = one_line_error(cli("submit", "--experiment", "dup"))
    assert "Multiple experiments" in line and "dup" in line
    assert not kfp_api.calls("POST", "/runs")


def test_connection_refused_is_one_line():
    host = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(cli("schedule", "list", "--host", host))
    assert host in line and "connection refused" in line and "port-forward" in line


def test_a_kfp_timeout_that_is_no_number_is_one_line_naming_it():
    host = f"http://127.0.0.1:{free_port()}"  # never reached: the bound is read first
    result = cli("runs", "list", "--host", host, env={"MNIST_KFP_TIMEOUT": "30s"})
    assert one_line_error(result, exit_code=1) == "Error: MNIST_KFP_TIMEOUT='30s' is not a number"


def test_tls_to_a_plain_http_port_is_one_line(kfp_api):
    host = kfp_api.url.replace("http://", "https://")
    line = one_line_error(cli("schedule", "list", "--host", host))
    assert "TLS" in line and "http://" in line


def test_a_login_redirect_asks_for_a_token(kfp_api):
    kfp_api.respond(302, headers={"Location": "/dex/auth?client_id=kubeflow&state=x"})
    line = one_line_error(cli("schedule", "list"))
    assert "redirect to /dex/auth " in line and "token" in line and "state=x" not in line


def test_a_page_that_is_not_the_api_says_so(kfp_api):
    kfp_api.respond(200, b"<html>Kubeflow Central Dashboard</html>", path="/healthz")
    line = one_line_error(cli("schedule", "list"))
    assert "text/html instead of the KFP API" in line and "/pipeline" in line


@pytest.mark.parametrize(
    "exc, phrase",
    [
        (
            urllib3.exceptions.NameResolutionError("kfp.invalid", None, OSError("no such host")),
            "cannot resolve the host name",
        ),
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), "no answer from"),
        (urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"), "did not answer"),
        (urllib3.exceptions.ProtocolError("reset"), "lost the connection"),
    ],
)
def test_network_failures_are_described(exc, phrase):
    message = describe_failure(
        urllib3.exceptions.MaxRetryError(None, "/x", exc), KfpSettings("https://kfp.invalid")
    )
    assert phrase in message and "https://kfp.invalid" in message


def test_unrelated_exceptions_are_not_disguised():
    assert describe_failure(KeyError("bug"), KfpSettings("https://kfp.invalid")) is None


def test_token_goes_in_the_authorization_header_and_is_never_printed(monkeypatch):
    with KfpServer(token=TOKEN) as server:
        result = cli("submit", "--host", server.url, env={"KFP_TOKEN": TOKEN})
        assert result.exit_code == 0, result.output
        assert {r.headers.get("authorization") for r in server.requests} == {f"Bearer {TOKEN}"}
        assert TOKEN not in result.output
        wrong = cli("schedule", "list", "--host", server.url, "--token", "not-the-token")
        assert "401 Unauthorized" in one_line_error(wrong)


def test_token_file_is_sent_and_a_flag_beats_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with KfpServer(token=TOKEN) as server:
        result = cli(
            "schedule",
            "list",
            "--host",
            server.url,
            "--token-file",
            str(token_file),
            env={"KFP_TOKEN": "stale-token-from-env"},
        )
        assert result.exit_code == 0, result.output
        assert server.last("GET", "/recurringruns").headers["authorization"] == f"Bearer {TOKEN}"


def test_token_and_token_file_together_are_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = cli(
        "schedule",
        "list",
        "--host",
        "http://127.0.0.1:1",
        "--token",
        TOKEN,
        "--token-file",
        str(token_file),
    )
    assert result.exit_code == 2 and "not both" in result.stderr
    assert TOKEN not in result.output


def test_no_host_says_how_to_give_one():
    result = cli("schedule", "list")
    assert result.exit_code == 2
    assert "KFP_HOST" in result.stderr and "port-forward" in result.stderr


def test_multi_user_kfp_needs_a_namespace_and_uses_it(monkeypatch):
    with KfpServer(multi_user=True) as server:
        monkeypatch.setenv("KFP_HOST", server.url)
        line = one_line_error(cli("submit"))
        assert "multi-user" in line and "--namespace" in line
        assert not server.calls("POST")
        assert cli("submit", "--namespace", "alice").exit_code == 0
        assert server.last("POST", "/experiments").body["namespace"] == "alice"
        assert server.last("GET", "/experiments").arg("namespace") == "alice"
        assert cli("upload", "-n", "alice").exit_code == 0
        assert server.last("POST", "/pipelines/upload").arg("namespace") == "alice"


# -- clean -----------------------------------------------------------------------------------

RUN_OUTPUTS = [
    "datasets/mnist/train-images-idx3-ubyte.gz",
    "datasets/mnist/MANIFEST.json",
    "models/mnist/1/saved_model.pb",
    "models/mnist/1/variables/variables.index",
    "predictions/predictions.csv",
]
KEPT = ["images/7.jpg", "notes/keep.txt"]


def seed_store(store) -> None:
    for key in RUN_OUTPUTS + KEPT:
        store.put_bytes(key, b"x" * 10)


def keys(store) -> set[str]:
    return {
        info.key
        for prefix in ("datasets", "models", "predictions", "images", "notes")
        for info in store.list(prefix)
    }


def test_clean_lists_by_default_and_deletes_with_yes(s3_bucket, s3_env):
    uri = f"s3://{s3_bucket}/mnist"
    store = open_store(uri, s3_env)
    seed_store(store)
    dry = cli("clean", "--store", uri, "--s3-endpoint", s3_env)
    assert dry.exit_code == 0, dry.output
    for key in RUN_OUTPUTS:
        assert f"would delete {uri}/{key}" in dry.stdout
    assert "images/7.jpg" not in dry.stdout.split("kept")[0]
    assert "--yes" in dry.stdout and "kept 1 image(s)" in dry.stdout
    assert keys(store) == set(RUN_OUTPUTS + KEPT)

    done = cli("clean", "--store", uri, "--s3-endpoint", s3_env, "--yes")
    assert done.exit_code == 0, done.output
    assert f"deleted {len(RUN_OUTPUTS)} object(s)" in done.stdout
    assert keys(store) == set(KEPT)
    assert (
        cli("clean", "--store", uri, "--s3-endpoint", s3_env, "--yes", "--include-images").exit_code
        == 0
    )
    assert keys(store) == {"notes/keep.txt"}


def test_clean_a_local_store_removes_the_emptied_folders(tmp_path):
    store = open_store(str(tmp_path / "store"))
    seed_store(store)
    result = cli("clean", "--store", str(tmp_path / "store"), "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["images", "notes"]


def test_clean_refuses_a_bad_store_uri():
    result = cli("clean", "--store", "ftp://host/x")
    assert result.exit_code == 2 and "--store" in result.stderr
