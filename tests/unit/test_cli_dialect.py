"""One CLI dialect, as kubectl and the KFP CLI speak it: -o/--output is a format and a file is
FILE or --output-file; --host is the KFP API and `ui` listens on --bind; one name flag. The old
spellings keep working for a release, each with one deprecation line on stderr."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.unit.test_cli_kfp import cli, one_line_error
from tests.unit.test_cli_runs import submitted

pytestmark = pytest.mark.usefixtures("no_kfp_context")


def deprecation(result, old: str, new: str) -> None:
    """Exactly one line on stderr says `old` is deprecated and names `new`."""
    lines = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"warning: {old} is deprecated") and new in lines[0]


# -- compile: FILE or --output-file; -o is a format everywhere else ---------------------------


@pytest.mark.parametrize("how", [["FILE"], ["--output-file", "FILE"]])
def test_compile_writes_the_file_given_as_argument_or_output_file(tmp_path, how):
    target = tmp_path / "sub" / "p.yaml"
    result = cli("compile", *[str(target) if a == "FILE" else a for a in how], "--no-gpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {target}"
    assert "deprecated" not in result.stderr
    assert next(yaml.safe_load_all(target.read_text()))["pipelineInfo"]["name"]


@pytest.mark.parametrize("flag", ["-o", "--output"])
def test_compiles_old_output_flag_still_writes_the_file_and_says_it_is_deprecated(tmp_path, flag):
    target = tmp_path / "p.yaml"
    result = cli("compile", flag, str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file()
    deprecation(result, "-o/--output", "--output-file")


@pytest.mark.parametrize(
    "args",
    [["a.yaml", "--output-file", "b.yaml"], ["--output-file", "b.yaml", "-o", "c.yaml"]],
)
def test_compile_refuses_two_files(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = cli("compile", *args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, old",
    [(["compile"], "-o, --output"), (["ui"], "--host"), (["schedule", "create"], "--job-name")],
)
def test_old_spellings_are_not_offered_in_help(command, old):
    options = [
        line.split()[0].rstrip(",")
        for line in cli(*command, "--help").output.splitlines()
        if line.startswith("  -")
    ]
    assert old.split(",")[0] not in options and options


# -- ui: --bind listens; --host is the KFP API everywhere else --------------------------------


@pytest.fixture
def listening(monkeypatch):
    """Where `ui` would listen: make_server records (host, port) instead of serving."""
    seen = []

    class Server:
        def run(self):
            pass

    def make_server(app, host, port, limits=None):
        seen.append((host, port))
        return Server()

    monkeypatch.setattr("pipeline.ui.server.make_server", make_server)
    return seen


UI = ["ui", "--serving-url", "http://127.0.0.1:9", "--no-check"]


def test_ui_listens_on_bind(listening):
    result = cli(*UI, "--bind", "0.0.0.0", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert listening == [("0.0.0.0", 8123)]
    assert "at http://0.0.0.0:8123/" in result.stderr and "deprecated" not in result.stderr


def test_uis_old_host_flag_still_binds_and_says_it_is_deprecated(listening):
    result = cli(*UI, "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert listening == [("0.0.0.0", 8000)]
    deprecation(result, "--host", "--bind")


def test_ui_refuses_host_and_bind_together(listening):
    result = cli(*UI, "--host", "0.0.0.0", "--bind", "127.0.0.1")
    assert result.exit_code == 2 and "give --bind alone" in result.stderr
    assert listening == []


# -- schedule create: one name flag, --name, as `apply` has ----------------------------------


def test_schedule_create_takes_name_and_the_old_job_name(kfp_api):
    assert cli("schedule", "--cron", "0 0 2 * * *", "--name", "nightly").exit_code == 0
    old = cli("schedule", "create", "--interval", "3600", "--job-name", "hourly")
    assert old.exit_code == 0, old.output
    deprecation(old, "--job-name", "--name")
    names = sorted(r["display_name"] for r in kfp_api.recurring_runs.values())
    assert names == ["hourly", "nightly"]
    both = cli("schedule", "create", "--interval", "60", "--name", "a", "--job-name", "b")
    assert both.exit_code == 2 and len(kfp_api.recurring_runs) == 2


# -- enum values in any case ------------------------------------------------------------------


def test_enum_values_are_case_insensitive(kfp_api):
    ids = [submitted(kfp_api, "--run-name", f"r{i}")["run_id"] for i in range(2)]
    kfp_api.runs[ids[0]]["state"] = "FAILED"
    for state in ("failed", "Failed", "FAILED"):
        result = cli("runs", "list", "--state", state, "-o", "JSON")
        assert result.exit_code == 0, result.output
        assert [r["run_id"] for r in json.loads(result.stdout)] == [ids[0]]


# -- global flags before or after the sub-command -------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["schedule", "list", "--host", "{url}", "-o", "json"],
        ["schedule", "--host", "{url}", "list", "-o", "json"],
        ["schedule", "--host={url}", "-o", "json", "list"],
        ["--host", "{url}", "schedule", "-o", "json", "list"],
        ["-o", "json", "--host", "{url}", "schedule", "list"],
    ],
)
def test_global_flags_work_before_or_after_the_sub_command(kfp_api, monkeypatch, args):
    monkeypatch.delenv("KFP_HOST")
    assert cli("schedule", "--interval", "60", "--name", "a", "--host", kfp_api.url).exit_code == 0
    result = cli(*[a.format(url=kfp_api.url) for a in args])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["a"]


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--host", "{url}", "-n", "team", "list"],
        ["--host", "{url}", "--namespace", "team", "runs", "list"],
        ["runs", "list", "-n", "team", "--host", "{url}"],
    ],
)
def test_runs_take_the_connection_flags_before_the_sub_command(kfp_api, monkeypatch, args):
    monkeypatch.delenv("KFP_HOST")
    result = cli(*[a.format(url=kfp_api.url) for a in args])
    assert result.exit_code == 0, result.output
    assert kfp_api.last("GET", "/runs").query.get("namespace") == ["team"]


def test_schedule_without_a_sub_command_still_creates(kfp_api):
    result = cli("--host", kfp_api.url, "schedule", "--cron", "0 0 2 * * *", "--name", "n")
    assert result.exit_code == 0, result.output
    assert [r["display_name"] for r in kfp_api.recurring_runs.values()] == ["n"]


def test_a_flag_the_sub_command_does_not_take_is_a_usage_error(kfp_api):
    result = cli("--host", kfp_api.url, "compile", "x.yaml")
    assert result.exit_code == 2 and "--host" in result.stderr


# -- --dry-run needs no cluster ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--param", "epochs=3"],
        ["upload"],
        ["tune", "--max-trials", "2"],
        ["schedule", "--cron", "0 0 2 * * *"],
        ["schedule", "apply", "--name", "nightly", "--interval", "3600"],
    ],
)
def test_a_dry_run_needs_no_host(args):
    text = cli(*args, "--dry-run")
    assert text.exit_code == 0, text.output
    if args[0] != "schedule":  # a schedule's plan names no host
        assert "nothing sent to a KFP API (no --host given)" in text.stdout
    data = cli(*args, "--dry-run", "-o", "json")
    assert data.exit_code == 0, data.output
    plan = json.loads(data.stdout)
    assert plan["sent"] is False and plan.get("host") is None


def test_without_dry_run_no_host_is_still_a_usage_error():
    result = cli("submit")
    assert result.exit_code == 2 and "no KFP API given" in result.stderr


# -- schedule: no duplicate by accident; found by name or ID ---------------------------------


def test_creating_the_same_schedule_twice_is_refused_and_sends_nothing(kfp_api):
    assert cli("schedule", "--cron", "0 0 2 * * *").exit_code == 0
    again = cli("schedule", "--cron", "0 0 2 * * *")
    line = one_line_error(again, exit_code=2)
    assert "a recurring run named 'mnist-digits cron 0 0 2 * * *' exists" in line
    assert "schedule apply --name" in line
    assert len(kfp_api.recurring_runs) == 1
    assert cli("schedule", "--cron", "0 0 2 * * *", "--name", "second").exit_code == 0
    assert len(kfp_api.recurring_runs) == 2


@pytest.mark.parametrize("verb, status", [("disable", "DISABLED"), ("enable", "ENABLED")])
def test_enable_and_disable_find_a_schedule_by_name_or_id(kfp_api, verb, status):
    cli("schedule", "--interval", "3600", "--name", "hourly run")
    cli("schedule", "--interval", "60", "--name", "other")
    (hourly,) = [i for i, r in kfp_api.recurring_runs.items() if r["display_name"] == "hourly run"]
    for key in ("hourly run", hourly):
        result = cli("schedule", verb, key)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"{verb}d recurring run {hourly} (hourly run)"
        assert kfp_api.recurring_runs[hourly]["status"] == status
        assert kfp_api.last("POST", f":{verb}").path.endswith(f"/recurringruns/{hourly}:{verb}")


def test_a_name_two_schedules_share_or_none_has_is_one_line_and_touches_nothing(kfp_api):
    cli("schedule", "--interval", "3600", "--name", "twin")
    cli("schedule", "apply", "--interval", "60", "--name", "x")
    kfp_api.recurring_runs[
        next(i for i, r in kfp_api.recurring_runs.items() if r["display_name"] == "x")
    ]["display_name"] = "twin"
    before = {i: dict(r) for i, r in kfp_api.recurring_runs.items()}
    line = one_line_error(cli("schedule", "delete", "twin"), exit_code=2)
    assert "2 recurring runs are named 'twin': give one ID (" in line
    assert one_line_error(cli("schedule", "delete", "nothing"), exit_code=2)
    assert kfp_api.recurring_runs == before


@pytest.mark.parametrize("key", ["", "a\x1b[2Jb", "x" * 300])
def test_a_key_that_is_no_id_or_name_is_a_usage_error(kfp_api, key):
    result = cli("schedule", "delete", key)
    assert result.exit_code == 2 and "\x1b" not in result.output
    assert kfp_api.requests == []


# -- paths as a person typed them -------------------------------------------------------------


def test_paths_under_the_working_folder_are_shown_relative(tmp_path, monkeypatch):
    from pipeline.console import short_path

    monkeypatch.chdir(tmp_path)
    assert short_path(str(tmp_path / "mnist-store/models/mnist/1")) == "mnist-store/models/mnist/1"
    assert short_path("/elsewhere/store") == "/elsewhere/store"
    assert short_path("s3://bucket/mnist/models/mnist/1") == "s3://bucket/mnist/models/mnist/1"
    assert short_path("mnist-store") == "mnist-store"
