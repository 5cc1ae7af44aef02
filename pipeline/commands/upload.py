"""`mnist-pipeline upload`: put the compiled pipeline (or a new version of it) in the KFP UI."""

from __future__ import annotations

import datetime
import json

import click

from pipeline.commands.kfp_connection import kfp_client
from pipeline.commands.kfp_options import compiled_package, kfp_options, quietly
from pipeline.commands.options import cluster_options
from pipeline.commands.output import emit, output_option
from pipeline.commands.submit import dry_run_plan


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
@output_option
@cluster_options
@kfp_options
def upload_cmd(
    kfp_settings,
    name: str | None,
    version: str | None,
    description: str | None,
    dry_run: bool,
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
    """
    from pipeline.dag import PIPELINE_DESCRIPTION, PIPELINE_NAME

    name = name or PIPELINE_NAME
    description = description or PIPELINE_DESCRIPTION
    namespace = kfp_settings.namespace
    if dry_run:
        with compiled_package(flags) as package:
            plan = dry_run_plan(package, kfp_settings, "", "", {})
        shown = {
            "pipeline": name,
            "version": version or default_version_name(),
            "host": kfp_settings.host,
            "namespace": namespace,
            "parameters": plan["parameters"],
            "images": plan["images"],
            "sent": False,
        }
        emit(shown, output, lambda d: click.echo(
            f"dry run: nothing sent to {d['host']}\nwould upload {d['pipeline']} (a new "
            f"pipeline, or version {d['version']} of it)\nimages: {', '.join(d['images'])}"
        ))  # fmt: skip
        return
    with compiled_package(flags) as package, kfp_client(kfp_settings) as client:
        pipeline_id = find_pipeline_id(client, name, namespace)
        if pipeline_id is None:
            pipeline = quietly(
                client.upload_pipeline,
                package,
                pipeline_name=name,
                description=description,
                namespace=namespace,
            )
            pipeline_id, kind = pipeline.pipeline_id, "pipeline"
            versions = client.list_pipeline_versions(pipeline_id, page_size=1).pipeline_versions
            version_id = versions[0].pipeline_version_id if versions else None
            if version and output == "text":
                click.echo(
                    f"note: KFP names a new pipeline's first version after the "
                    f"pipeline; --version {version} applies from the next upload"
                )
            version = name
            fragment = f"pipelines/details/{pipeline_id}"
        else:
            version = version or default_version_name()
            created = quietly(
                client.upload_pipeline_version,
                package,
                version,
                pipeline_id=pipeline_id,
                description=description,
            )
            kind, version_id = "version", created.pipeline_version_id
            fragment = f"pipelines/details/{pipeline_id}/version/{version_id}"
    result = {
        "uploaded": kind,
        "pipeline": name,
        "pipeline_id": pipeline_id,
        "version": version,
        "version_id": version_id,
        "url": kfp_settings.link(fragment),
    }

    def text(d):
        if d["uploaded"] == "pipeline":
            click.echo(f"uploaded pipeline {d['pipeline']} (id {d['pipeline_id']})")
        else:
            click.echo(
                f"uploaded version {d['version']} of pipeline {d['pipeline']} "
                f"(id {d['pipeline_id']})"
            )
        click.echo(f"start it from: {d['url']}")

    emit(result, output, text)


def default_version_name() -> str:
    """`v0.1.0-20250131-020000`: the package version and the UTC time, unique per upload."""
    from importlib.metadata import version

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"v{version('mnist-kfp')}-{stamp}"


def find_pipeline_id(client, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline named `name` (in `namespace`, or shared), None if there is none.

    kfp.Client.get_pipeline_id does not pass the namespace, so it misses a profile's pipelines.
    """
    by_name = json.dumps(
        {"predicates": [{"operation": 1, "key": "display_name", "stringValue": name}]}
    )  # 1 = EQUALS
    found = client.list_pipelines(filter=by_name, namespace=namespace, page_size=2).pipelines
    if not found:
        return None
    if len(found) > 1:
        raise click.ClickException(f"several pipelines are named {name!r}; pass a unique --name")
    return found[0].pipeline_id
