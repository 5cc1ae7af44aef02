"""KFP interface of the batch-predict step: classify every image under a prefix."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def batch_predict(
    model_uri: str,
    store_uri: str,
    images_uri: str,
    results_uri: str,
    s3_endpoint: str,
    max_failed_fraction: float,
    serving_endpoint: str,
    min_confidence: float,
    run_id: str,
    predictions: Output[Markdown],
    report: Output[HTML],
) -> NamedTuple("Outputs", predictions_uri=str):
    """Classify every image under `images_uri` and publish predictions.csv.

    Args:
        model_uri: the exported model version folder (`<store>/models/mnist/<version>`).
        store_uri: the store root (s3://bucket/prefix or a local folder).
        images_uri: the images to classify: a path under store_uri, or s3://bucket/prefix.
        results_uri: where `<version>/predictions.csv` goes: a path under store_uri, or a URI.
        s3_endpoint: S3 endpoint (host:port or http(s)://host:port); empty for AWS or a folder.
        max_failed_fraction: fail the step when more images than this share cannot be read.
        serving_endpoint: TF Serving's gRPC host:port to classify through, or `in-step`.
        min_confidence: predictions below this probability are marked low_confidence.
        run_id: the pipeline run's ID (dsl.PIPELINE_JOB_ID_PLACEHOLDER), for provenance.
        predictions: the counts and the first rows (Markdown).
        report: each pictured image beside the 28x28 the model saw, the counts, the skipped files.

    Returns:
        predictions_uri: the URI of predictions.csv.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.BATCH_PREDICT, locals()):
        from pathlib import Path

        from components.batch_predict.step import run_step

        summary = run_step(
            model_uri,
            store_uri,
            images_uri,
            results_uri,
            s3_endpoint,
            max_failed_fraction,
            serving_endpoint,
            min_confidence,
            run_id,
        )
        Path(predictions.path).write_text(summary.pop("markdown"))
        Path(report.path).write_text(summary.pop("html"))
        predictions.metadata.update(summary)
        return (summary["predictions_uri"],)


# Sharded batch-predict (`compile --shards N`): plan -> ParallelFor(predict-shard) -> merge.
# The three together give what batch_predict gives (components/batch_predict/shards.py).


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def plan_shards(
    model_uri: str,
    store_uri: str,
    images_uri: str,
    results_uri: str,
    s3_endpoint: str,
    serving_endpoint: str,
    shards: int,
    images_per_shard: int,
) -> list:
    """List the images once and write `shards` manifests for the predict-shard tasks.

    Args:
        model_uri: the exported model version folder (names the results' version folder).
        store_uri: the store root (s3://bucket/prefix or a local folder).
        images_uri: the images to classify: a path under store_uri, or s3://bucket/prefix.
        results_uri: where `<version>/predictions.csv` goes: a path under store_uri, or a URI.
        s3_endpoint: S3 endpoint (host:port or http(s)://host:port); empty for AWS or a folder.
        serving_endpoint: TF Serving's gRPC host:port, or `in-step`.
        shards: how many shards (fewer when there are fewer batches of images).
        images_per_shard: when above 0, as many shards as hold this many images each (at
            most `shards` when that is above 1).

    Returns:
        The manifests' URIs (`<results>/<version>/shards/keys-NNNNN.txt`), one per shard:
        ParallelFor's items. (kfp's single `Output`: kfp.local's ParallelFor reads its items
        from no other output name.)
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.PLAN_SHARDS, locals()):
        from components.batch_predict.step import plan_step

        return plan_step(
            model_uri, store_uri, images_uri, results_uri, s3_endpoint, serving_endpoint, shards,
            images_per_shard,
        )  # fmt: skip


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def predict_shard(
    manifest_uri: str,
    s3_endpoint: str,
    serving_endpoint: str,
    min_confidence: float,
) -> NamedTuple("Outputs", rows=int):
    """Classify one shard's images into its part of the predictions; a finished shard (its
    DONE.json matches its manifest) is skipped, so a retried run does not redo it.

    Args:
        manifest_uri: the shard's manifest (ParallelFor's item); its plan names the model.
        s3_endpoint: S3 endpoint; empty for AWS or a folder.
        serving_endpoint: TF Serving's gRPC host:port, or `in-step`.
        min_confidence: predictions below this probability are marked low_confidence.

    Returns:
        rows: the shard's number of rows (images).
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.PREDICT_SHARD, locals()):
        from components.batch_predict.step import shard_step

        done = shard_step(manifest_uri, s3_endpoint, serving_endpoint, min_confidence)
        return (done["rows"],)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge_shards(
    model_uri: str,
    manifests: list,
    s3_endpoint: str,
    max_failed_fraction: float,
    serving_endpoint: str,
    run_id: str,
    parts: bool,
    predictions: Output[Markdown],
    report: Output[HTML],
) -> NamedTuple("Outputs", predictions_uri=str):
    """Join the shards into one predictions.csv (or with `parts`, list them in
    predictions.parts.json), held to max_failed_fraction over all of them, with batch-predict's
    table and report.

    Args:
        model_uri: the exported model version folder.
        manifests: the plan-shards task's manifests (every shard must be finished).
        s3_endpoint: S3 endpoint; empty for AWS or a folder.
        max_failed_fraction: fail when more images than this share could not be read.
        serving_endpoint: TF Serving's gRPC host:port, or `in-step` (for the report's label).
        run_id: the pipeline run's ID (dsl.PIPELINE_JOB_ID_PLACEHOLDER), for provenance.
        parts: publish a manifest of the shards' CSVs instead of one joined CSV.
        predictions: the counts and the first rows (Markdown).
        report: the pictured images, the counts, the skipped files (HTML).

    Returns:
        predictions_uri: the URI of predictions.csv (or of predictions.parts.json).
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.MERGE_SHARDS, locals()):
        from pathlib import Path

        from components.batch_predict.step import merge_step

        summary = merge_step(
            model_uri, manifests, s3_endpoint, max_failed_fraction, serving_endpoint, run_id, parts
        )
        Path(predictions.path).write_text(summary.pop("markdown"))
        Path(report.path).write_text(summary.pop("html"))
        predictions.metadata.update(summary)
        return (summary["predictions_uri"],)
