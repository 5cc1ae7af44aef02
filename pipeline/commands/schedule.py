"""`mnist-pipeline schedule`: recurring runs on Kubeflow (create, list, enable, disable, delete)."""

from __future__ import annotations

import contextlib
import datetime
import inspect
import math
import re
from fractions import Fraction

import click

from components.common.redact import printable
from pipeline.commands.kfp_connection import kfp_client
from pipeline.commands.kfp_options import (
    caching_option,
    compiled_package,
    kfp_options,
    param_option,
    quietly,
    resolve_uploaded,
    uploaded_pipeline_options,
)
from pipeline.commands.options import KFP_ID, cluster_options, options_from_flags
from pipeline.commands.output import emit, output_option

# KFP's cron (robfig/cron) has six fields, seconds first; its day of week counts from Sunday = 0.
CRON_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
CRON_LAYOUT = "SECOND MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(_MONTHS)},
    "day of week": {d: i for i, d in enumerate(_DAYS)},
}
# ASCII only: Go's strconv.Atoi takes no other digits, and "ſun".upper() is "SUN" in Python.
_ITEM = re.compile(r"^(?:[*?]|(\w+)(?:-(\w+))?)(?:/(\d+))?$", re.ASCII)
UTC = datetime.timezone.utc


# The descriptors KFP's cron parser (robfig/cron) takes besides 6 fields, as 6 fields.
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+)$", re.ASCII)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", re.ASCII)
_NANOS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 1000, "µs": 1000}
_MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration: about 292 years


def _every_nanos(expr: str) -> int | None:
    """The duration of `@every 1h30m` in nanoseconds as Go parses it (fractions of a
    nanosecond dropped), or None when `expr` is not of that form."""
    match = _EVERY.match(expr.strip())
    if not match:
        return None
    parts = _DURATION_PART.findall(match[1])
    return sum(math.floor(Fraction(n) * _NANOS.get(unit, 1)) for n, unit in parts)


def every_seconds(expr: str) -> int | None:
    """The period of `@every 1h30m` (Go's duration syntax) in whole seconds, or None.

    robfig/cron rounds the duration down to whole seconds, so `@every 1.5s` fires every second.
    """
    nanos = _every_nanos(expr)
    return None if nanos is None else nanos // 10**9


def next_fire_times(expr: str, after: datetime.datetime, count: int = 3) -> list:
    """The next `count` times (UTC) `expr` fires after `after`; ValueError if it never does.

    For 6 fields this is croniter with the seconds first; day of month and day of week, when
    both are restricted, match either (as in robfig/cron). `@every D` fires every D from when
    the schedule starts.
    """
    period = every_seconds(expr)
    if period is not None:
        return [after + datetime.timedelta(seconds=period * (k + 1)) for k in range(count)]
    from croniter import CroniterBadDateError, croniter

    fields = DESCRIPTORS.get(expr.strip(), expr).replace("?", "*")
    try:
        it = croniter(fields, after, second_at_beginning=True, max_years_between_matches=8)
        return [it.get_next(datetime.datetime).astimezone(UTC) for _ in range(count)]
    except CroniterBadDateError:
        raise ValueError(
            f'"{expr}" never fires: no date matches it (such as February 30 or 31)'
        ) from None


def validate_cron(expr: str) -> str:
    """Return the KFP cron expression `expr` (6 fields, or a descriptor such as @daily or
    @every 1h30m), or raise ValueError saying what is wrong, including when it never fires."""
    expr = expr.strip()
    shown = printable(expr)
    if expr.startswith("@"):
        period = every_seconds(expr)
        if expr not in DESCRIPTORS and period is None:
            raise ValueError(
                f'"{shown}" is not a KFP cron descriptor: use {", ".join(DESCRIPTORS)} or '
                '"@every 1h30m" (units h, m, s)'
            )
        if period is not None and period < 1:
            raise ValueError(f'"{shown}" fires more than once a second')
        if period is not None and _every_nanos(expr) > _MAX_DURATION_NS:
            raise ValueError(f'"{shown}" is longer than Go\'s longest duration (about 292 years)')
        # robfig/cron takes exactly one space after @every
        return expr if period is None else "@every " + _EVERY.match(expr)[1]
    fields = expr.split()
    if len(fields) != 6:
        hint = (
            f'; for this crontab line, add the seconds in front: "0 {printable(" ".join(fields))}"'
            if len(fields) == 5
            else '; e.g. "0 0 2 * * *" is every day at 02:00:00'
        )
        raise ValueError(
            f'"{shown}" has {len(fields)} field(s), but KFP cron takes 6, seconds '
            f"first: {CRON_LAYOUT}{hint}"
        )
    for text, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            _check_cron_item(item, name, low, high)
    expr = " ".join(fields)
    next_fire_times(expr, datetime.datetime.now(UTC), 1)  # raises if it can never fire
    return expr


