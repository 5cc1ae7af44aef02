"""The batch-predict step as the pipeline runs it: pick the classifier, resolve the defaults."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from components.batch_predict import shards as sharding
from components.batch_predict.merge import merge
from components.batch_predict.model import BatchPredictError, Classifier, load_model_version
from components.batch_predict.predictor import batch_predict
from components.common import spec
from components.common.errors import InputError
from components.common.log import get_logger
from components.common.parameters import DEFAULTS
from components.store import join, open_store, under_store

log = get_logger("batch_predict")


@dataclass
class Model:
    """The model a run classifies with: its classifier (None when only named), the version
    folder its results go to, the report's label for it and its lineage."""

    classify: Classifier | None
    version: str
    label: str
    lineage: dict


@contextlib.contextmanager
def _model(
    model_uri: str,
    s3_endpoint: str,
    serving_endpoint: str,
    run_id: str,
    load: bool = True,
    planned: str = "",
) -> Iterator[Model]:
    """The exported model at `model_uri` loaded here or, when `serving_endpoint` is set, TF
    Serving's newest version through its gRPC PredictionService; with `planned` (a sharded
    run's version folder), only if that is still the version TF Serving serves."""
    if serving_endpoint not in ("", spec.IN_STEP):
        from components.batch_predict.serving_client import check_model_ready, grpc_classifier

        versions = check_model_ready(serving_endpoint)  # fails fast, naming what is missing
        log.info("classifying through TF Serving at %s (versions %s)", serving_endpoint, versions)
        served = str(max(versions))
        if planned and served != planned:
            raise BatchPredictError(
                f"TF Serving at {serving_endpoint} now serves version {served}, but this run's "
                f"shards were planned for version {planned}: start a new run to classify with it"
            )
        lineage = model_lineage(join(model_uri.rstrip("/").rpartition("/")[0], served), s3_endpoint)
        yield Model(
            grpc_classifier(serving_endpoint) if load else None,
            served,
            f"TF Serving at {serving_endpoint}, version {served}",
            {**lineage, "served_by": serving_endpoint, "run_id": run_id},
        )
        return
    version = model_version(model_uri)
    lineage = {**model_lineage(model_uri, s3_endpoint), "run_id": run_id}
    if not load:
        yield Model(None, version, model_uri, lineage)
        return
    with tempfile.TemporaryDirectory() as work:
        log.info("loading the model from %s", model_uri)
        yield Model(
            load_model_version(model_uri, s3_endpoint, Path(work)), version, model_uri, lineage
        )


def _locations(store_uri: str, images_uri: str, results_uri: str) -> tuple[str, str]:
    """The images' URI and the results' (before the version folder), defaults resolved."""
    images = under_store(store_uri, images_uri or spec.IMAGES_PREFIX)
    return images, under_store(store_uri, results_uri or spec.PREDICTIONS_PREFIX)


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
    images, results = _locations(store_uri, images_uri, results_uri)
    with _model(model_uri, s3_endpoint, serving_endpoint, run_id) as model:
        return batch_predict(
            images,
            join(results, model.version),
            model.classify,
            s3_endpoint=s3_endpoint,
            max_failed_fraction=max_failed_fraction,
            min_confidence=min_confidence,
            model_label=model.label,
            lineage=model.lineage,
        )


def plan_step(
    model_uri: str,
    store_uri: str,
    images_uri: str,
    results_uri: str,
    s3_endpoint: str,
    serving_endpoint: str,
    shards: int,
    images_per_shard: int = 0,
) -> list[str]:
    """The sharded run's first task: the plan under `<results>/<version>/shards/`; the URIs of
    its manifests, one per shard (what ParallelFor iterates over)."""
    images, results = _locations(store_uri, images_uri, results_uri)
    with _model(model_uri, s3_endpoint, serving_endpoint, "", load=False) as model:
        plan_uri = join(results, model.version, sharding.SHARDS_FOLDER)
    planned = sharding.plan(
        images, plan_uri, shards, s3_endpoint, images_per_shard, model_uri=model_uri
    )
    return sharding.manifest_uris(open_store(plan_uri, s3_endpoint), planned)


def shard_step(
    manifest_uri: str, s3_endpoint: str, serving_endpoint: str, min_confidence: float
) -> dict:
    """The shard whose manifest is at `manifest_uri`, with the model its plan names (skipped
    when it is finished already)."""
    plan_uri, index = sharding.parse_manifest_uri(manifest_uri)
    plan_store = open_store(plan_uri, s3_endpoint)
    record = sharding.read_plan(plan_store)
    done = sharding.already_done(plan_store, record, index)
    if done is not None:  # without loading the model
        return done
    model_uri = record["model_uri"]
    version = _planned_version(plan_uri)
    with _model(model_uri, s3_endpoint, serving_endpoint, "", planned=version) as model:
        return sharding.run_shard(plan_uri, index, model.classify, s3_endpoint, min_confidence)


def merge_step(
    model_uri: str,
    manifests: list[str],
    s3_endpoint: str,
    max_failed_fraction: float,
    serving_endpoint: str,
    run_id: str,
    parts: bool = False,
) -> dict:
    """The shards of the plan `manifests` belong to, joined into
    `<results>/<version>/predictions.csv` (or, with `parts`, listed in predictions.parts.json)
    and the reports: the summary run_step gives."""
    plans = {sharding.parse_manifest_uri(uri)[0] for uri in manifests}
    if len(plans) != 1:
        raise InputError(f"the manifests name {len(plans)} plans, expected one")
    (plan_uri,) = plans
    version = _planned_version(plan_uri)
    with _model(model_uri, s3_endpoint, serving_endpoint, run_id, False, version) as model:
        results = plan_uri.rstrip("/").rpartition("/")[0]
        return merge(
            plan_uri, results, s3_endpoint, max_failed_fraction, model.label, model.lineage,
            parts,
        )  # fmt: skip


def _planned_version(plan_uri: str) -> str:
    """The version folder a plan was made for: `<results>/<version>/shards` -> `<version>`."""
    return plan_uri.rstrip("/").rpartition("/")[0].rpartition("/")[2]


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
