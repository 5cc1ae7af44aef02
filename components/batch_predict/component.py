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
    table: Output[Markdown],
) -> str:
    """Classify every image under `images_uri`; writes predictions.csv; returns its URI.

    Empty `images_uri` / `results_uri` mean `<store>/images` and `<store>/predictions`.
    """
    import tempfile
    from pathlib import Path

    from components.batch_predict.predictor import batch_predict as run
    from components.batch_predict.predictor import load_classifier
    from components.common import spec
    from components.common.store import join, open_store, sync_down

    with tempfile.TemporaryDirectory() as work:
        store = open_store(model_uri, s3_endpoint)
        sync_down(store, "", Path(work) / "model")
        summary = run(
            images_uri or join(store_uri, spec.IMAGES_PREFIX),
            results_uri or join(store_uri, spec.PREDICTIONS_PREFIX),
            load_classifier(Path(work) / "model"),
            s3_endpoint=s3_endpoint,
            max_failed_fraction=max_failed_fraction,
        )
    Path(table.path).write_text(summary.pop("markdown"))
    table.metadata.update(summary)
    return summary["predictions_uri"]
