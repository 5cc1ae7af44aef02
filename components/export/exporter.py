"""Export a trained Keras model for TensorFlow Serving and publish it atomically to the store.

Layout: `<models prefix>/<version>/saved_model.pb`, `variables/`, `assets.extra/` with warm-up
requests, and `CLAIM.json`. A version is claimed atomically before any byte of it is written (two
exports at once get two numbers), every file is created exclusively so an existing version is
never overwritten, and `saved_model.pb` is uploaded last, so a version is visible (to the serving
sync and to TF Serving) only once it is complete. Before anything is published the SavedModel is
loaded back in a fresh process and must agree with the trained model on a fixed batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from components.common import provenance, spec
from components.common.errors import StepError
from components.common.log import get_logger
from components.common.records import parse_record
from components.store import AlreadyExists, Store, join, sha256_file

log = get_logger("export")
WARMUP_FILE = spec.WARMUP_FILE
SAVED_MODEL_PB = spec.SAVED_MODEL_PB
CLAIM_FILE = "CLAIM.json"  # created exclusively, first: who claimed the version, and when
_MAX_CLAIM_TRIES = 100
_CHECK_TIMEOUT_S = 600.0  # the infra check loads TensorFlow and the model: seconds, not minutes
Phase = Callable[[str, int], None]


def _quiet(phase: str, version: int) -> None:
    """The default `notify`: the log already names each phase."""


class ExportError(StepError, RuntimeError):
    """The model cannot be exported or published safely."""


def save_serving_model(model, dest: Path) -> None:
    """Write a SavedModel whose `serving_default` takes uint8 images [N, 28, 28]."""
    import keras
    import tensorflow as tf

    def serve(images):
        probabilities = model(images, training=False)
        return {
            spec.OUTPUT_PROBABILITIES: probabilities,
            spec.OUTPUT_CLASSES: tf.argmax(probabilities, axis=1),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=spec.SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name=spec.SIGNATURE_INPUT)],
    )
    archive.write_out(str(dest), verbose=False)


def write_warmup_requests(dest: Path, sample: np.ndarray, model_name: str = "mnist") -> None:
    """TF Serving replays these PredictionLog records so a new version is warm before traffic."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = dest / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in (1, len(sample)):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=spec.SIGNATURE)
            )
            request.inputs[spec.SIGNATURE_INPUT].CopyFrom(tf.make_tensor_proto(sample[:size]))
            record = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(record.SerializeToString())


def verify_in_fresh_process(saved_model: Path, sample: np.ndarray, expected: np.ndarray) -> None:
    """Load the SavedModel in a new interpreter; its probabilities must match `expected`."""
    np.save(saved_model.parent / "verify-sample.npy", sample)
    np.save(saved_model.parent / "verify-expected.npy", expected)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "components.export.verify",
                str(saved_model),
                str(saved_model.parent / "verify-sample.npy"),
                str(saved_model.parent / "verify-expected.npy"),
            ],
            capture_output=True,
            text=True,
            timeout=_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(
            f"the exported SavedModel failed its check: no verdict within {_CHECK_TIMEOUT_S:g} s"
        ) from None
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ExportError(f"the exported SavedModel failed its check: {' / '.join(tail)}")
    log.info("infra check passed: %s", result.stdout.strip().splitlines()[-1])


def existing_versions(store: Store, prefix: str) -> set[int]:
    """Every integer version folder under `prefix`, complete, claimed or abandoned."""
    base = prefix.strip("/")
    versions = set()
    for info in store.list(prefix):
        version = spec.version_number(info.key[len(base) :].lstrip("/").partition("/")[0])
        if version is not None:
            versions.add(version)
    return versions


