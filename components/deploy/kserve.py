"""Serve a published model version with KServe (0.16 or later: rollout.py): create or patch an
InferenceService, wait until the new version is rolled out, then send one canary request and
check the answer.

The InferenceService serves one complete version and nothing else. Its storageUris entry copies
the version folder (`<store>/models/mnist/<version>/`, the `/` last so that version 3 does not
also take 30) to `/mnt/models/<version>`: KServe's storage initializer copies what is under a
URI into its mountPath (kserve_storage.py `_download_s3`), and the tensorflow runtime runs TF
Serving with `--model_base_path=/mnt/models`, which loads the integer-named folders under it.
A `storageUri` would land the version's files in /mnt/models itself, where TF Serving finds no
version; the models prefix would hand TF Serving every version, and it loads the highest-
numbered folder even when an export has only claimed it. Before deploying, the version must be
complete in the store: `saved_model.pb`, which the export writes last (CLAIM.json comes first).

KServe's storage initializer reads S3 (MinIO included: unlike TF Serving, it reads s3://) with
the endpoint and credentials of the ServiceAccount `mnist-kserve` (manifests/overlays/kserve: a
Secret annotated serving.kserve.io/s3-*). The stock tensorflow runtime's image is too old for TF
2.21 SavedModels, so `runtimeVersion` names the TF Serving tag the plain Deployment uses.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path

from components.common import spec
from components.common.errors import InputError
from components.common.kube import INFERENCE_SERVICE, Kube, KubeError, own_namespace, restrict
from components.common.log import get_logger
from components.common.records import MAX_RECORD, RecordError, parse_record
from components.deploy import rollout

log = get_logger("deploy")
NAME = "mnist"
SERVICE_ACCOUNT = "mnist-kserve"
RUNTIME_VERSION = "2.19.1"  # as manifests/base/serving: serves SavedModels of TF 2.21
MODEL_BASE_PATH = "/mnt/models"  # the tensorflow runtime's --model_base_path
TMP_SIZE = "64Mi"  # TF Serving's scratch space, as manifests/base/serving gives it


def inference_service(version_uri: str, namespace: str, version: int) -> dict:
    """The InferenceService serving the version folder `version_uri` (s3://) as `version`, which
    an annotation repeats for people reading it. The predictor runs restricted, as
    manifests/base/serving does (TF Serving writes only /tmp)."""
    model = {
        "modelFormat": {"name": "tensorflow"},
        "runtimeVersion": RUNTIME_VERSION,
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    }
    storage = {"uri": version_uri.rstrip("/") + "/", "mountPath": f"{MODEL_BASE_PATH}/{version}"}
    predictor = {"serviceAccountName": SERVICE_ACCOUNT, "minReplicas": 1, "model": model}
    predictor["storageUris"] = [storage]  # what KServe's storage initializer copies, and where
    return {
        "apiVersion": INFERENCE_SERVICE.api_version,
        "kind": INFERENCE_SERVICE.kind,
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "mnist-kfp"},
            "annotations": {
                rollout.MODE_KEY: rollout.STANDARD,
                "sidecar.istio.io/inject": "false",
                "mnist-kfp/model-version": str(version),
            },
        },
        "spec": {"predictor": restrict(predictor, [model], tmp_size=TMP_SIZE)},
    }


def merge_patch(body: dict, existing: dict | None) -> dict:
    """What turns `existing` into `body`: its spec replaced (a field of an older step's, such
    as `model.storageUri`, which KServe refuses beside storageUris, removed), the mode
    annotation as rollout.mode_annotation says; other annotations and labels are kept."""
    if existing is None:
        return body
    annotations = {**body["metadata"]["annotations"]}
    annotations[rollout.MODE_KEY] = rollout.mode_annotation(existing)
    return {
        **body,
        "metadata": {**body["metadata"], "annotations": annotations},
        "spec": rollout.nulls(existing.get("spec") or {}, body["spec"]),
    }


def check_complete(store, version: int) -> None:
    """Refuse a version whose `saved_model.pb`, the export's last write, is not in `store` (the
    models prefix): one an export has claimed and is still writing, or never finished."""
    if store.stat(f"{version}/{spec.SAVED_MODEL_PB}") is not None:
        return
    claimed = next(iter(store.list(str(version))), None) is not None
    state = "claimed but not complete" if claimed else "not published"
    raise InputError(
        f"{store.uri(str(version))} is {state}: no {spec.SAVED_MODEL_PB}, which the export "
        "writes last; not serving it"
    )


def models_store(model_uri: str, s3_endpoint: str):
    """The store holding `model_uri`'s versions (its models prefix), for check_complete; None
    where this step has no store credentials (AWS_ACCESS_KEY_ID) to read it with."""
    import os

    from components.store import open_store

    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        log.warning("no store credentials here: not checking that %s is complete", model_uri)
        return None
    return open_store(model_uri.rstrip("/").rpartition("/")[0], s3_endpoint)


def predictor_url(obj: dict) -> str:
    status = obj.get("status") or {}
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise KubeError(f"InferenceService {NAME} is Ready but reports no URL")
    return url.rstrip("/")


def _request(request: urllib.request.Request | str, timeout: float, where: str) -> bytes:
    """The body of the answer, or one KubeError line saying why there is none."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.read(MAX_RECORD + 1)
    except (urllib.error.URLError, OSError) as e:
        raise KubeError(f"{where} failed: {e}") from None
    except http.client.HTTPException as e:  # an answer that is not HTTP, or one cut short
        raise KubeError(f"{where} failed: {type(e).__name__}") from None


