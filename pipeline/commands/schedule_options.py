"""The flags of a recurring run, shared by `schedule create` and `schedule apply`: the trigger
(--cron or --interval), its window (--start, --end), how runs overlap and catch up, and what
runs (the local code compiled, or an uploaded pipeline). Each is checked as it is parsed.
"""

from __future__ import annotations

import datetime

import click

from pipeline.commands.cluster_flags import cluster_options
from pipeline.commands.connection import kfp_options
from pipeline.commands.cron import UTC, validate_cron
from pipeline.commands.options import (
    caching_option,
    param_option,
    uploaded_pipeline_options,
)
from pipeline.commands.output import output_option


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
    except (ValueError, OverflowError):  # OverflowError: in UTC it falls before the year 1
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2025-01-31T02:00:00Z"
        ) from None


_TRIGGER = (
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
)
_RUNS = (
    click.option(
        "--experiment",
        metavar="NAME",
        help="Experiment the runs go to; created if missing. [default: the pipeline's name]",
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
        help="Check everything, print the schedule and its next 3 fire times, and send nothing.",
    ),
    output_option,
    cluster_options,
    kfp_options,
)


def schedule_options(fn):
    """The settings of a recurring run, shared by `create` and `apply`."""
    for decorate in reversed(_TRIGGER + _RUNS):
        fn = decorate(fn)
    return fn