def _check_cron_item(item: str, name: str, low: int, high: int) -> None:
    match = _ITEM.match(item)
    if not match:
        raise ValueError(f"{name} {item!r} is not *, ?, N, N-M or one of them with /STEP")
    first, last, step = match.groups()
    if step is not None and int(step) == 0:
        raise ValueError(f"{name} {item!r} has a step of 0")
    if step is not None and int(step) > high - low + 1:
        raise ValueError(f"{name} {item!r} has a step larger than its range {low}-{high}")
    values = []
    for token in (first, last):
        if token is None:
            continue
        value = int(token) if token.isdigit() else _NAMES.get(name, {}).get(token.upper())
        if value is None or not low <= value <= high:
            raise ValueError(f"{name} {token!r} is out of range: {low}-{high}")
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        raise ValueError(f"{name} {item!r} is a reversed range: KFP's cron takes N-M with N <= M")


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time as an aware UTC datetime; a time without a zone is taken as UTC."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not take "Z"
    moment = datetime.datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def rfc3339(moment: datetime.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _cron_callback(ctx, param, value: str | None) -> str | None:
    try:
        return validate_cron(value) if value is not None else None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _time_callback(ctx, param, value: str | None) -> datetime.datetime | None:
    try:
        return parse_time(value) if value else None
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2025-01-31T02:00:00Z"
        ) from None


class CreateByDefault(click.Group):
    """A group whose `create` sub-command may be left out: `schedule --cron ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
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
      mnist-pipeline schedule disable|enable|delete ID

    `schedule --cron ...` is short for `schedule create --cron ...`. KFP cron expressions have
    6 fields, seconds first (SECOND MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK), in the
    cluster's time zone (usually UTC). Connection flags (--host, --token...) go after the
    sub-command; see `mnist-pipeline schedule create --help`.
    """


def schedule_options(fn):
    """The settings of a recurring run, shared by `create` and `apply`."""
    for decorate in reversed(
        (
            click.option(
                "--cron",
                callback=_cron_callback,
                metavar='"S M H DOM MON DOW"',
                help='6-field cron, seconds first: "0 0 2 * * *" is every day at 02:00:00, '
                '"0 30 6 * * 1-5" is weekdays at 06:30:00; or @daily, @hourly, @every 1h30m.',
            ),
            click.option(
                "--interval",
                type=click.IntRange(min=1),
                metavar="SECONDS",
                help="Or: start a run every SECONDS seconds.",
            ),
            click.option(
                "--max-concurrency",
                type=click.IntRange(1, 10),
                default=1,
                show_default=True,
                help="How many runs of this schedule may run at once (KFP allows 1 to 10).",
            ),
            click.option(
                "--catchup/--no-catchup",
                default=True,
                show_default=True,
                help="After a pause or an outage, start every missed run (--catchup) or only "
                "the latest one (--no-catchup).",
            ),
            click.option(
                "--start",
                callback=_time_callback,
                metavar="TIME",
                help="Do not fire before TIME, ISO 8601 (2025-01-31T02:00:00Z; no zone = UTC).",
            ),
            click.option(
                "--end",
                callback=_time_callback,
                metavar="TIME",
                help="Do not fire after TIME, ISO 8601.",
            ),
            click.option(
                "--experiment",
                metavar="NAME",
                help="Experiment the runs go to; created if missing. [default: the pipeline's "
                "name]",
            ),
            click.option("--description", metavar="TEXT", help="Description of the recurring run."),
            param_option,
            click.option(
                "--service-account",
                metavar="NAME",
                help="Kubernetes service account the runs' pods use. [default: the namespace's]",
            ),
            uploaded_pipeline_options,
            click.option(
                "--follow-latest",
                is_flag=True,
                help="With --pipeline and no --version: each run takes the pipeline's newest "
                "version at the time (KFP 2.5 and later; kubeflow/pipelines#11542).",
            ),
            caching_option,
            click.option(
                "--dry-run",
                is_flag=True,
                help="Check everything, print the schedule and its next 3 fire times, and "
                "send nothing.",
            ),
            output_option,
            cluster_options,
            kfp_options,
        )
    ):
        fn = decorate(fn)
    return fn