def served_versions(url: str, timeout: float = 10.0) -> dict[int, str]:
    """The versions TF Serving reports for the model and their state (AVAILABLE, LOADING...):
    its model status API, GET /v1/models/<name>, on KServe's predictor."""
    where = f"model status request to {url}"
    raw = _request(f"{url}/v1/models/{NAME}", timeout, where)
    try:
        record = parse_record(raw, where, required={"model_version_status": list})
        return {int(s["version"]): str(s["state"]) for s in record["model_version_status"]}
    except RecordError as e:
        raise KubeError(str(e)) from None
    except (TypeError, KeyError, ValueError):
        raise KubeError(f"{where}: a version status is not {{version, state}}") from None


def canary_images(warmup_file: Path):
    """The images of the export's warm-up requests (assets.extra/tf_serving_warmup_requests)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    for record in tf.data.TFRecordDataset(str(warmup_file)):
        log_entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        tensor = log_entry.predict_log.request.inputs[spec.SIGNATURE_INPUT]
        return tf.make_ndarray(tensor)
    raise KubeError(f"{warmup_file} holds no warm-up request")


def canary(url: str, images, timeout: float = 30.0) -> list[int]:
    """One REST predict (KServe's v1 protocol) with the warm-up images; the classes, after
    checking that each answer is 10 probabilities summing to 1 whose argmax is the class."""
    body = json.dumps({"signature_name": spec.SIGNATURE, "instances": images.tolist()}).encode()
    request = urllib.request.Request(
        f"{url}/v1/models/{NAME}:predict", data=body, headers={"Content-Type": "application/json"}
    )
    where = f"canary answer from {url}"
    raw = _request(request, timeout, f"canary request to {url}")
    try:
        predictions = parse_record(raw, where, required={"predictions": list})["predictions"]
    except RecordError as e:
        raise KubeError(str(e)) from None
    classes = []
    for row in predictions:
        try:
            probabilities = [float(p) for p in row[spec.OUTPUT_PROBABILITIES]]
            predicted = int(row[spec.OUTPUT_CLASSES])
        except (TypeError, KeyError, ValueError, IndexError):
            raise KubeError(f"{where}: a row is not {{probabilities, classes}}") from None
        if len(probabilities) != 10 or abs(sum(probabilities) - 1) > 1e-3:
            raise KubeError(f"{where} is not 10 probabilities summing to 1")
        best = max(range(10), key=probabilities.__getitem__)
        if predicted != best:
            raise KubeError(f"{where}: class {predicted} != argmax {best}")
        classes.append(best)
    return classes


def wait_rolled_out(kube: Kube, namespace: str, version: int, state: rollout.Rollout, **wait):
    """Poll until KServe reports the rollout done (rollout.Rollout.verdict) and the predictor
    serves `version` (AVAILABLE in TF Serving's model status); the InferenceService then."""

    def outcome(obj: dict) -> bool | None:
        verdict = state.verdict(obj)
        if verdict is not True:
            return verdict
        try:
            served = served_versions(predictor_url(obj))
        except KubeError as e:  # the predictor may be starting, or moving to new pods
            state.why = str(e)
            return None
        if served.get(version) == "AVAILABLE":
            return True
        state.why = f"the predictor serves {served or 'no version'}, not version {version} yet"
        return None

    return kube.wait(
        INFERENCE_SERVICE, namespace, NAME, outcome, describe=lambda _: state.why, **wait
    )


def deploy(
    model_uri: str,
    warmup_file: Path,
    namespace: str = "",
    timeout: float = 900.0,
    kube: Kube | None = None,
    store=None,
    interval: float = 5.0,
) -> dict:
    """Serve the version folder `model_uri` with the InferenceService `mnist` (created, or
    patched), after checking it complete in `store` (its models prefix; None: not checked);
    wait until it is rolled out (at most `timeout` s), send the canary; returns url and
    version."""
    models_uri, _, name = model_uri.rstrip("/").rpartition("/")
    version = spec.version_number(name)
    if version is None:
        raise KubeError(f"{model_uri} does not end in a numbered version folder")
    if not models_uri.startswith("s3://"):
        raise KubeError(f"KServe reads the model from object storage: {models_uri} is not s3://")
    if store is not None:
        check_complete(store, version)
    namespace = namespace or own_namespace()
    kube = kube or Kube()
    log.info("%s", rollout.check_kserve(kube))
    existing = kube.find(INFERENCE_SERVICE, namespace, NAME)
    body = inference_service(f"{models_uri}/{version}", namespace, version)
    applied = kube.apply(INFERENCE_SERVICE, namespace, body, merge_patch(body, existing))
    state = rollout.Rollout.after(existing, applied)
    done = wait_rolled_out(kube, namespace, version, state, timeout=timeout, interval=interval)
    url = predictor_url(done)
    classes = canary(url, canary_images(warmup_file))
    log.info(
        "InferenceService %s/%s serves version %d at %s; canary classes %s",
        namespace, NAME, version, url, classes,
    )  # fmt: skip
    storage_uri = body["spec"]["predictor"]["storageUris"][0]["uri"]
    return {"url": url, "version": version, "namespace": namespace, "storage_uri": storage_uri}
