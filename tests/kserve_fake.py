"""KServe as the deploy step meets it, on top of the Kubernetes API stand-in (kube_server.py):
its controller, its validating webhook, the schema its CRD publishes, and the predictor (TF
Serving's REST API) that the InferenceService's pods run. Written from KServe's source (v0.16
to v0.20), not from its documentation:

- The controller moves the status one step per GET of the InferenceService. After a change to
  what the predictor's pods carry (the spec, or the annotations, which KServe copies onto them),
  the old status stays for `lag` GETs: Ready True, the old revision, the old pods serving the
  old version. Then the rollout takes `rollout` GETs (Standard: PredictorReady Unknown while
  the Deployment progresses; Knative: the new revision created but not ready, the old one
  Ready with all the traffic). Then the new pods serve: the predictor answers for the version
  its storageUris entry copied under /mnt/models (an older InferenceService's storageUri at the
  models prefix: the highest version, named by its annotation).
- status.observedGeneration is the child's counter (the Deployment's or the Knative Service's,
  KServe's PropagateRawStatus / PropagateStatus: kserve/kserve#6081): one more per change the
  controller rolls out, however many generations of the InferenceService it folds together.
- The webhook refuses storageUri beside storageUris, and a deploymentMode annotation that
  differs from status.deploymentMode: compared as spelt up to 0.18, normalized from 0.19.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import PurePosixPath

import numpy as np
import yaml

from tests import servers
from tests.crds import CRDS
from tests.kube_server import KubeApi, kube_api

PLURAL = "inferenceservices"
MODE_KEY = "serving.kserve.io/deploymentMode"
RENAMED = {"RawDeployment": "Standard", "Serverless": "Knative"}
OPENAPI_PATH = "/openapi/v3/apis/serving.kserve.io/v1beta1"
MODEL_BASE_PATH = "/mnt/models"  # the tensorflow runtime's --model_base_path


def openapi_document(storage_uris: bool = True) -> dict:
    """The OpenAPI v3 document the API server publishes for serving.kserve.io/v1beta1, from
    the vendored CRD (KServe 0.20); without storageUris, as KServe 0.15's CRD has it."""
    schema = copy.deepcopy(_crd_schema())
    if not storage_uris:
        del schema["properties"]["spec"]["properties"]["predictor"]["properties"]["storageUris"]
    gvk = {"group": "serving.kserve.io", "kind": "InferenceService", "version": "v1beta1"}
    schema["x-kubernetes-group-version-kind"] = [gvk]
    schemas = {"io.kserve.serving.v1beta1.InferenceService": schema}
    return {"openapi": "3.0.0", "components": {"schemas": schemas}}


