"""The batch-predict step as the pipeline runs it: pick the classifier, resolve the defaults."""

from __future__ import annotations

import tempfile
from pathlib import Path

from components.batch_predict.model import load_model_version
from components.batch_predict.predictor import batch_predict
from components.common import spec
from components.common.errors import InputError
from components.common.log import get_logger
from components.common.parameters import DEFAULTS
from components.store import join, under_store

log = get_logger("batch_predict")


def run_step(
    model_uri: str,
    store_uri: str,
    images_uri: str,
    results_uri: str,
    s3_endpoint: str,
    max_failed_fraction: float,
    serving_endpoint: str = spec.IN_STEP,
    min_confidence: float = DEFAULTS["min_confidence"],
    run_id: str = "",
) -> dict:
    """Classify `images_uri` (default `<store>/images`) into `<results_uri>/<model version>/`
    (default `<store>/predictions/<version>/`), with the exported model loaded here or, when
    `serving_endpoint` is set, through TF Serving's gRPC PredictionService.

    The version folder keeps each run's predictions beside the model that made them: two runs
    that overlap publish two versions, and so never replace each other's predictions.csv.
    """
    images = under_store(store_uri, images_uri or spec.IMAGES_PREFIX)
    results = under_store(store_uri, results_uri or spec.PREDICTIONS_PREFIX)
    options = {
        "s3_endpoint": s3_endpoint,
        "max_failed_fraction": max_failed_fraction,
        "min_confidence": min_confidence,
    }
    if serving_endpoint not in ("", spec.IN_STEP):
        from components.batch_predict.serving_client import check_model_ready, grpc_classifier

        versions = check_model_ready(serving_endpoint)  # fails fast, naming what is missing
        log.info("classifying through TF Serving at %s (versions %s)", serving_endpoint, versions)
        served = str(max(versions))
        results = join(results, served)
        model = f"TF Serving at {serving_endpoint}, version {served}"
        lineage = model_lineage(join(model_uri.rstrip("/").rpartition("/")[0], served), s3_endpoint)
        return batch_predict(
            images,
            results,
            grpc_classifier(serving_endpoint),
            model_label=model,
            lineage={**lineage, "served_by": serving_endpoint, "run_id": run_id},
            **options,
        )
    results = join(results, model_version(model_uri))
    options["lineage"] = {**model_lineage(model_uri, s3_endpoint), "run_id": run_id}
    with tempfile.TemporaryDirectory() as work:
        log.info("loading the model from %s", model_uri)
        classify = load_model_version(model_uri, s3_endpoint, Path(work))
        return batch_predict(images, results, classify, model_label=model_uri, **options)


def model_lineage(model_uri: str, s3_endpoint: str) -> dict:
    """What predictions made with the model version at `model_uri` come from: its URI and
    version, and from its provenance.json the SavedModel and dataset digests."""
    from components.common import provenance
    from components.common.records import RecordError, parse_record
    from components.store import StoreError, open_store

    store = open_store(model_uri, s3_endpoint)
    try:
        raw = store.get_bytes(provenance.PROVENANCE_FILE)
    except StoreError:
        raw = b"{}"  # a version exported before provenance was recorded
    try:
        digests = {"saved_model_digest": str, "dataset_digest": str}
        record = parse_record(raw, store.uri(provenance.PROVENANCE_FILE), optional=digests)
    except RecordError as e:  # the lineage is left blank; the model itself is checked on load
        log.warning("%s; its lineage is left blank", e)
        record = {}
    return {
        "model_uri": model_uri,
        "model_version": int(model_version(model_uri)),
        "saved_model_digest": record.get("saved_model_digest", ""),
        "dataset_digest": record.get("dataset_digest", ""),
    }


def model_version(model_uri: str) -> str:
    """The version folder's name at the end of `model_uri` (`.../models/mnist/3` -> `3`)."""
    last = model_uri.rstrip("/").rpartition("/")[2]
    if spec.version_number(last) is None:
        raise InputError(f"model_uri {model_uri!r} does not end in a numbered version folder")
    return last
