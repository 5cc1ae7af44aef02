"""The batch-predict step as the pipeline runs it: pick the classifier, resolve the defaults."""

from __future__ import annotations

import tempfile
from pathlib import Path

from components.batch_predict.predictor import batch_predict, load_classifier
from components.common import spec
from components.common.log import get_logger
from components.common.store import join, open_store, sync_down

log = get_logger("batch_predict")


def run_step(
    model_uri: str,
    store_uri: str,
    images_uri: str,
    results_uri: str,
    s3_endpoint: str,
    max_failed_fraction: float,
    serving_endpoint: str = "",
) -> dict:
    """Classify `images_uri` (default `<store>/images`) into `results_uri` (default
    `<store>/predictions`), with the exported model loaded here or, when `serving_endpoint` is
    set, through TF Serving's gRPC PredictionService."""
    images = images_uri or join(store_uri, spec.IMAGES_PREFIX)
    results = results_uri or join(store_uri, spec.PREDICTIONS_PREFIX)
    options = {"s3_endpoint": s3_endpoint, "max_failed_fraction": max_failed_fraction}
    if serving_endpoint:
        from components.batch_predict.serving_client import check_model_ready, grpc_classifier

        versions = check_model_ready(serving_endpoint)  # fails fast, naming what is missing
        log.info("classifying through TF Serving at %s (versions %s)", serving_endpoint, versions)
        return batch_predict(images, results, grpc_classifier(serving_endpoint), **options)
    with tempfile.TemporaryDirectory() as work:
        model_dir = Path(work) / "model"
        log.info("loading the model from %s", model_uri)
        sync_down(open_store(model_uri, s3_endpoint), "", model_dir)
        return batch_predict(images, results, load_classifier(model_dir), **options)
