"""The deploy step against a Kubernetes API stand-in on 127.0.0.1 (tests/kube_server.py): the
InferenceService it writes validates against KServe's CRD (strictly), and create, patch, Ready,
Failed, a wait that times out and a 403 each read as they should. The canary request goes to a
stand-in of the predictor's REST API."""

from __future__ import annotations

import http.server
import json
from pathlib import Path

import numpy as np
import pytest

from components.common.kube import INFERENCE_SERVICE, VERBS, Kube, KubeError
from components.deploy import kserve
from tests import needs, servers
from tests.crds import errors
from tests.kube_server import client_for, kube_api

CRD = "serving.kserve.io_inferenceservices.yaml"
MODEL = "s3://mlpipeline/mnist/models/mnist/3"
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


def test_the_inference_service_validates_strictly_against_kserves_crd():
    body = kserve.inference_service("s3://mlpipeline/mnist/models/mnist", "team-a", 3)
    assert errors(body, CRD, "v1beta1") == []
    assert body["spec"]["predictor"]["model"]["runtimeVersion"] == kserve.RUNTIME_VERSION
    misspelt = json.loads(json.dumps(body))
    misspelt["spec"]["predictor"]["model"]["storageURI"] = MODEL
    assert any("storageURI" in e for e in errors(misspelt, CRD, "v1beta1"))


