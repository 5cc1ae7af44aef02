"""Serve the published model with KServe: create or patch an InferenceService, wait until it
is Ready, then send one canary request and check the answer.

The InferenceService points at the models prefix (`<store>/models/mnist`), which holds TF
Serving's versioned layout; KServe's storage initializer copies it from S3 (MinIO included:
unlike TF Serving, it reads s3://), with the endpoint and credentials of the ServiceAccount
`mnist-kserve` (manifests/overlays/kserve: a Secret annotated serving.kserve.io/s3-*). The stock
tensorflow runtime's image is too old for TF 2.21 SavedModels, so `runtimeVersion` names the TF
Serving tag the plain Deployment uses.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path

from components.common import spec
from components.common.kube import (
    INFERENCE_SERVICE,
    Kube,
    KubeError,
    condition,
    own_namespace,
    restrict,
)
from components.common.log import get_logger
from components.common.records import MAX_RECORD, RecordError, parse_record

log = get_logger("deploy")
NAME = "mnist"
SERVICE_ACCOUNT = "mnist-kserve"
RUNTIME_VERSION = "2.19.1"  # as manifests/base/serving: serves SavedModels of TF 2.21
# KServe 0.17 renamed RawDeployment to Standard (the default) and Serverless to Knative.
DEPLOYMENT_MODE = "Standard"
TMP_SIZE = "64Mi"  # TF Serving's scratch space, as manifests/base/serving gives it


def inference_service(models_uri: str, namespace: str, version: int) -> dict:
    """The InferenceService for the models prefix; `version` (the one just published) goes in
    an annotation, so each deploy changes the object and KServe rolls out the new model. The
    predictor runs restricted, as manifests/base/serving does (TF Serving writes only /tmp)."""
    model = {
        "modelFormat": {"name": "tensorflow"},
        "runtimeVersion": RUNTIME_VERSION,
        "storageUri": models_uri,
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    }
    predictor = {"serviceAccountName": SERVICE_ACCOUNT, "minReplicas": 1, "model": model}
    return {
        "apiVersion": INFERENCE_SERVICE.api_version,
        "kind": INFERENCE_SERVICE.kind,
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "mnist-kfp"},
            "annotations": {
                "serving.kserve.io/deploymentMode": DEPLOYMENT_MODE,
                "sidecar.istio.io/inject": "false",
                "mnist-kfp/model-version": str(version),
            },
        },
        "spec": {"predictor": restrict(predictor, [model], tmp_size=TMP_SIZE)},
    }


def outcome(obj: dict) -> bool | None:
    """True when Ready; False when KServe reports a failure (a condition False whose reason
    says it failed, or the model failed to load); None while it is getting there."""
    if condition(obj, "Ready"):
        return True
    status = obj.get("status") or {}
    target = ((status.get("modelStatus") or {}).get("states") or {}).get("targetModelState")
    if target == "FailedToLoad":
        return False
    for c in status.get("conditions") or []:
        reason = str(c.get("reason") or "")
        if str(c.get("status")) == "False" and ("Fail" in reason or "Error" in reason):
            return False
    return None


def predictor_url(obj: dict) -> str:
    status = obj.get("status") or {}
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise KubeError(f"InferenceService {NAME} is Ready but reports no URL")
    return url.rstrip("/")


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
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read(MAX_RECORD + 1)
        predictions = parse_record(raw, where, required={"predictions": list})["predictions"]
    except (urllib.error.URLError, OSError) as e:
        raise KubeError(f"canary request to {url} failed: {e}") from None
    except http.client.HTTPException as e:  # an answer that is not HTTP, or one cut short
        raise KubeError(f"canary request to {url} failed: {type(e).__name__}") from None
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


def deploy(
    model_uri: str,
    warmup_file: Path,
    namespace: str = "",
    timeout: float = 900.0,
    kube: Kube | None = None,
) -> dict:
    """Create or patch the InferenceService for the models prefix above `model_uri` (a version
    folder), wait for Ready (at most `timeout` s), send the canary; returns url and version."""
    models_uri, _, version = model_uri.rstrip("/").rpartition("/")
    if spec.version_number(version) is None:
        raise KubeError(f"{model_uri} does not end in a numbered version folder")
    if not models_uri.startswith("s3://"):
        raise KubeError(f"KServe reads the model from object storage: {models_uri} is not s3://")
    namespace = namespace or own_namespace()
    kube = kube or Kube()
    kube.apply(INFERENCE_SERVICE, namespace, inference_service(models_uri, namespace, int(version)))
    ready = kube.wait(INFERENCE_SERVICE, namespace, NAME, outcome, timeout)
    url = predictor_url(ready)
    classes = canary(url, canary_images(warmup_file))
    log.info(
        "InferenceService %s/%s is Ready at %s; canary classes %s", namespace, NAME, url, classes
    )
    return {"url": url, "version": int(version), "namespace": namespace, "storage_uri": models_uri}
