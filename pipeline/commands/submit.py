"""`mnist-pipeline submit`: compile the pipeline, start a run on Kubeflow, optionally follow it."""

from __future__ import annotations

import contextlib

import click

from pipeline.commands.cluster_flags import cluster_options
from pipeline.commands.connection import kfp_options
from pipeline.commands.follow import report_run
from pipeline.commands.options import (
    caching_option,
    param_option,
    uploaded_pipeline_options,
)
from pipeline.commands.output import emit, note, output_option
from pipeline.commands.plan import compiled_package, default_run_name, dry_run_plan, show_plan
from pipeline.kfp.client import kfp_client
from pipeline.kfp.pipelines import resolve_uploaded
from pipeline.kfp.runs import start_run


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

    _refuse_conflicts(dry_run, pipeline_name, enable_caching)
    run = {
        "experiment": experiment or PIPELINE_NAME,
        "run_name": run_name or default_run_name(PIPELINE_NAME),
        "params": params,
        "service_account": service_account,
    }
    if dry_run:
        with compiled_package(flags, enable_caching) as package:
            plan = dry_run_plan(package, kfp_settings, run["experiment"], run["run_name"], params)
        emit(plan, output, show_plan)
        return
    compiled = (
        contextlib.nullcontext() if pipeline_name else compiled_package(flags, enable_caching)
    )
    with compiled as package, kfp_client(kfp_settings) as client:
        source = package
        if pipeline_name:
            source = resolve_uploaded(client, kfp_settings, pipeline_name, version_name)
            note(f"pipeline:   {pipeline_name}, version {source.name}", output)
        run["run_id"] = start_run(client, kfp_settings, source, **run)
        report_run(client, kfp_settings, run, wait=wait, timeout=timeout,
                   poll_interval=poll_interval, output=output)  # fmt: skip


def _refuse_conflicts(dry_run: bool, pipeline_name: str | None, caching: bool | None) -> None:
    if dry_run and pipeline_name:
        raise click.UsageError("--dry-run compiles the local code: leave out --pipeline")
    if pipeline_name and caching is not None:
        raise click.UsageError(
            "an uploaded pipeline keeps the cache options it was compiled with: leave out "
            "--enable-caching/--disable-caching, or upload a version compiled with them"
        )
