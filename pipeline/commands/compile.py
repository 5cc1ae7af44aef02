"""`mnist-pipeline compile`: write the KFP IR YAML (imports kfp, never TensorFlow)."""

from __future__ import annotations

import click

from pipeline.commands.cluster_flags import cluster_options, options_from_flags
from pipeline.commands.options import renamed
from pipeline.commands.output import writing

_FILE = click.Path(dir_okay=False, writable=True)


@click.command("compile")
@click.argument("file", required=False, type=_FILE)
@click.option(
    "--output-file",
    "output",
    type=_FILE,
    metavar="FILE",
    help="Where to write the YAML, as FILE does. "
    "[default: mnist_pipeline.yaml, with --tune mnist_tune.yaml]",
)
@renamed("-o/--output", "--output-file (or FILE)", "output", type=_FILE)
@click.option(
    "--tune",
    "tuning",
    is_flag=True,
    help="The tuning pipeline (mnist-tune): a Katib search, then train with the best trial.",
)
@cluster_options
def compile_cmd(file: str | None, output: str | None, tuning: bool, **flags) -> None:
    """Compile the pipeline to KFP IR YAML in FILE, ready to upload to the Kubeflow UI or
    submit. As in every command, -o/--output would be a format; the file is FILE or
    --output-file."""
    from pathlib import Path

    from pipeline.dag import compile_pipeline

    if file and output:
        raise click.UsageError("give the file once: FILE or --output-file")
    output = file or output or ("mnist_tune.yaml" if tuning else "mnist_pipeline.yaml")
    options = options_from_flags(**flags)
    with writing(output, "FILE"):
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        compile_pipeline(output, options, tuning=tuning)
    click.echo(f"wrote {output}")
