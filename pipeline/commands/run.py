"""`mnist-pipeline run --local`: the whole DAG on this machine, no cluster."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from components.common import spec
from pipeline.commands.options import (
    param_option,
    parameter_options,
    require_tensorflow,
    s3_endpoint_option,
)
from pipeline.commands.output import emit, note, output_option, writing
from pipeline.console import short_path
from pipeline.params import ParameterError, validate_arguments

DEFAULT_LOCAL_STORE = "./mnist-store"
# Options named after pipeline parameters, with the table's defaults and help (parameters.py).
_TUNING = (
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
    "train_limit",
    "augment",
    "min_accuracy",
    "max_failed_fraction",
    "min_confidence",
)


@click.command("run")
@click.option(
    "--local",
    "local",
    is_flag=True,
    help="Run with kfp.local on this machine, the only mode of `run` (`submit` runs on "
    "Kubeflow). Needed only when a KFP host is configured, to say it is meant.",
)
@parameter_options("source")
@click.option(
    "--store",
    "store_uri",
    default=DEFAULT_LOCAL_STORE,
    show_default=True,
    help="Store root: a local folder or s3://bucket/prefix.",
)
@s3_endpoint_option
@click.option(
    "--images",
    "images_uri",
    default="",
    help="Images to classify: a folder or s3://bucket/prefix [default: <store>/images, seeded "
    "with sample digits].",
)
@click.option(
    "--results",
    "results_uri",
    default="",
    help="Where <model version>/predictions.csv goes: a folder or s3://bucket/prefix "
    "[default: <store>/predictions].",
)
@parameter_options("serving_endpoint")
@parameter_options(*_TUNING)
@click.option(
    "--verify-checksums/--no-verify-checksums",
    default=True,
    show_default=True,
    help="Require the original MNIST release (turn off for a custom IDX set).",
)
@click.option(
    "--workdir",
    default="./.local-runs",
    show_default=True,
    type=click.Path(),
    help="Where kfp.local keeps each run's artifacts and logs.",
)
@click.option(
    "--runner",
    type=click.Choice(["subprocess", "docker"], case_sensitive=False),
    default="subprocess",
    show_default=True,
    help="subprocess: each step a process of this environment. docker: each step in the image "
    "the cluster runs (build them with `make images-local`; podman works through DOCKER_HOST).",
)
@param_option
@output_option
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Stream every line kfp.local and the steps print (they are always kept in the run "
    "folder's logs/); twice (-vv), TensorFlow's own C++ log lines too.",
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False),
    help="Also write the run summary as JSON to this file.",
)
@click.option(
    "--shards",
    default=1,
    show_default=True,
    type=click.IntRange(1, spec.MAX_SHARDS),
    help="Batch-predict in this many shards, as `compile --shards` does on a cluster: "
    "kfp.local runs two of the ParallelFor's tasks at a time at most.",
)
def run_cmd(
    local: bool,
    workdir: str,
    runner: str,
    verbose: int,
    summary_json: str | None,
    shards: int,
    params: dict,
    output: str,
    **arguments,
) -> None:
    """Run download, unpack-and-upload, train, export and batch-predict locally.

    \b
    Offline? Point --source at a folder holding the four MNIST .gz files:
      mnist-pipeline run --local --source ../shared/datasets/mnist
    In the step images, with docker or podman (README: Containers):
      mnist-pipeline run --local --runner docker
    """
    from pipeline.local_run import default_images_uri, run_local, seed_sample_images

    _refuse_an_ambiguous_run(local)
    require_tensorflow("run --local")
    _merge(arguments, params)
    if arguments["store_uri"] == DEFAULT_LOCAL_STORE:
        arguments["store_uri"] = str(Path(DEFAULT_LOCAL_STORE).resolve())
    try:
        validate_arguments(arguments)
    except ParameterError as e:
        raise click.UsageError(str(e)) from None
    if runner == "docker":  # before anything is written: the engine answers, the images are here
        from pipeline.containers import check_engine_and_images

        check_engine_and_images()  # a ContainerError says what to start or build
    if not arguments["images_uri"]:
        seeded = seed_sample_images(
            default_images_uri(arguments["store_uri"]), arguments["s3_endpoint"]
        )
        if seeded:
            note(
                f"seeded {seeded} sample digits under "
                f"{short_path(default_images_uri(arguments['store_uri']))}",
                output,
            )
    # Here these options are paths as a shell gives them; the pipeline takes a relative value
    # as a path under the store, so a folder given here is made absolute.
    for name, default in (
        ("images_uri", spec.IMAGES_PREFIX),
        ("results_uri", spec.PREDICTIONS_PREFIX),
    ):
        value = arguments[name]
        arguments[name] = (
            default if not value else value if "://" in value else os.path.abspath(value)
        )
    if verbose >= 2:
        from components.common import quiet_tf

        quiet_tf.show()  # the steps' TensorFlow log lines too
    start = time.monotonic()
    stream = sys.stdout if output == "text" else sys.stderr  # stdout holds the document
    with writing(workdir, "--workdir"):  # a LocalRunError says which step failed and why
        summary = run_local(
            arguments, Path(workdir).resolve(), runner, verbose > 0, stream, shards=shards
        )
    result = {**summary.to_dict(), "wall_seconds": round(time.monotonic() - start, 1)}
    if output != "text":
        emit(result, output, lambda d: None)
    else:
        _report(result, arguments["min_accuracy"])
        if result["predictions_uri"]:
            _show_predictions(result["predictions_uri"], arguments["s3_endpoint"])
    if summary_json:
        with writing(summary_json, "--summary-json"):
            Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
            Path(summary_json).write_text(json.dumps(result, indent=2) + "\n")


def _refuse_an_ambiguous_run(local: bool) -> None:
    """`run` alone is a local run, unless a KFP host is configured: then say which is meant."""
    import os

    from pipeline.kfp.settings import ENV_HOST, ENV_KF_ENDPOINT

    configured = [name for name in (ENV_HOST, ENV_KF_ENDPOINT) if os.environ.get(name)]
    if not local and configured:
        raise click.UsageError(
            f"{configured[0]} is set, so say where to run: `run --local` runs on this machine, "
            "`submit` runs on Kubeflow"
        )


def _merge(arguments: dict, params: dict) -> None:
    """--params-file and --param values, except where a named option was given (it wins)."""
    source = click.get_current_context().get_parameter_source
    for name, value in params.items():
        if name not in arguments:
            raise click.BadParameter(
                f"{name} is not a parameter of a local run", param_hint="--param / --params-file"
            )
        if source(name) != click.core.ParameterSource.COMMANDLINE:
            arguments[name] = value


def _report(result: dict, min_accuracy: float) -> None:
    click.echo("")
    click.echo(f"test accuracy:  {result['test_accuracy']:.4f}")
    if result["gated"]:
        click.echo(f"not exported:   test accuracy is below min_accuracy={min_accuracy}")
    else:
        click.echo(
            f"model:          {short_path(result['model_uri'])} (version {result['model_version']})"
        )
        click.echo(
            f"predictions:    {short_path(result['predictions_uri'])} "
            f"({result['predicted']} classified, {result['failed']} failed)"
        )
    for report in result["reports"]:
        click.echo(f"report:         {short_path(report)}")
    click.echo(f"run folder:     {short_path(result['run_dir'])} (every step's full log in logs/)")
    click.echo(f"wall time:      {result['wall_seconds']} s")


def _show_predictions(uri: str, s3_endpoint: str, limit: int = 20) -> None:
    """The first rows of predictions.csv, in the tutorial's words."""
    import csv
    import io

    from components.store import open_store

    folder, _, name = uri.rpartition("/")
    rows = list(
        csv.DictReader(io.StringIO(open_store(folder, s3_endpoint).get_bytes(name).decode()))
    )
    click.echo("")
    for row in rows[:limit]:
        if row["error"]:
            click.echo(f"{row['image']}: error: {row['error']}")
        else:
            unsure = "; low confidence" if row.get("low_confidence") else ""
            click.echo(
                f"{row['image']}: The result: [{row['prediction']}]  "
                f"(confidence {float(row['confidence']):.3f}{unsure})"
            )
    if len(rows) > limit:
        click.echo(f"... and {len(rows) - limit} more in {uri}")
