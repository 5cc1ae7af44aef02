"""`mnist-pipeline compile`: write the KFP IR YAML (imports kfp, never TensorFlow)."""

from __future__ import annotations

import click

from pipeline.commands.options import cluster_options, options_from_flags
from pipeline.commands.output import writing


@click.command("compile")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the YAML. [default: mnist_pipeline.yaml, with --tune mnist_tune.yaml]",
)
@click.option(
    "--tune",
    "tuning",
    is_flag=True,
    help="The tuning pipeline (mnist-tune): a Katib search, then train with the best trial.",
)
@cluster_options
def compile_cmd(output: str | None, tuning: bool, **flags) -> None:
    """Compile the pipeline to KFP IR YAML, ready to upload to the Kubeflow UI or submit."""
    from pathlib import Path

    from pipeline.dag import compile_pipeline

    output = output or ("mnist_tune.yaml" if tuning else "mnist_pipeline.yaml")
    options = options_from_flags(**flags)
    with writing(output, "--output"):
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        compile_pipeline(output, options, tuning=tuning)
    click.echo(f"wrote {output}")
