"""Saying which run was started, and following it to its end: shared by `submit`, `tune` and
`runs get --watch`.

The run goes on in the cluster whatever happens here: a --timeout or Ctrl-C stops only the
following, and says so with the run's link.
"""

from __future__ import annotations

import click

from components.common.errors import StepError
from pipeline.commands.output import emit, note
from pipeline.kfp.runs import SUCCEEDED, follow_run
from pipeline.kfp.settings import KfpSettings

EXIT_INTERRUPTED = 130


class RunNotSucceeded(StepError, RuntimeError):
    """The followed run failed, was canceled or skipped: exit 1, its error and link."""


def watch(client, run_id: str, link: str, timeout: int | None, poll_interval: float, output: str):
    """Follow the run, printing each state change; returns the last V2beta1Run. Ctrl-C stops
    following (exit 130) and leaves the run going."""
    try:
        return follow_run(
            client,
            run_id,
            link,
            timeout,
            poll_interval,
            say=lambda line: note(line, output),
            warn=lambda line: click.echo(line, err=True),
        )
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; the run goes on in the cluster: {link}", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def report_run(
    client,
    settings: KfpSettings,
    run: dict,
    *,
    wait: bool,
    timeout: int | None,
    poll_interval: float,
    output: str,
) -> None:
    """Say which run was started (text, or the documented JSON/YAML keys); with `wait`, follow
    it and fail unless it succeeds. `run` holds its run_id, run_name and experiment."""
    run_id, run_name, experiment = run["run_id"], run["run_name"], run["experiment"]
    link = settings.link(f"runs/details/{run_id}")
    submitted = {"run_id": run_id, "run_name": run_name, "experiment": experiment, "url": link}
    if output == "text":
        click.echo(
            f"run id:     {run_id}\nrun name:   {run_name}\n"
            f"experiment: {experiment}\ndetails:    {link}"
        )
    ended = watch(client, run_id, link, timeout, poll_interval, output) if wait else None
    if output != "text":
        emit({**submitted, "state": ended.state if ended else None}, output, lambda d: None)
    if ended is not None and ended.state != SUCCEEDED:
        message = getattr(ended.error, "message", None) if ended.error else None
        reason = f": {message}" if message else ""
        raise RunNotSucceeded(f"run {ended.state.lower()}{reason}; see {link}")
