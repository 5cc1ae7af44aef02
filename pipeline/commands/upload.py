"""`mnist-pipeline upload`: put the compiled pipeline (or a new version of it) in the KFP UI."""

from __future__ import annotations

import datetime

import click

from pipeline.commands.cluster_flags import cluster_options
from pipeline.commands.connection import kfp_options
from pipeline.commands.output import emit, output_option
from pipeline.commands.plan import compiled_package, nothing_sent, package_contents
from pipeline.kfp.client import kfp_client
from pipeline.kfp.pipelines import upload_package


@click.command("upload")
@click.option(
    "--name",
    metavar="NAME",
    help="Pipeline name in the UI. [default: the pipeline's name, mnist-digits]",
)
@click.option(
    "--version",
    "version",
    metavar="NAME",
    help="Name of the new version when the pipeline exists already. "
    "[default: the package version and the UTC time]",
)
@click.option(
    "--description",
    metavar="TEXT",
    help="Description shown in the UI. [default: the pipeline's own description]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Compile, print what would be uploaded, and stop: no API call.",
)
@click.option(
    "--tune",
    "tuning",
    is_flag=True,
    help="Upload the tuning pipeline (mnist-tune): a Katib search, then train with the best "
    "trial. [default name: mnist-tune]",
)
@output_option
@cluster_options
@kfp_options
def upload_cmd(
    kfp_settings,
    name: str | None,
    version: str | None,
    description: str | None,
    dry_run: bool,
    tuning: bool,
    output: str,
    **flags,
) -> None:
    """Upload the compiled pipeline so it can be started from the Kubeflow UI.

    The first upload creates the pipeline; later uploads under the same name add a version, so
    the UI keeps the history. The uploaded spec carries every parameter's default, which
    the UI's "Create run" form fills in; its descriptions are in the spec (and in the README's
    parameter table), but the upstream form does not show them.

    \b
      mnist-pipeline upload                     # then: KFP UI > Pipelines > mnist-digits
      mnist-pipeline upload --version v2-more-epochs
      mnist-pipeline upload --tune              # the Katib search: Pipelines > mnist-tune
    """
    from pipeline import dag

    default_name, default_description = (
        (dag.TUNE_PIPELINE_NAME, dag.TUNE_PIPELINE_DESCRIPTION)
        if tuning
        else (dag.PIPELINE_NAME, dag.PIPELINE_DESCRIPTION)
    )
    name, description = name or default_name, description or default_description
    if dry_run:
        with compiled_package(flags, tuning=tuning) as package:
            contents = package_contents(package, {})
        plan = {
            "pipeline": name,
            "version": version or default_version_name(),
            "host": kfp_settings.host or None,
            "namespace": kfp_settings.namespace,
            "parameters": contents["parameters"],
            "images": contents["images"],
            "sent": False,
        }
        emit(plan, output, _show_plan)
        return
    with compiled_package(flags, tuning=tuning) as package, kfp_client(kfp_settings) as client:
        uploaded = upload_package(
            client,
            package,
            name,
            description,
            kfp_settings.namespace,
            version or default_version_name(),
        )
    if uploaded.kind == "pipeline" and version and output == "text":
        click.echo(
            f"note: KFP names a new pipeline's first version after the "
            f"pipeline; --version {version} applies from the next upload"
        )
    result = {
        "uploaded": uploaded.kind,
        "pipeline": name,
        "pipeline_id": uploaded.pipeline_id,
        "version": uploaded.version,
        "version_id": uploaded.version_id,
        "url": kfp_settings.link(uploaded.fragment),
    }
    emit(result, output, _show_uploaded)


def _show_plan(plan: dict) -> None:
    click.echo(
        f"{nothing_sent(plan['host'])}\n"
        f"would upload {plan['pipeline']} (a new "
        f"pipeline, or version {plan['version']} of it)\nimages: {', '.join(plan['images'])}"
    )


def _show_uploaded(result: dict) -> None:
    if result["uploaded"] == "pipeline":
        click.echo(f"uploaded pipeline {result['pipeline']} (id {result['pipeline_id']})")
    else:
        click.echo(
            f"uploaded version {result['version']} of pipeline {result['pipeline']} "
            f"(id {result['pipeline_id']})"
        )
    click.echo(f"start it from: {result['url']}")


def default_version_name() -> str:
    """`v0.1.0-20250131-020000`: the package version and the UTC time, unique per upload."""
    from importlib.metadata import version

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"v{version('mnist-kfp')}-{stamp}"
