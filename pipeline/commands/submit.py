"""`mnist-pipeline submit`: compile the pipeline, start a run on Kubeflow, optionally follow it."""

from __future__ import annotations

import contextlib
import datetime
import time

import click

from pipeline.commands.kfp_connection import kfp_client
from pipeline.commands.kfp_errors import is_transient
from pipeline.commands.kfp_options import (
    caching_option,
    compiled_package,
    kfp_options,
    param_option,
    quietly,
    resolve_uploaded,
    uploaded_pipeline_options,
)
from pipeline.commands.options import cluster_options
from pipeline.commands.output import emit, note, output_option

EXIT_RUN_FAILED, EXIT_WAIT_TIMEOUT, EXIT_INTERRUPTED = 1, 4, 130
SUCCEEDED = "SUCCEEDED"
ENDED = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
MAX_POLL_FAILURES = 3  # consecutive transient API errors tolerated while following a run


@click.command("submit")
@click.option(
    "--experiment",
    metavar="NAME",
    help="Experiment to file the run under; created if missing. [default: the pipeline's name]",
)
@click.option(
    "--run-name",
    metavar="NAME",
    help="Name shown in the UI. [default: the pipeline's name and the UTC time]",
)
@param_option
@click.option(
    "--service-account",
    metavar="NAME",
    help="Kubernetes service account the run's pods use. [default: the namespace's]",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the run, print each state change, and exit with its outcome.",
)
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="With --wait: stop following after this long (the run goes on). [default: no limit]",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: time between two looks at the run.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Compile and check the parameters, print what would be sent, and stop: no API call.",
)
@uploaded_pipeline_options
@caching_option
@output_option
@cluster_options
@kfp_options
def submit_cmd(
    kfp_settings,
    experiment: str | None,
    run_name: str | None,
    params: dict,
    service_account: str | None,
    wait: bool,
    timeout: int | None,
    poll_interval: float,
    dry_run: bool,
    pipeline_name: str | None,
    version_name: str | None,
    enable_caching: bool | None,
    output: str,
    **flags,
) -> None:
    """Compile the pipeline and start a run of it on Kubeflow Pipelines.

    Prints the run's id and its link in the KFP UI. Parameters are checked before anything is
    sent, so a typo fails at once.

    \b
      export KFP_HOST=http://localhost:8080     # after a port-forward, or your Kubeflow URL
      mnist-pipeline submit --param epochs=3 --param store_uri=s3://mlpipeline/mnist --wait

    \b
    Exit codes: 0 submitted (with --wait: and succeeded); 1 the run failed, was canceled
    or skipped; 2 a bad flag or parameter; 3 the KFP API could not be reached or refused
    the request; 4 --timeout passed before the run ended.
    """
    from pipeline.dag import PIPELINE_NAME

    experiment = experiment or PIPELINE_NAME
    run_name = run_name or f"{PIPELINE_NAME} {_utc_stamp()}"
    if dry_run:
        if pipeline_name:
            raise click.UsageError("--dry-run compiles the local code: leave out --pipeline")
        with compiled_package(flags, enable_caching) as package:
            plan = dry_run_plan(package, kfp_settings, experiment, run_name, params)
        emit(plan, output, _show_plan)
        return
    if pipeline_name and enable_caching is not None:
        raise click.UsageError(
            "an uploaded pipeline keeps the cache options it was compiled with: leave out "
            "--enable-caching/--disable-caching, or upload a version compiled with them"
        )
    compiled = (
        contextlib.nullcontext() if pipeline_name else compiled_package(flags, enable_caching)
    )
    with compiled as package, kfp_client(kfp_settings) as client:
        if pipeline_name:
            result = _run_uploaded(
                client, kfp_settings, pipeline_name, version_name, experiment, run_name,
                params, service_account, output,
            )  # fmt: skip
        else:
            result = quietly(
                client.create_run_from_pipeline_package,
                package,
                arguments=params,
                run_name=run_name,
                experiment_name=experiment,
                namespace=kfp_settings.namespace,
                service_account=service_account,
            )
        report_run(
            client, kfp_settings, result.run_id, run_name, experiment,
            wait, timeout, poll_interval, output,
        )  # fmt: skip


