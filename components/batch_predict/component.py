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
