"""`mnist-pipeline runs`: list, inspect, follow, cancel and retry runs on Kubeflow Pipelines.

The KFP API has no log endpoint: for a failed task, `runs get` prints its pod and the exact
`kubectl logs` command that reads it.
"""

from __future__ import annotations

import click

from pipeline.commands.connection import kfp_options
from pipeline.commands.follow import watch
from pipeline.commands.global_flags import GlobalFlagsGroup
from pipeline.commands.options import KFP_ID
from pipeline.commands.output import emit, output_option
from pipeline.kfp.client import kfp_client
from pipeline.kfp.runs import SUCCEEDED, list_runs, retry_run

STATES = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "SKIPPED",
    "FAILED",
    "CANCELING",
    "CANCELED",
    "PAUSED",
)
# The user's code runs in this container of a KFP v2 task's pod.
MAIN_CONTAINER = "main"


@click.group("runs", cls=GlobalFlagsGroup)
def runs_group() -> None:
    """List, inspect, follow, cancel and retry runs on Kubeflow Pipelines.

    \b
    Exit codes: 0 done (runs get --watch: and the run succeeded); 1 the run failed, was
    canceled or skipped; 2 a bad flag; 3 the KFP API could not be reached or refused the
    request; 4 --timeout passed before the run ended.
    """


def run_summary(run, link: str) -> dict:
    """The stable JSON form of a run (README: Machine-readable output)."""
    return {
        "run_id": run.run_id,
        "name": run.display_name,
        "state": run.state,
        "experiment_id": run.experiment_id,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "url": link,
        "error": getattr(run.error, "message", None) if run.error else None,
    }


def task_rows(run, namespace: str) -> list[dict]:
    """One dict per task of the run: name, state, pod, error and, when it failed, the
    command that prints its log."""
    details = getattr(run, "run_details", None)
    rows = []
    for task in (details.task_details if details and details.task_details else []) or []:
        pod = task.pod_name or next(
            (c.pod_name for c in task.child_tasks or [] if getattr(c, "pod_name", None)), None
        )
        failed = task.state == "FAILED"
        rows.append(
            {
                "name": task.display_name,
                "state": task.state,
                "pod": pod,
                "error": getattr(task.error, "message", None) if task.error else None,
                "logs": (
                    f"kubectl logs -n {namespace} {pod} -c {MAIN_CONTAINER}"
                    if failed and pod
                    else None
                ),
            }
        )
    return rows


@runs_group.command("list")
@click.option("--experiment", metavar="NAME", help="Only the runs of this experiment.")
@click.option(
    "--state",
    type=click.Choice(STATES, case_sensitive=False),
    help="Only the runs in this state (any case: failed, FAILED).",
)
@click.option(
    "--limit", type=click.IntRange(1, 200), default=20, show_default=True, help="Newest N runs."
)
@output_option
@kfp_options
def list_cmd(kfp_settings, experiment: str | None, state: str | None, limit: int, output: str):
    """The newest runs: id, state, creation time and name."""
    with kfp_client(kfp_settings) as client:
        listed = list_runs(client, kfp_settings, experiment, state, limit)
    runs = [run_summary(r, kfp_settings.link(f"runs/details/{r.run_id}")) for r in listed]

    def text(rows):
        if not rows:
            click.echo("no runs")
            return
        for r in rows:
            click.echo(
                f"{r['run_id']}  {r['state'] or '-':<10} {r['created_at'] or '-':<20} {r['name']}"
            )

    emit(runs, output, text)


@runs_group.command("get")
@click.argument("run_id", type=KFP_ID)
@click.option(
    "--watch", "watch_it", is_flag=True, help="Follow the run until it ends; exit with its outcome."
)
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="With --watch: stop following after this long (the run goes on).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: time between two looks at the run.",
)
@output_option
@kfp_options
def get_cmd(
    kfp_settings,
    run_id: str,
    watch_it: bool,
    timeout: int | None,
    poll_interval: float,
    output: str,
):
    """A run's state and its tasks; for a failed task, the command that prints its log."""
    link = kfp_settings.link(f"runs/details/{run_id}")
    with kfp_client(kfp_settings) as client:
        if watch_it:
            run = watch(client, run_id, link, timeout, poll_interval, output)
        else:
            run = client.get_run(run_id)
    namespace = kfp_settings.namespace or "kubeflow"
    data = {**run_summary(run, link), "tasks": task_rows(run, namespace)}

    def text(d):
        click.echo(
            f"run:      {d['run_id']}  {d['name']}\nstate:    {d['state']}\ndetails:  {d['url']}"
        )
        if d["error"]:
            click.echo(f"error:    {d['error']}")
        for task in d["tasks"]:
            click.echo(f"  {task['name']:<22} {task['state'] or '-'}")
            if task["logs"]:
                click.echo(f"    its log: {task['logs']}")

    emit(data, output, text)
    if watch_it and run.state != SUCCEEDED:
        raise SystemExit(1)  # the state is printed above


@runs_group.command("cancel")
@click.argument("run_id", type=KFP_ID)
@output_option
@kfp_options
def cancel_cmd(kfp_settings, run_id: str, output: str):
    """Stop a run: its running tasks are terminated (the KFP API's terminate)."""
    with kfp_client(kfp_settings) as client:
        client.terminate_run(run_id)
    emit(
        {"run_id": run_id, "action": "cancel"},
        output,
        lambda d: click.echo(
            f"canceling run {run_id}; see {kfp_settings.link(f'runs/details/{run_id}')}"
        ),
    )


@runs_group.command("retry")
@click.argument("run_id", type=KFP_ID)
@output_option
@kfp_options
def retry_cmd(kfp_settings, run_id: str, output: str):
    """Start a failed or canceled run again from its failed tasks (the KFP API's retry)."""
    with kfp_client(kfp_settings) as client:
        retry_run(client, run_id)
    emit(
        {"run_id": run_id, "action": "retry"},
        output,
        lambda d: click.echo(
            f"retrying run {run_id}; see {kfp_settings.link(f'runs/details/{run_id}')}"
        ),
    )
