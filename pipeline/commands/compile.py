"""`mnist-pipeline compile`: write the KFP IR YAML (imports kfp, never TensorFlow)."""

from __future__ import annotations

import click

from pipeline.commands.options import cluster_options, options_from_flags
from pipeline.commands.output import writing


@click.command("compile")
@click.option(
    "--output",
    "-o",
    default="mnist_pipeline.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the YAML.",
)
@cluster_options
def compile_cmd(output: str, **flags) -> None:
    """Compile the pipeline to KFP IR YAML, ready to upload to the Kubeflow UI or submit."""
    from pathlib import Path

    from pipeline.dag import compile_pipeline

    options = options_from_flags(**flags)
    with writing(output, "--output"):
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        compile_pipeline(output, options)
    click.echo(f"wrote {output}")
