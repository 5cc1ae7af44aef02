"""`mnist-pipeline predict`: classify image files with an exported model, as in the tutorial."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from pipeline.commands.options import parameter_options, require_tensorflow, s3_endpoint_option
from pipeline.commands.output import emit, output_option
from pipeline.params import validate_arguments


@click.command("predict")
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="A store (folder or s3://bucket/prefix) to take its newest complete model version "
    "from, as `ui` does, or one version: <store>/models/mnist/<version>.",
)
@s3_endpoint_option
@parameter_options("min_confidence")
@output_option
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def predict_cmd(
    model_uri: str, s3_endpoint: str, min_confidence: float, output: str, images: tuple[str, ...]
) -> None:
    """Print `IMAGE: The result: [d]` for each image file, and the model version used."""
    require_tensorflow("predict")
    validate_arguments({"min_confidence": min_confidence})  # refused in one line, as in run
    import numpy as np

    from components.batch_predict.batches import result_line
    from components.batch_predict.model import load_model_version
    from components.batch_predict.step import model_lineage
    from components.common.redact import printable
    from components.reading.images import ImageError, to_mnist
    from components.store import LocalStore, StoreError
    from pipeline.model_versions import resolve_version

    model_uri = resolve_version(model_uri, s3_endpoint)  # a store: its newest complete version
    rows = []
    with tempfile.TemporaryDirectory() as work:
        classify = load_model_version(model_uri, s3_endpoint, Path(work))
        for path in images:
            # The file named here may be a link (the store never follows one; a person who
            # names a link means its target); only a regular file is read: never a FIFO.
            real = Path(path).resolve()
            try:
                pixels = to_mnist(LocalStore(real.parent).get_bytes(real.name))
            except (ImageError, StoreError) as e:
                rows.append({"image": path, "prediction": None, "confidence": None,
                             "low_confidence": None, "error": str(e)})  # fmt: skip
                if output == "text":
                    click.echo(f"{printable(path)}: error: {e}", err=True)
                continue
            probabilities, classes = classify(np.expand_dims(pixels, 0))
            digit, confidence = int(classes[0]), float(probabilities[0][classes[0]])
            row = {"image": path, "prediction": digit, "confidence": round(confidence, 4),
                   "low_confidence": confidence < min_confidence, "error": None}  # fmt: skip
            rows.append(row)
            if output == "text":  # the tutorial's words, as batch-predict's log says them
                low = "yes" if row["low_confidence"] else ""
                click.echo(result_line((path, str(digit), f"{confidence:.4f}", "", low)))
    try:
        version = model_lineage(model_uri, s3_endpoint)["model_version"]
    except ValueError:  # a SavedModel folder that is not a numbered version
        version = None
    if output == "text":
        click.echo(f"model: {f'version {version} at ' if version else ''}{model_uri}", err=True)
    else:
        emit({"model_uri": model_uri, "model_version": version, "predictions": rows}, output, print)
    sys.exit(1 if any(r["error"] for r in rows) else 0)