def report_run(
    client, settings, run_id, run_name, experiment, wait, timeout, poll_interval, output
) -> None:
    """Say which run was started (text, or the documented JSON/YAML keys); with `wait`,
    follow it and exit with its outcome. Shared by `submit` and `tune`."""
    link = settings.link(f"runs/details/{run_id}")
    submitted = {
        "run_id": run_id,
        "run_name": run_name,
        "experiment": experiment,
        "url": link,
        "state": None,
    }
    if output == "text":
        click.echo(
            f"run id:     {run_id}\nrun name:   {run_name}\n"
            f"experiment: {experiment}\ndetails:    {link}"
        )
    run = None
    if wait:
        run = follow_run(client, run_id, link, timeout, poll_interval, lambda x: note(x, output))
        submitted["state"] = run.state
    if output != "text":
        emit(submitted, output, lambda d: None)
    if wait:
        _exit_with_outcome(run, link)


def _run_uploaded(client, settings, name, version, experiment, run_name, params, account, output):
    """Start a run of an uploaded pipeline version (the newest unless `version` names one)."""
    pipeline_id, version_id, version_name = resolve_uploaded(client, settings, name, version)
    note(f"pipeline:   {name}, version {version_name}", output)
    experiment_id = quietly(
        client.create_experiment, experiment, namespace=settings.namespace
    ).experiment_id
    return quietly(
        client.run_pipeline,
        experiment_id,
        run_name,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=account,
    )


def dry_run_plan(package: str, settings, experiment: str, run_name: str, params: dict) -> dict:
    """What `submit` would send: the pipeline, where, and every parameter's value."""
    import yaml

    with open(package) as f:
        spec = next(yaml.safe_load_all(f))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    values = {
        name: _typed(name, params.get(name, d.get("defaultValue")))
        for name, d in sorted(inputs.items())
    }
    return {
        "pipeline": spec["pipelineInfo"]["name"],
        "host": settings.host,
        "namespace": settings.namespace,
        "experiment": experiment,
        "run_name": run_name,
        "parameters": values,
        "images": sorted(
            {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        ),
        "sent": False,
    }


def _typed(name: str, value):
    """The compiled YAML stores integers as numbers like 128.0: give them back their type."""
    from pipeline.params import TYPES

    return int(value) if TYPES.get(name) is int and value is not None else value


def _show_plan(plan: dict) -> None:
    click.echo(f"dry run: nothing sent to {plan['host']}")
    click.echo(f"pipeline:   {plan['pipeline']}\nexperiment: {plan['experiment']}")
    click.echo(f"run name:   {plan['run_name']}")
    click.echo("parameters:")
    for name, value in plan["parameters"].items():
        click.echo(f"  {name} = {value!r}")
    click.echo("images:     " + ", ".join(plan["images"]))


def _utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H-%M-%S UTC")


def follow_run(
    client, run_id: str, link: str, timeout: int | None, poll_interval: float, say=click.echo
):
    """Poll the run until it ends, printing each new state with `say`; returns the last
    V2beta1Run. Exits 4 when `timeout` passes and 130 on Ctrl-C; the run itself keeps going."""
    start, last_state = time.monotonic(), None
    try:
        while True:
            run = _get_run_patiently(client, run_id, poll_interval)
            elapsed, state = time.monotonic() - start, run.state or "RUNTIME_STATE_UNSPECIFIED"
            if state != last_state:
                say(f"{elapsed:7.0f} s  {state}")
                last_state = state
            if state in ENDED:
                return run
            if timeout is not None and elapsed >= timeout:
                click.echo(
                    f"still {state} after {timeout} s; it goes on in the cluster: {link}", err=True
                )
                raise SystemExit(EXIT_WAIT_TIMEOUT)
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; the run goes on in the cluster: {link}", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _get_run_patiently(client, run_id: str, pause: float):
    """client.get_run, retried through up to MAX_POLL_FAILURES passing API errors in a row.

    A run may last hours; one 503 from the API server on the way should not end the wait.
    """
    failures = 0
    while True:
        try:
            return client.get_run(run_id)
        except Exception as e:
            failures += 1
            if not is_transient(e) or failures > MAX_POLL_FAILURES:
                raise
            reason = getattr(e, "status", None) or type(e).__name__
            click.echo(
                f"KFP API hiccup ({reason}), retrying {failures}/{MAX_POLL_FAILURES}", err=True
            )
            time.sleep(pause)


def _exit_with_outcome(run, link: str) -> None:
    if run.state == SUCCEEDED:
        return
    message = getattr(run.error, "message", None) if run.error else None
    click.echo(
        f"run {run.state.lower()}" + (f": {message}" if message else "") + f"; see {link}", err=True
    )
    raise SystemExit(EXIT_RUN_FAILED)
