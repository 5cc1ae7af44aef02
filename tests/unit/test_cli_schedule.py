"""`schedule` beyond create: --dry-run, apply (create, unchanged, replaced), runs of an uploaded
pipeline that follow its newest version, and JSON output; against the fake KFP API."""

from __future__ import annotations

import json

import pytest

from tests.servers import free_port
from tests.unit.test_cli_kfp import cli, one_line_error

pytestmark = pytest.mark.usefixtures("no_kfp_context")
PLAN_KEYS = {
    "name", "trigger", "next_runs", "max_concurrency", "catchup", "start", "end", "experiment",
    "parameters", "pipeline", "version",
}  # fmt: skip


def test_dry_run_shows_the_next_fire_times_with_nothing_listening():
    host = f"http://127.0.0.1:{free_port()}"
    args = ["schedule", "create", "--dry-run", "--host", host, "--cron", "0 0 2 * * *"]
    result = cli(*args, "--start", "2030-01-01T00:00:00Z", "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert set(plan) == PLAN_KEYS | {"sent"} and plan["sent"] is False
    assert plan["next_runs"] == [
        "2030-01-01T02:00:00Z",
        "2030-01-02T02:00:00Z",
        "2030-01-03T02:00:00Z",
    ]
    text = cli(*args[:-2], "--cron", "@every 1h30m", "--start", "2030-01-01T00:00:00Z").stdout
    assert text.startswith("dry run: nothing sent")
    assert "next runs (UTC):  2030-01-01T01:30:00Z, 2030-01-01T03:00:00Z" in text


@pytest.mark.parametrize("trigger", [("--cron", "0 0 0 29 2 *"), ("--interval", "86400")])
def test_a_start_near_the_last_date_lists_only_the_fire_times_there_are(trigger):
    """The next fire time after 9999-12-31 made datetime raise a bare ValueError (cron) or
    OverflowError (interval): a traceback."""
    host = f"http://127.0.0.1:{free_port()}"
    args = ["schedule", "create", "--dry-run", "--host", host, *trigger]
    result = cli(*args, "--start", "9999-12-31T12:00:00Z", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["next_runs"] == []
    text = cli(*args, "--start", "9999-12-31T12:00:00Z").stdout
    assert "next runs (UTC):  none" in text


def test_a_start_before_the_year_1_in_utc_is_a_usage_error():
    """0001-01-01T00:00:00+01:00 is in the year 0 in UTC: datetime's bare OverflowError."""
    host = f"http://127.0.0.1:{free_port()}"
    args = ["schedule", "create", "--dry-run", "--host", host, "--interval", "60"]
    result = cli(*args, "--start", "0001-01-01T00:00:00+01:00")
    assert result.exit_code == 2 and "--start" in result.output and "ISO 8601" in result.output


def test_a_cron_that_never_fires_is_refused_before_anything(kfp_api):
    result = cli("schedule", "create", "--cron", "0 0 2 31 2 *")
    assert result.exit_code == 2 and "never fires" in result.output
    assert kfp_api.requests == []


def apply(*args: str) -> dict:
    result = cli("schedule", "apply", "--name", "nightly", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_apply_creates_then_leaves_alone_then_replaces(kfp_api):
    first = apply("--cron", "@daily", "--param", "epochs=3")
    assert first["action"] == "created" and first["replaced"] == []
    again = apply("--cron", "@daily", "--param", "epochs=3")
    assert again["action"] == "unchanged"
    assert again["recurring_run_id"] == first["recurring_run_id"]
    assert len(kfp_api.calls("POST", "/recurringruns")) == 1
    changed = apply("--cron", "@daily", "--param", "epochs=5")
    assert changed["action"] == "replaced" and changed["replaced"] == [first["recurring_run_id"]]
    assert list(kfp_api.recurring_runs) == [changed["recurring_run_id"]]
    text = cli("schedule", "apply", "--name", "nightly", "--cron", "@hourly").stdout
    assert "replaced (the KFP API cannot change a recurring run in place: deleted" in text


def test_a_schedule_can_follow_the_newest_uploaded_version(kfp_api):
    assert cli("upload").exit_code == 0
    result = cli(
        "schedule", "create", "--interval", "3600", "--pipeline", "mnist-digits",
        "--follow-latest", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "latest"
    body = kfp_api.last("POST", "/recurringruns").body
    (pipeline_id,) = kfp_api.pipelines
    assert body["pipeline_version_reference"] == {"pipeline_id": pipeline_id}
    assert not body.get("pipeline_spec")


def test_a_schedule_of_a_pinned_uploaded_version(kfp_api):
    cli("upload")
    (version,) = kfp_api.versions.values()
    result = cli(
        "schedule", "create", "--interval", "3600", "--pipeline", "mnist-digits",
        "--version", version["display_name"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    reference = kfp_api.last("POST", "/recurringruns").body["pipeline_version_reference"]
    assert reference["pipeline_version_id"] == version["pipeline_version_id"]


def test_follow_latest_needs_an_uploaded_pipeline_without_a_version(kfp_api):
    result = cli("schedule", "create", "--interval", "60", "--follow-latest")
    assert result.exit_code == 2 and "--follow-latest goes with --pipeline" in result.output


def test_schedule_list_json(kfp_api):
    apply("--cron", "@daily")
    rows = json.loads(cli("schedule", "list", "-o", "json").stdout)
    assert [r["name"] for r in rows] == ["nightly"]
    assert set(rows[0]) == {"recurring_run_id", "name", "status", "trigger", "created_at", "url"}
    assert rows[0]["trigger"] == "cron @daily" and rows[0]["status"] == "ENABLED"


def test_an_unknown_uploaded_pipeline_is_one_line(kfp_api):
    line = one_line_error(cli("schedule", "create", "--interval", "60", "--pipeline", "nope"))
    assert "no uploaded pipeline named 'nope'" in line