@schedule_group.command("create", short_help="Create a recurring run (--cron or --interval).")
@click.option(
    "--job-name",
    metavar="NAME",
    help="Name of the recurring run in the UI. [default: the pipeline's name and the trigger]",
)
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
    from pipeline.dag import PIPELINE_NAME

    cron, interval, start, end = s["cron"], s["interval"], s["start"], s["end"]
    if (cron is None) == (interval is None):
        raise click.UsageError("give exactly one of --cron or --interval")
    if start and end and end <= start:
        raise click.BadParameter(
            f"{rfc3339(end)} is not after --start {rfc3339(start)}", param_hint="--end"
        )
    uploaded = s["pipeline_name"]
    if s["follow_latest"] and (not uploaded or s["version_name"]):
        raise click.UsageError("--follow-latest goes with --pipeline and without --version")
    if uploaded and s["enable_caching"] is not None:
        raise click.UsageError(
            "an uploaded pipeline keeps the cache options it was compiled with: leave out "
            "--enable-caching/--disable-caching"
        )
    trigger = f"cron {cron}" if cron else f"every {interval} s"
    experiment = s["experiment"] or PIPELINE_NAME
    job_name = job_name or f"{PIPELINE_NAME} {trigger}"
    now = datetime.datetime.now(UTC)
    first = max(now, start) if start else now
    fires = (
        next_fire_times(cron, first)
        if cron
        else [first + datetime.timedelta(seconds=interval * (k + 1)) for k in range(3)]
    )
    plan = {
        "name": job_name,
        "trigger": trigger,
        "next_runs": [rfc3339(t) for t in fires if not end or t <= end],
        "max_concurrency": s["max_concurrency"],
        "catchup": s["catchup"],
        "start": rfc3339(start),
        "end": rfc3339(end),
        "experiment": experiment,
        "parameters": s["params"],
        "pipeline": uploaded,
        "version": "latest" if s["follow_latest"] else s["version_name"],
    }
    flags = {k: s[k] for k in inspect.signature(options_from_flags).parameters}
    output = s["output"]
    if s["dry_run"]:
        if not uploaded:
            with compiled_package(flags, s["enable_caching"]):
                pass  # compiles: a pipeline that does not build fails here, not in the cluster
        emit({**plan, "sent": False}, output, _show_plan)
        return
    compiled = (
        contextlib.nullcontext() if uploaded else compiled_package(flags, s["enable_caching"])
    )
    with compiled as package, kfp_client(kfp_settings) as client:
        experiment_id = quietly(
            client.create_experiment, experiment, namespace=kfp_settings.namespace
        ).experiment_id
        source = _pipeline_source(client, kfp_settings, s, package)
        wanted = dict(
            experiment_id=experiment_id,
            job_name=job_name,
            description=s["description"],
            start_time=rfc3339(start),
            end_time=rfc3339(end),
            interval_second=interval,
            cron_expression=cron,
            max_concurrency=s["max_concurrency"],
            no_catchup=not s["catchup"],
            params=s["params"],
            service_account=s["service_account"],
            **source,
        )
        action, replaced = "created", []
        if apply:
            same_name = [
                r
                for r in list_recurring_runs(client, kfp_settings.namespace, 500)
                if r.display_name == job_name
            ]
            if len(same_name) == 1 and _unchanged(client, same_name[0], wanted):
                created, action = same_name[0], "unchanged"
            else:
                for old in same_name:
                    client.delete_recurring_run(old.recurring_run_id)
                    replaced.append(old.recurring_run_id)
                action = "replaced" if replaced else "created"
        if action != "unchanged":
            created = _create_recurring_run(client, wanted)
    result = {
        **plan,
        "recurring_run_id": created.recurring_run_id,
        "url": kfp_settings.link(f"recurringrun/details/{created.recurring_run_id}"),
        "action": action,
        "replaced": replaced,
    }
    emit(result, output, _show_created)


def _pipeline_source(client, settings, s: dict, package: str | None) -> dict:
    if not s["pipeline_name"]:
        return {"pipeline_package_path": package}
    pipeline_id, version_id, _ = resolve_uploaded(
        client, settings, s["pipeline_name"], s["version_name"]
    )
    return {"pipeline_id": pipeline_id, "version_id": None if s["follow_latest"] else version_id}


