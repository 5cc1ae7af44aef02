"""KFP interface of the batch-predict step: classify every image under a prefix."""

from kfp import dsl
from kfp.dsl import Markdown, Output

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
    table: Output[Markdown],
) -> str:
    """Classify every image under `images_uri`; writes predictions.csv; returns its URI.

    Empty `images_uri` / `results_uri` mean `<store>/images` and `<store>/predictions`; a
    `serving_endpoint` (host:port) sends the batches to TF Serving over gRPC instead.
    """
    from components.common import spec as names
    from components.common.failure import reported

    with reported(names.BATCH_PREDICT):
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
        )
        Path(table.path).write_text(summary.pop("markdown"))
        table.metadata.update(summary)
        return summary["predictions_uri"]
