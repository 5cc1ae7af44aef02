"""`mnist-pipeline schedule`: recurring runs on Kubeflow (create, apply, list, enable, disable,
delete). The flags of a recurring run are in schedule_options.py, KFP's cron dialect in cron.py,
the API calls in pipeline/kfp/recurring.py."""

from __future__ import annotations

import contextlib
import datetime
import inspect

import click

from pipeline.commands.cluster_flags import options_from_flags
from pipeline.commands.connection import kfp_options
from pipeline.commands.cron import UTC, next_fire_times
from pipeline.commands.global_flags import GlobalFlagsGroup, lift
from pipeline.commands.options import SCHEDULE_KEY, renamed
from pipeline.commands.output import emit, output_option
from pipeline.commands.plan import compiled_package
from pipeline.commands.schedule_options import rfc3339, schedule_options
from pipeline.kfp.client import kfp_client
from pipeline.kfp.pipelines import resolve_uploaded
from pipeline.kfp.recurring import (
    apply_recurring_run,
    create_recurring_run,
    describe_trigger,
    find_recurring_run,
    list_recurring_runs,
    refuse_same_name,
)
from pipeline.kfp.runs import experiment_id


class CreateByDefault(GlobalFlagsGroup):
    """A group whose `create` sub-command may be left out: `schedule --cron ...`; the global
    flags may come before a sub-command's name (`schedule --host URL list`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = lift(args, self.commands)
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group("schedule", cls=CreateByDefault)
def schedule_group() -> None:
    """Run the pipeline on a schedule (KFP recurring runs), and manage the schedules.

    \b
      mnist-pipeline schedule --cron "0 0 2 * * *"     every day at 02:00:00
      mnist-pipeline schedule --interval 21600         every 6 hours
      mnist-pipeline schedule list
      mnist-pipeline schedule disable|enable|delete ID|NAME

    `schedule --cron ...` is short for `schedule create --cron ...`. KFP cron expressions have
    6 fields, seconds first (SECOND MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK), in the
    cluster's time zone (usually UTC). Connection flags (--host, --token...) go before or
    after the sub-command; see `mnist-pipeline schedule create --help`.
    """


@schedule_group.command("create", short_help="Create a recurring run (--cron or --interval).")
@click.option(
    "--name",
    "job_name",
    metavar="NAME",
    help="Name of the recurring run in the UI. [default: the pipeline's name and the trigger]",
)
@renamed("--job-name", "--name", "job_name", metavar="NAME")
@schedule_options
def create_cmd(kfp_settings, job_name: str | None, **settings) -> None:
    """Create a recurring run of the pipeline, on a cron schedule or a fixed interval.

    Everything is checked before the server is called: the cron expression (and that it ever
    fires), the times and the parameters. The pipeline is compiled and sent with the schedule,
    so later code changes do not alter it; with --pipeline it runs an uploaded version instead.
    """
    _schedule(kfp_settings, job_name, settings, apply=False)


@schedule_group.command("apply", short_help="Create or replace the recurring run named NAME.")
@click.option("--name", "job_name", required=True, metavar="NAME", help="The recurring run's name.")
@schedule_options
def apply_cmd(kfp_settings, job_name: str, **settings) -> None:
    """Make the recurring run named NAME have these settings: create it when there is none,
    leave it when it already has them, else replace it. The KFP API cannot change a recurring
    run in place, so replacing deletes it and creates a new one (a new ID); the output says so.
    For schedules kept in git (kubeflow/pipelines#3789)."""
    _schedule(kfp_settings, job_name, settings, apply=True)


def _schedule(kfp_settings, job_name: str | None, s: dict, apply: bool) -> None:
    """Check the settings `s`, print the plan (--dry-run) or create the recurring run."""
    from pipeline.dag import PIPELINE_NAME

    _refuse_conflicts(s)
    trigger = f"cron {s['cron']}" if s["cron"] else f"every {s['interval']} s"
    plan = _plan(job_name or f"{PIPELINE_NAME} {trigger}", trigger, s)
    flags = {k: s[k] for k in inspect.signature(options_from_flags).parameters}
    uploaded = s["pipeline_name"]
    if s["dry_run"]:
        if not uploaded:
            with compiled_package(flags, s["enable_caching"]):
                pass  # compiles: a pipeline that does not build fails here, not in the cluster
        emit({**plan, "sent": False}, s["output"], _show_plan)
        return
    compiled = (
        contextlib.nullcontext() if uploaded else compiled_package(flags, s["enable_caching"])
    )
    with compiled as package, kfp_client(kfp_settings) as client:
        wanted = _wanted(client, kfp_settings, plan, s, package)
        if apply:
            created, action, replaced = apply_recurring_run(client, kfp_settings.namespace, wanted)
        else:
            refuse_same_name(client, kfp_settings.namespace, wanted["job_name"])
            created, action, replaced = create_recurring_run(client, wanted), "created", []
    result = {
        **plan,
        "recurring_run_id": created.recurring_run_id,
        "url": kfp_settings.link(f"recurringrun/details/{created.recurring_run_id}"),
        "action": action,
        "replaced": replaced,
    }
    emit(result, s["output"], _show_created)


def _refuse_conflicts(s: dict) -> None:
    if (s["cron"] is None) == (s["interval"] is None):
        raise click.UsageError("give exactly one of --cron or --interval")
    if s["start"] and s["end"] and s["end"] <= s["start"]:
        raise click.BadParameter(
            f"{rfc3339(s['end'])} is not after --start {rfc3339(s['start'])}", param_hint="--end"
        )
    if s["follow_latest"] and (not s["pipeline_name"] or s["version_name"]):
        raise click.UsageError("--follow-latest goes with --pipeline and without --version")
    if s["pipeline_name"] and s["enable_caching"] is not None:
        raise click.UsageError(
            "an uploaded pipeline keeps the cache options it was compiled with: leave out "
            "--enable-caching/--disable-caching"
        )


def _plan(job_name: str, trigger: str, s: dict) -> dict:
    """The recurring run as the documented JSON keys, with its next 3 fire times."""
    from pipeline.dag import PIPELINE_NAME

    start, end = s["start"], s["end"]
    first = max(datetime.datetime.now(UTC), start) if start else datetime.datetime.now(UTC)
    fires = next_fire_times(s["cron"] or f"@every {s['interval']}s", first)
    return {
        "name": job_name,
        "trigger": trigger,
        "next_runs": [rfc3339(t) for t in fires if not end or t <= end],
        "max_concurrency": s["max_concurrency"],
        "catchup": s["catchup"],
        "start": rfc3339(start),
        "end": rfc3339(end),
        "experiment": s["experiment"] or PIPELINE_NAME,
        "parameters": s["params"],
        "pipeline": s["pipeline_name"],
        "version": "latest" if s["follow_latest"] else s["version_name"],
    }


def _wanted(client, settings, plan: dict, s: dict, package: str | None) -> dict:
    """The keyword arguments of kfp.Client.create_recurring_run for this plan."""
    if s["pipeline_name"]:
        uploaded = resolve_uploaded(client, settings, s["pipeline_name"], s["version_name"])
        version_id = None if s["follow_latest"] else uploaded.version_id
        source = {"pipeline_id": uploaded.pipeline_id, "version_id": version_id}
    else:
        source = {"pipeline_package_path": package}
    return dict(
        experiment_id=experiment_id(client, settings, plan["experiment"]),
        job_name=plan["name"],
        description=s["description"],
        start_time=plan["start"],
        end_time=plan["end"],
        interval_second=s["interval"],
        cron_expression=s["cron"],
        max_concurrency=s["max_concurrency"],
        no_catchup=not s["catchup"],
        params=s["params"],
        service_account=s["service_account"],
        **source,
    )


def _show_plan(plan: dict) -> None:
    click.echo("dry run: nothing sent")
    _show_schedule(plan)


def _show_created(result: dict) -> None:
    verb = {
        "created": "created",
        "unchanged": "unchanged: it already has these settings",
        "replaced": "replaced (the KFP API cannot change a recurring run in place: deleted "
        + ", ".join(result["replaced"])
        + ", created a new one)",
    }[result["action"]]
    click.echo(f"recurring run id: {result['recurring_run_id']} ({verb})")
    _show_schedule(result)
    click.echo(f"details:          {result['url']}")


def _show_schedule(plan: dict) -> None:
    click.echo(f"name:             {plan['name']}\ntrigger:          {plan['trigger']}")
    click.echo(f"experiment:       {plan['experiment']}")
    if plan["pipeline"]:
        click.echo(f"pipeline:         {plan['pipeline']} (version {plan['version'] or 'newest'})")
    click.echo("next runs (UTC):  " + (", ".join(plan["next_runs"]) or "none"))


@schedule_group.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)
@output_option
@kfp_options
def list_cmd(kfp_settings, limit: int, output: str) -> None:
    """List the recurring runs: id, status, trigger and name."""
    with kfp_client(kfp_settings) as client:
        found = list_recurring_runs(client, kfp_settings.namespace, limit)
    rows = [
        {
            "recurring_run_id": run.recurring_run_id,
            "name": run.display_name,
            "status": run.status,
            "trigger": describe_trigger(run.trigger),
            "created_at": run.created_at,
            "url": kfp_settings.link(f"recurringrun/details/{run.recurring_run_id}"),
        }
        for run in found
    ]

    def text(rows):
        if not rows:
            click.echo("no recurring runs")
            return
        click.echo(f"{'ID':<36}  {'STATUS':<8}  {'TRIGGER':<24}  NAME")
        for r in rows:
            click.echo(
                f"{r['recurring_run_id']:<36}  {(r['status'] or '?'):<8}  "
                f"{r['trigger']:<24}  {r['name']}"
            )

    emit(rows, output, text)


def _id_command(verb: str, method: str, help_text: str) -> click.Command:
    """`schedule <verb> ID|NAME`: one call of kfp.Client.<method> on the recurring run with
    that ID, or else that name (`schedule list` shows both)."""

    @click.argument("key", metavar="ID|NAME", type=SCHEDULE_KEY)
    @kfp_options
    def command(kfp_settings, key: str) -> None:
        with kfp_client(kfp_settings) as client:
            found = find_recurring_run(client, kfp_settings.namespace, key)
            getattr(client, method)(found.recurring_run_id)
        named = f" ({found.display_name})" if found.display_name != found.recurring_run_id else ""
        click.echo(f"{verb}d recurring run {found.recurring_run_id}{named}")

    return schedule_group.command(verb, help=help_text)(command)


enable_cmd = _id_command(
    "enable", "enable_recurring_run", "Resume a recurring run: it starts runs again on its trigger."
)
disable_cmd = _id_command(
    "disable", "disable_recurring_run", "Pause a recurring run; `enable` resumes it."
)
delete_cmd = _id_command(
    "delete", "delete_recurring_run", "Delete a recurring run for good (the runs it started stay)."
)