def _create_recurring_run(client, wanted: dict):
    """kfp.Client.create_recurring_run, except for a recurring run that follows the newest
    version of an uploaded pipeline (a version reference without a version id), which kfp's
    client does not make: that body is made here and sent through the same API object."""
    if wanted.get("pipeline_id") and not wanted.get("version_id"):
        import kfp_server_api as api

        cron, interval = wanted["cron_expression"], wanted["interval_second"]
        times = {"start_time": wanted["start_time"], "end_time": wanted["end_time"]}
        trigger = (
            api.V2beta1Trigger(cron_schedule=api.V2beta1CronSchedule(cron=cron, **times))
            if cron
            else api.V2beta1Trigger(
                periodic_schedule=api.V2beta1PeriodicSchedule(interval_second=interval, **times)
            )
        )
        body = api.V2beta1RecurringRun(
            experiment_id=wanted["experiment_id"],
            display_name=wanted["job_name"],
            description=wanted["description"],
            mode=api.RecurringRunMode.ENABLE,
            pipeline_version_reference=api.V2beta1PipelineVersionReference(
                pipeline_id=wanted["pipeline_id"]
            ),
            runtime_config=api.V2beta1RuntimeConfig(parameters=wanted["params"]),
            trigger=trigger,
            max_concurrency=wanted["max_concurrency"],
            no_catchup=wanted["no_catchup"],
            service_account=wanted["service_account"],
        )
        return client._recurring_run_api.recurring_run_service_create_recurring_run(body)
    return client.create_recurring_run(**wanted)


def _unchanged(client, existing, wanted: dict) -> bool:
    """Whether the recurring run `existing` already has the settings in `wanted`."""
    trigger = existing.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    interval = (
        int(trigger.periodic_schedule.interval_second)
        if trigger and trigger.periodic_schedule and trigger.periodic_schedule.interval_second
        else None
    )
    parameters = (existing.runtime_config.parameters if existing.runtime_config else None) or {}
    same = (
        cron == wanted["cron_expression"]
        and interval == wanted["interval_second"]
        and int(existing.max_concurrency or 1) == wanted["max_concurrency"]
        and bool(existing.no_catchup) == wanted["no_catchup"]
        and (existing.service_account or None) == (wanted["service_account"] or None)
        and (existing.description or None) == (wanted["description"] or None)
        and existing.experiment_id == wanted["experiment_id"]
        and parameters == wanted["params"]
    )
    if not same:
        return False
    if wanted.get("pipeline_package_path"):
        sent = client._create_job_config(
            params=wanted["params"],
            pipeline_package_path=wanted["pipeline_package_path"],
            pipeline_id=None,
            version_id=None,
            enable_caching=None,
            cache_key=None,
            pipeline_root=None,
        ).pipeline_spec
        return _canonical(existing.pipeline_spec) == _canonical(sent)
    reference = existing.pipeline_version_reference
    return bool(reference) and (reference.pipeline_id, reference.pipeline_version_id or None) == (
        wanted["pipeline_id"],
        wanted["version_id"],
    )


def _canonical(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


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
    click.echo("next runs (UTC):  " + ", ".join(plan["next_runs"]))


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


def list_recurring_runs(client, namespace: str | None, limit: int) -> list:
    """Up to `limit` recurring runs, newest first, following the server's pages."""
    found, token = [], ""
    while len(found) < limit:
        page = client.list_recurring_runs(
            page_token=token,
            page_size=min(limit, 100),
            sort_by="created_at desc",
            namespace=namespace,
        )
        found += page.recurring_runs or []
        token = page.next_page_token
        if not token:
            break
    return found[:limit]


def describe_trigger(trigger) -> str:
    """`cron 0 0 2 * * *` or `every 3600 s` from a V2beta1Trigger."""
    if trigger and trigger.cron_schedule and trigger.cron_schedule.cron:
        return f"cron {trigger.cron_schedule.cron}"
    if trigger and trigger.periodic_schedule and trigger.periodic_schedule.interval_second:
        return f"every {trigger.periodic_schedule.interval_second} s"
    return "?"


def _id_command(verb: str, method: str, help_text: str) -> click.Command:
    """`schedule <verb> ID`: one call of kfp.Client.<method> on a recurring run."""

    @click.argument("recurring_run_id", metavar="ID", type=KFP_ID)
    @kfp_options
    def command(kfp_settings, recurring_run_id: str) -> None:
        with kfp_client(kfp_settings) as client:
            getattr(client, method)(recurring_run_id)
        click.echo(f"{verb}d recurring run {recurring_run_id}")

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