class Predictor(http.server.BaseHTTPRequestHandler):
    """The predictor's REST API: answers the canary as TF Serving would."""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = []
        for image in body["instances"]:
            p = np.full(10, 0.01)
            p[int(np.asarray(image).sum()) % 10] = 0.91
            rows.append({"probabilities": p.tolist(), "classes": int(p.argmax())})
        data = json.dumps({"predictions": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def warmup(tmp_path) -> Path:
    needs.module("tensorflow")
    from components.export.exporter import WARMUP_FILE, check_sample, write_warmup_requests

    write_warmup_requests(tmp_path, check_sample()[:8])
    return tmp_path / WARMUP_FILE


def test_deploy_creates_waits_for_ready_and_checks_a_canary(warmup):
    with kube_api() as (api, url), servers.serve(Predictor) as predictor:
        api.script_status(
            "inferenceservices", "mnist",
            {"conditions": [{"type": "PredictorReady", "status": "False", "reason": "Pending"}]},
            {**READY, "address": {"url": predictor}},
        )  # fmt: skip
        result = kserve.deploy(MODEL, warmup, "team-a", timeout=30, kube=Kube(client_for(url)))
        assert result == {
            "url": predictor.rstrip("/"),
            "version": 3,
            "namespace": "team-a",
            "storage_uri": "s3://mlpipeline/mnist/models/mnist",
        }
        (created,) = api.objects.values()
        assert errors(created | {"metadata": created["metadata"]}, CRD, "v1beta1") == []
        # a second deploy (a new version) patches the same InferenceService
        kserve.deploy(MODEL[:-1] + "4", warmup, "team-a", timeout=30, kube=Kube(client_for(url)))
        (patched,) = api.objects.values()
        assert patched["metadata"]["annotations"]["mnist-kfp/model-version"] == "4"
        assert [m for m, *_ in api.requests if m == "PATCH"] == ["PATCH"]


def test_a_failed_inference_service_names_its_reason(warmup):
    reason = {"reason": "RevisionFailed", "message": "image pull back-off"}
    failed = {"conditions": [{"type": "PredictorReady", "status": "False", **reason}]}
    with kube_api() as (api, url):
        api.script_status("inferenceservices", "mnist", failed)
        with pytest.raises(KubeError) as e:
            kserve.deploy(MODEL, warmup, "team-a", timeout=30, kube=Kube(client_for(url)))
    assert str(e.value) == (
        "InferenceService team-a/mnist failed: PredictorReady=False "
        "(RevisionFailed: image pull back-off)"
    )


def test_a_wait_that_never_ends_is_bounded(warmup):
    with kube_api() as (api, url):
        api.script_status("inferenceservices", "mnist", {"conditions": []})
        kube = Kube(client_for(url))
        kube.apply(INFERENCE_SERVICE, "team-a", kserve.inference_service("s3://b/m", "team-a", 1))
        with pytest.raises(KubeError, match=r"not done after 1\.0 s: no status yet"):
            kube.wait(INFERENCE_SERVICE, "team-a", "mnist", kserve.outcome, timeout=1, interval=0.1)


def test_a_forbidden_call_names_the_verb_the_role_lacks(warmup):
    with kube_api() as (api, url):
        api.forbid("create")
        with pytest.raises(KubeError) as e:
            kserve.deploy(MODEL, warmup, "team-a", timeout=5, kube=Kube(client_for(url)))
    assert "HTTP 403 forbidden: the pipeline's service account needs `create` on " in str(e.value)
    assert "inferenceservices.serving.kserve.io in team-a" in str(e.value)


@pytest.mark.parametrize("first", ["create", "get"])
def test_an_api_that_cannot_be_reached_is_one_line(warmup, first, monkeypatch):
    """The kubernetes client gives up on a refused connection with urllib3's MaxRetryError,
    which is no OSError: it left the step as a traceback."""
    kube = Kube(client_for(f"http://127.0.0.1:{servers.free_port()}"))
    if first == "get":  # the InferenceService was made; then the API went away
        monkeypatch.setattr(kube, "apply", lambda *args: {})
    where = f"cannot {first} InferenceService team-a/mnist: the Kubernetes API cannot be reached"
    with pytest.raises(KubeError, match=where):
        kserve.deploy(MODEL, warmup, "team-a", timeout=5, kube=kube)


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 two-hundred OK\r\n\r\n"])
def test_a_canary_to_something_that_speaks_no_http_is_one_kube_error(answer):
    """http.client's BadStatusLine is no OSError: it was a traceback."""
    with servers.banner_server(answer) as where, pytest.raises(KubeError) as e:
        kserve.canary(f"http://{where}", np.zeros((2, 28, 28), np.uint8))
    assert str(e.value).startswith(f"canary request to http://{where} failed: ")
    assert "\n" not in str(e.value)


def test_a_local_store_is_refused_in_one_line(warmup):
    with pytest.raises(KubeError, match="KServe reads the model from object storage"):
        kserve.deploy("/tmp/store/models/mnist/1", warmup, "team-a", kube=object())


def test_the_kserve_overlay_role_covers_every_call(tmp_path):
    import subprocess

    import yaml

    from tests.compile.test_manifests import copy_manifests

    root = copy_manifests(tmp_path / "manifests")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(root / "overlays" / "kserve")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    docs = list(yaml.safe_load_all(rendered.stdout))
    roles = [d for d in docs if d["kind"] == "Role"]
    rules = [r for role in roles for r in role["rules"] if "serving.kserve.io" in r["apiGroups"]]
    assert rules and set(VERBS) <= {v for r in rules for v in r["verbs"]}
    assert all(r["resources"] == ["inferenceservices"] for r in rules)
    secret = next(d for d in docs if d["kind"] == "Secret" and "kserve" in d["metadata"]["name"])
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    account = next(d for d in docs if d["kind"] == "ServiceAccount"
                   and d["metadata"]["name"] == kserve.SERVICE_ACCOUNT)  # fmt: skip
    assert {"name": secret["metadata"]["name"]} in account["secrets"]


@pytest.mark.parametrize(
    "answer",
    [b"[]", b"{}", b'{"predictions": {"a": 1}}', b'{"predictions": ["row"]}',
     b'{"predictions": [{"probabilities": [0.1], "classes": 0}]}',
     b'{"predictions": [{"probabilities": "x", "classes": "y"}]}', b"no json"],
)  # fmt: skip
def test_a_canary_answer_that_is_not_predictions_is_one_kube_error(answer):
    class Liar(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    with servers.serve(Liar) as url, pytest.raises(KubeError) as e:
        kserve.canary(url.rstrip("/"), np.zeros((2, 28, 28), np.uint8))
    assert "\n" not in str(e.value) and len(str(e.value)) < 300