def claim_version(store: Store, prefix: str, notify: Phase = _quiet) -> int:
    """Take the next free version number, atomically, by creating its CLAIM.json exclusively.

    Two exports that list the same versions both try the same number: the exclusive create
    (a hard link in a folder, `If-None-Match: *` on S3) lets exactly one of them win, and the
    other takes the next number. No byte of a version is written before its claim is won.
    """
    version = max(existing_versions(store, prefix), default=0) + 1
    notify("listed", version)
    identity = json.dumps(
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run": os.environ.get("KFP_RUN_ID", ""),
            "claimed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    ).encode()
    for _ in range(_MAX_CLAIM_TRIES):
        try:
            store.put_bytes(join(prefix, str(version), CLAIM_FILE), identity, exclusive=True)
            notify("claimed", version)
            return version
        except AlreadyExists:
            log.info("version %d was claimed by another export; trying %d", version, version + 1)
            version += 1
    raise ExportError(
        f"could not claim a version under {store.uri(prefix)} in {_MAX_CLAIM_TRIES} tries"
    )


def publish(local: Path, store: Store, prefix: str, notify: Phase = _quiet) -> tuple[int, str]:
    """Upload `local` as a newly claimed version under `prefix`; `saved_model.pb` goes last.

    `notify(phase, version)` is called at "listed", "claimed", "uploaded" (all but the last
    file) and "published": the log names each phase, and tests interleave exports there.
    """
    version = claim_version(store, prefix, notify)
    target = join(prefix, str(version))
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == SAVED_MODEL_PB)  # stable: saved_model.pb last
    log.info("publishing version %d (%d files) to %s", version, len(files), store.uri(target))
    # the step's end (the task's success, and `run --local`'s headline) says it is published
    for path in files:
        if path.name == SAVED_MODEL_PB:
            notify("uploaded", version)
        key = join(target, path.relative_to(local).as_posix())
        try:  # exclusive everywhere: a claimed version is ours alone, so nothing is replaced
            store.put_file(key, path, sha256=sha256_file(path), exclusive=True)
        except AlreadyExists:
            raise ExportError(
                f"{store.uri(key)} appeared while publishing; not overwriting it"
            ) from None
    notify("published", version)
    return version, store.uri(target)


def export_and_publish(
    model, work: Path, store: Store, prefix: str, sample: np.ndarray, lineage: dict | None = None
) -> dict:
    """Save, check, add warm-up requests and publish; returns metadata for the Model artifact.

    `lineage` (the trained model's provenance) goes into the version's provenance.json, with
    the digest of the SavedModel's files beside it.
    """
    saved = work / "saved_model"
    log.info("saving the SavedModel")
    save_serving_model(model, saved)
    expected = np.asarray(model(sample, training=False))
    log.info("checking it in a fresh process")
    verify_in_fresh_process(saved, sample, expected)
    write_warmup_requests(saved, sample[:8])
    digest = provenance.folder_digest(saved)
    record = {**(lineage or {}), "saved_model_digest": digest, "exported_at": provenance.now()}
    (saved / provenance.PROVENANCE_FILE).write_text(provenance.dumps(record))
    version, uri = publish(saved, store, prefix)
    meta = {
        "published_uri": uri,
        "version": version,
        "signature": spec.SIGNATURE,
        "saved_model_digest": digest,
        "dataset_digest": record.get("dataset_digest", ""),
    }
    return meta


def check_sample(seed: int = 0, n: int = 32) -> np.ndarray:
    """A fixed batch for the infra check and warm-up: blank, saturated and random images."""
    rng = np.random.default_rng(seed)
    sample = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    sample[0], sample[1] = 0, 255
    return sample


def export_from_artifact(
    model_dir: Path,
    work: Path,
    store: Store,
    prefix: str,
    artifact_dir: Path,
    task_id: str,
    s3_endpoint: str,
) -> dict:
    """Export the `model.keras` in `model_dir`; keep a copy of the SavedModel in `artifact_dir`.

    The provenance.json that train left beside model.keras is carried into the version.
    """
    import shutil

    import keras

    model = keras.models.load_model(model_dir / spec.MODEL_FILE)
    lineage_file = model_dir / provenance.PROVENANCE_FILE
    lineage = (
        parse_record(lineage_file.read_bytes(), str(lineage_file), optional={"run": dict})
        if lineage_file.is_file()
        else {}
    )
    lineage.setdefault("run", {})["export_task_id"] = task_id
    checkpoints_uri = lineage.pop("checkpoints_uri", None)
    meta = export_and_publish(model, work, store, prefix, check_sample(), lineage)
    if checkpoints_uri:
        from components.store import delete_all, open_store

        count = delete_all(open_store(checkpoints_uri, s3_endpoint))
        log.info("removed the run's %d checkpoint file(s) at %s", count, checkpoints_uri)
    shutil.copytree(work / "saved_model", artifact_dir, dirs_exist_ok=True)
    return meta