@functools.cache
def _crd_schema() -> dict:
    text = (CRDS / "serving.kserve.io_inferenceservices.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return served["schema"]["openAPIV3Schema"]


def served_version(obj: dict) -> int | None:
    """The version TF Serving loads in the pods made from `obj`: the integer folder the
    storageUris entry fills under --model_base_path."""
    predictor = obj["spec"]["predictor"]
    for entry in predictor.get("storageUris") or []:
        path = PurePosixPath(entry["mountPath"])
        if str(path.parent) == MODEL_BASE_PATH and path.name.isdigit():
            return int(path.name)
    if (predictor.get("model") or {}).get("storageUri"):  # the models prefix: the highest
        return int(obj["metadata"]["annotations"]["mnist-kfp/model-version"])
    return None


class KServe:
    """The controller, webhook and predictor. `served` is the version the predictor answers
    for; `answers` the version behind each predict; `fail` versions whose pods never load."""

    def __init__(self, mode: str = "Standard", lag: int = 2, rollout: int = 2, webhook="0.19"):
        self.mode, self.lag, self.rollout, self.webhook = mode, lag, rollout, webhook
        self.url = ""  # the predictor's, set by kserve_api()
        self.served: int | None = None
        self.answers: list[int | None] = []
        self.fail: set[int] = set()
        self.child_generation = 0
        self._live: str | None = None  # what the running pods were made from
        self._pending: str | None = None  # what KServe is rolling out
        self._ticks = 0
        self._revision = 0
        self._lock = threading.Lock()

    def running(self, obj: dict, version: int | None) -> None:
        """Take `obj` (with the status a test gave it) as rolled out: its pods serve `version`."""
        with self._lock:
            self._live = json.dumps(
                [obj["spec"], obj["metadata"].get("annotations")], sort_keys=True
            )
            self.served, self._ticks = version, 0

    def reconcile(self, obj: dict) -> None:
        """One GET's worth of KServe's work on `obj`."""
        with self._lock:
            wanted = json.dumps([obj["spec"], obj["metadata"].get("annotations")], sort_keys=True)
            if wanted == self._live:
                return
            if wanted != self._pending:  # a newer change: KServe rolls out the latest one
                self._pending, self._ticks = wanted, 0
            self._ticks += 1
            status = obj.setdefault("status", {})
            if self._ticks <= self.lag:
                return  # not reconciled yet: the old status stays
            if self._ticks == self.lag + 1:  # the child's spec changes once per rollout
                self.child_generation += 1
                self._revision += 1
            self._write(obj, status, done=self._ticks > self.lag + self.rollout)
            if self._ticks > self.lag + self.rollout:
                self._live, self._ticks = wanted, 0

    def _write(self, obj: dict, status: dict, done: bool) -> None:
        recorded = status.get("deploymentMode") or RENAMED.get(
            obj["metadata"].get("annotations", {}).get(MODE_KEY, "Standard"), "Standard"
        )
        version = served_version(obj)
        failing = done and version in self.fail
        status.update(
            deploymentMode=recorded,
            observedGeneration=self.child_generation,
            url=self.url,
            address={"url": self.url},
        )
        new = f"{obj['metadata']['name']}-predictor-{self._revision:05d}"
        old = (status.get("components", {}).get("predictor") or {}).get("latestReadyRevision")
        if recorded == "Knative":
            predictor = {"latestCreatedRevision": new, "latestReadyRevision": new if done else old}
            ready_one = predictor["latestReadyRevision"]
            predictor["traffic"] = [{"revisionName": ready_one, "percent": 100,
                                     "latestRevision": done}]  # fmt: skip
            status["components"] = {"predictor": predictor}
        if failing:
            status["conditions"] = _conditions("False", "RevisionFailed", "model failed to load")
            status["modelStatus"] = {"states": {"targetModelState": "FailedToLoad"}}
        elif done:
            status["conditions"] = _conditions("True", "NewReplicaSetAvailable", "")
            status["modelStatus"] = {"states": {"targetModelState": "Loaded"}}
            self.served = version
        else:  # the new pods load the model
            status["modelStatus"] = {"states": {"targetModelState": "Loading"}}
            if recorded != "Knative":  # Standard: the Deployment progresses
                status["conditions"] = _conditions("Unknown", "ReplicaSetUpdated", "rolling out")

    def admit(self, old: dict | None, new: dict) -> str:
        """KServe's validating webhook, the two rules the deploy step meets."""
        predictor = new["spec"]["predictor"]
        if (predictor.get("model") or {}).get("storageUri") and predictor.get("storageUris"):
            return "Setting both StorageURI and StorageURIs is not supported."
        recorded = ((old or {}).get("status") or {}).get("deploymentMode")
        asked = new["metadata"].get("annotations", {}).get(MODE_KEY)
        if not recorded or asked is None:
            return ""
        expected = RENAMED.get(recorded, recorded) if self.webhook >= "0.19" else recorded
        if asked != expected:
            return (
                f"update rejected: deploymentMode cannot be changed from '{expected}' to '{asked}'"
            )
        return ""


def _conditions(state: str, reason: str, message: str) -> list[dict]:
    return [
        {"type": kind, "status": state, "reason": reason, "message": message}
        for kind in ("PredictorReady", "Ready")
    ]


def _predictor(kserve: KServe):
    """TF Serving's REST API, as the predictor's pods run it: the model status and predict."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def _answer(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if kserve.served is None:
                return self._answer(404, {"error": "Servable not found for request: mnist"})
            status = {"error_code": "OK", "error_message": ""}
            versions = [{"version": str(kserve.served), "state": "AVAILABLE", "status": status}]
            return self._answer(200, {"model_version_status": versions})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            kserve.answers.append(kserve.served)
            rows = []
            for image in body["instances"]:
                p = np.full(10, 0.01)
                p[int(np.asarray(image).sum()) % 10] = 0.91
                rows.append({"probabilities": p.tolist(), "classes": int(p.argmax())})
            self._answer(200, {"predictions": rows})

    return Handler


@contextlib.contextmanager
def kserve_api(kserve: KServe, storage_uris: bool = True) -> Iterator[tuple[KubeApi, str]]:
    """(the Kubernetes API stand-in with `kserve` installed, its URL)."""
    with kube_api() as (api, url), servers.serve(_predictor(kserve)) as predictor:
        kserve.url = predictor.rstrip("/")
        api.controllers[PLURAL] = kserve.reconcile
        api.admission[PLURAL] = kserve.admit
        api.documents[OPENAPI_PATH] = openapi_document(storage_uris)
        yield api, url
