"""The deploy step field by field, as its readers read it: the InferenceService as KServe,
Istio and the API server's merge patch take it; TF Serving's model status and predict answers
as the step reads them (tests/kserve_fake.py's predictor, or a stand-in that records what it
was sent); KServe's status as rollout.py reads it (readiness, failures, revisions and their
traffic, the observed generation); and each one-line error or log line a user sees."""

from __future__ import annotations

import copy
import http.server
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from kubernetes.utils import parse_quantity

from components.common.kube import INFERENCE_SERVICE, Kube, KubeError
from components.deploy import kserve, rollout
from tests import needs, servers
from tests.kserve_fake import PLURAL, KServe, kserve_api, openapi_document
from tests.kube_server import client_for, kube_api, merge

MODELS = "s3://mlpipeline/mnist/models/mnist"
READY = {"type": "Ready", "status": "True"}


# --- the InferenceService, as KServe reads it ------------------------------------------------


@pytest.mark.parametrize("uri", [f"{MODELS}/3", f"{MODELS}/3/"])
def test_the_predictor_kserve_makes_from_the_inference_service(uri):
    isvc = kserve.inference_service(uri, "team-a", 3)
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert (isvc["metadata"]["name"], isvc["metadata"]["namespace"]) == ("mnist", "team-a")
    assert isvc["metadata"]["labels"] == {"app.kubernetes.io/part-of": "mnist-kfp"}
    # KServe's mode, Istio's injection (off: the predictor runs without a sidecar), the version
    assert isvc["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "sidecar.istio.io/inject": "false",
        "mnist-kfp/model-version": "3",
    }
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "mnist-kserve"  # its Secret: the S3 settings
    assert predictor["minReplicas"] == 1  # never scaled to zero: the canary finds a pod
    # the version folder, one `/` last (3 is not 30), copied to where TF Serving finds version 3
    assert predictor["storageUris"] == [{"uri": f"{MODELS}/3/", "mountPath": "/mnt/models/3"}]
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    assert model["runtimeVersion"] == "2.19.1"
    quantities = {
        level: {k: parse_quantity(v) for k, v in model["resources"][level].items()}
        for level in ("requests", "limits")
    }
    assert quantities == {
        "requests": {"cpu": parse_quantity("0.5"), "memory": 512 * 2**20},
        "limits": {"cpu": 2, "memory": 2 * 2**30},
    }
    (tmp,) = predictor["volumes"]
    assert parse_quantity(tmp["emptyDir"]["sizeLimit"]) == 64 * 2**20
    assert {"name": tmp["name"], "mountPath": "/tmp"} in model["volumeMounts"]
    assert model["securityContext"]["readOnlyRootFilesystem"] is True


def older_step(mode: str, annotation: str) -> dict:
    """An InferenceService an older step left: storageUri at the models prefix, a canary
    split, an annotation of someone else's, and the mode KServe recorded for it."""
    obj = kserve.inference_service(f"{MODELS}/2", "team-a", 2)
    obj["metadata"]["annotations"].update({rollout.MODE_KEY: annotation, "team/owner": "ana"})
    obj["metadata"]["generation"] = 7
    predictor = obj["spec"]["predictor"]
    del predictor["storageUris"]
    predictor["model"]["storageUri"] = MODELS
    predictor["canaryTrafficPercent"] = 10
    obj["status"] = {"deploymentMode": mode}
    return obj


@pytest.mark.parametrize(
    "mode, annotation, expected",
    [("Knative", "Serverless", None), ("RawDeployment", "Standard", None),
     ("Standard", "Standard", "Standard")],
)  # fmt: skip
def test_the_merge_patch_leaves_our_spec_and_the_mode_kserve_accepts(mode, annotation, expected):
    """Applied as the API server applies a merge patch (RFC 7386): the spec is ours alone
    (storageUri and the canary split of the older step removed), the mode annotation is
    Standard only where KServe recorded Standard and gone otherwise, others' annotations stay."""
    body = kserve.inference_service(f"{MODELS}/3", "team-a", 3)
    existing = older_step(mode, annotation)
    patched = merge(copy.deepcopy(existing), kserve.merge_patch(body, existing))
    assert patched["spec"] == body["spec"]
    annotations = patched["metadata"]["annotations"]
    assert annotations.get(rollout.MODE_KEY) == expected
    assert annotations["team/owner"] == "ana"
    assert annotations["mnist-kfp/model-version"] == "3"
    assert patched["metadata"]["labels"] == body["metadata"]["labels"]
    assert patched["metadata"]["name"] == "mnist"


def test_a_new_inference_service_is_created_as_written_and_one_without_spec_gets_ours():
    body = kserve.inference_service(f"{MODELS}/3", "team-a", 3)
    assert kserve.merge_patch(body, None) is body
    bare = {"metadata": {"name": "mnist", "annotations": {}}, "status": {}}
    assert kserve.merge_patch(body, bare)["spec"] == body["spec"]


def test_the_version_is_checked_in_the_store_that_holds_the_models(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKETESTKEY0042")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-Zq9xW3-do-not-log")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = kserve.models_store(f"{MODELS}/3/", "http://127.0.0.1:9")
    assert (s3.uri("3"), s3.endpoint) == (f"{MODELS}/3", "127.0.0.1:9")
    local = kserve.models_store(f"{tmp_path}/models/mnist/3/", "")
    assert local.uri("3") == str(tmp_path / "models" / "mnist" / "3")


# --- TF Serving's answers, as the step reads them -------------------------------------------


class Predictor:
    """A stand-in for TF Serving's REST API that answers every request with `answer` and
    records each one as (method, path, content type, body)."""

    def __init__(self, answer: bytes):
        self.answer = answer
        self.sent: list[tuple[str, str, str, object]] = []

    def handler(self):
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                kind = self.headers.get("Content-Type", "")
                stand_in.sent.append((self.command, self.path, kind, body))
                self.send_response(200)
                self.send_header("Content-Length", str(len(stand_in.answer)))
                self.end_headers()
                self.wfile.write(stand_in.answer)

            do_GET = do_POST = _answer

        return Handler


def rows(*classes: int, probabilities=None) -> bytes:
    answer = []
    for c in classes:
        p = np.full(10, 0.01)
        p[c] = 0.91
        answer.append({"probabilities": probabilities or p.tolist(), "classes": c})
    return json.dumps({"predictions": answer}).encode()


def test_the_model_status_is_each_version_and_its_state():
    status = {"model_version_status": [
        {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK"}},
        {"version": "4", "state": "LOADING", "status": {"error_code": "OK"}}]}  # fmt: skip
    predictor = Predictor(json.dumps(status).encode())
    with servers.serve(predictor.handler()) as url:
        assert kserve.served_versions(url.rstrip("/")) == {3: "AVAILABLE", 4: "LOADING"}
    assert [(m, p) for m, p, *_ in predictor.sent] == [("GET", "/v1/models/mnist")]


@pytest.mark.parametrize(
    "answer, why",
    [(b"not json", ": not valid JSON (JSONDecodeError)"),
     (b"{}", ": has no 'model_version_status' field"),
     (b'{"model_version_status": [{"version": "three", "state": "AVAILABLE"}]}',
      ": a version status is not {version, state}"),
     (b'{"model_version_status": [{"state": "AVAILABLE"}]}',
      ": a version status is not {version, state}")],
)  # fmt: skip
def test_a_model_status_that_is_not_one_is_one_line(answer, why):
    with servers.serve(Predictor(answer).handler()) as url, pytest.raises(KubeError) as e:
        kserve.served_versions(url.rstrip("/"))
    assert str(e.value) == f"model status request to {url.rstrip('/')}{why}"


def test_the_canary_sends_the_images_and_returns_the_classes_answered():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    predictor = Predictor(rows(7, 2))
    with servers.serve(predictor.handler()) as url:
        assert kserve.canary(url.rstrip("/"), images) == [7, 2]
    ((method, path, kind, body),) = predictor.sent
    assert (method, path, kind.lower()) == ("POST", "/v1/models/mnist:predict", "application/json")
    assert body == {"signature_name": "serving_default", "instances": images.tolist()}


@pytest.mark.parametrize(
    "answer, why",
    [(b"{}", ": has no 'predictions' field"),
     (b'{"predictions": ["row"]}', ": a row is not {probabilities, classes}"),
     (rows(3, probabilities=[0.05] * 10), " is not 10 probabilities summing to 1"),
     (rows(3, probabilities=[0.1] * 9 + [0.05] * 2), " is not 10 probabilities summing to 1"),
     (rows(3, probabilities=[0.1] * 7 + [0.3]), " is not 10 probabilities summing to 1"),
     (rows(3, probabilities=[0.01] * 7 + [0.91] + [0.01] * 2), ": class 3 != argmax 7")],
)  # fmt: skip
def test_a_canary_answer_that_is_wrong_says_what_is_wrong(answer, why):
    with servers.serve(Predictor(answer).handler()) as url, pytest.raises(KubeError) as e:
        kserve.canary(url.rstrip("/"), np.zeros((1, 28, 28), np.uint8))
    assert str(e.value) == f"canary answer from {url.rstrip('/')}{why}"


def test_probabilities_summing_to_1_within_rounding_are_taken():
    p = [0.0999] * 9 + [0.1]  # 0.9991: as float32 probabilities may sum
    with servers.serve(Predictor(rows(9, probabilities=p)).handler()) as url:
        assert kserve.canary(url.rstrip("/"), np.zeros((1, 28, 28), np.uint8)) == [9]


@pytest.fixture
def silent_predictor():
    """A predictor that takes requests and answers none until the test ends."""
    release = threading.Event()

    class Silent(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def _hold(self):
            release.wait(30)
            self.send_response(200)
            self.end_headers()

        do_GET = do_POST = _hold

    with servers.serve(Silent) as url:
        yield url.rstrip("/")
        release.set()


def test_a_predictor_that_does_not_answer_is_given_up_on_in_the_time_given(silent_predictor):
    url = silent_predictor
    with pytest.raises(KubeError) as e:
        kserve.served_versions(url, timeout=0.2)
    assert str(e.value) == f"model status request to {url} failed: timed out"
    with pytest.raises(KubeError) as e:
        kserve.canary(url, np.zeros((1, 28, 28), np.uint8), timeout=0.2)
    assert str(e.value) == f"canary request to {url} failed: timed out"


FLOOD = 64 << 20  # bytes: far more than the 4 MB read and the sockets' buffers hold


def test_an_answer_far_too_large_is_read_no_further_than_the_records_bound():
    """The predictor sends up to 64 MB; the step reads 4 MB and one byte, refuses the answer
    and hangs up: the predictor could not send it all (the rest would have been read into
    memory for nothing, and an answer that never ends, forever)."""
    sent, done = [], threading.Event()

    class Flood(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):
            self.send_response(200)
            self.end_headers()
            chunk, total = b" " * 65536, 0
            try:
                while total < FLOOD:
                    self.wfile.write(chunk)
                    total += len(chunk)
            except OSError:
                pass
            finally:
                sent.append(total)
                done.set()

    with servers.serve(Flood) as url, pytest.raises(KubeError) as e:
        kserve.canary(url.rstrip("/"), np.zeros((1, 28, 28), np.uint8))
    assert str(e.value) == (
        f"canary answer from {url.rstrip('/')}: larger than 4 MB; not a record of ours"
    )
    assert done.wait(30) and sent[0] < FLOOD


def test_no_predictor_there_and_no_http_answer_are_one_line_each():
    url = f"http://127.0.0.1:{servers.free_port()}"
    with pytest.raises(KubeError) as e:
        kserve.served_versions(url)
    assert str(e.value).startswith(f"model status request to {url} failed: <urlopen error ")
    assert "Connection refused" in str(e.value)
    with servers.banner_server(b"SSH-2.0-OpenSSH_9.2\r\n") as where, pytest.raises(KubeError) as e:
        kserve.canary(f"http://{where}", np.zeros((1, 28, 28), np.uint8))
    assert str(e.value) == f"canary request to http://{where} failed: BadStatusLine"


@pytest.mark.parametrize(
    "status, url",
    [({"address": {"url": "http://mnist-predictor.team-a.svc.cluster.local/"},
       "url": "http://mnist.team-a.example.com"}, "http://mnist-predictor.team-a.svc.cluster.local"),
     ({"address": {}, "url": "http://mnist.team-a.example.com/"}, "http://mnist.team-a.example.com"),
     ({"url": "http://mnist.team-a.example.com"}, "http://mnist.team-a.example.com")],
)  # fmt: skip
def test_the_predictor_is_asked_at_the_address_kserve_reports(status, url):
    """status.address.url (the cluster-local address) first, else status.url."""
    assert kserve.predictor_url({"status": status}) == url


@pytest.mark.parametrize("obj", [{}, {"status": None}, {"status": {"address": {"url": ""}}}])
def test_a_ready_inference_service_without_url_is_one_line(obj):
    with pytest.raises(KubeError) as e:
        kserve.predictor_url(obj)
    assert str(e.value) == "InferenceService mnist is Ready but reports no URL"


# --- the deploy step against KServe's stand-in ----------------------------------------------


@pytest.fixture
def images(monkeypatch):
    """The canary's images without TensorFlow: two blank ones, class 0 to the fake predictor."""
    monkeypatch.setattr(kserve, "canary_images", lambda _: np.zeros((2, 28, 28), np.uint8))


def test_a_step_given_no_namespace_serves_in_its_own_and_says_so(images, monkeypatch, caplog):
    monkeypatch.delenv(rollout.VERSION_ENV, raising=False)
    monkeypatch.setattr(kserve, "own_namespace", lambda: "team-b")
    fake = KServe(lag=0, rollout=1)
    caplog.set_level(logging.INFO)
    with kserve_api(fake) as (api, url):
        result = kserve.deploy(f"{MODELS}/3/", Path("-"), kube=Kube(client_for(url)),
                               timeout=20, interval=0.02)  # fmt: skip
        (key,) = api.objects
    assert key == (PLURAL, "team-b", "mnist")
    assert result == {"url": fake.url, "version": 3, "namespace": "team-b",
                      "storage_uri": f"{MODELS}/3/"}  # fmt: skip
    assert fake.answers == [3]
    lines = [r.getMessage() for r in caplog.records if r.name == "mnist.deploy"]
    assert "KServe 0.16 or later (spec.predictor.storageUris is in its schema)" in lines
    assert (
        f"InferenceService team-b/mnist serves version 3 at {fake.url}; canary classes [0, 0]"
        in lines
    )


def test_the_step_polls_kserve_at_the_interval_it_is_given(images, monkeypatch):
    import time

    from components.common import kube as kube_module

    slept, sleep = [], time.sleep
    monkeypatch.setattr(kube_module.time, "sleep", lambda s: slept.append(s) or sleep(0.001))
    monkeypatch.setenv(rollout.VERSION_ENV, "0.16")
    with kserve_api(KServe(lag=1, rollout=2)) as (_, url):
        kserve.deploy(f"{MODELS}/3", Path("-"), "team-a", kube=Kube(client_for(url)),
                      timeout=60, interval=0.25)  # fmt: skip
    assert slept and set(slept) == {0.25}


@pytest.mark.parametrize(
    "uri, why",
    [(f"{MODELS}/3X", f"{MODELS}/3X does not end in a numbered version folder"),
     (f"{MODELS}/", f"{MODELS}/ does not end in a numbered version folder"),
     ("/tmp/store/models/mnist/1",
      "KServe reads the model from object storage: /tmp/store/models/mnist is not s3://")],
)  # fmt: skip
def test_a_model_uri_that_is_no_version_folder_in_s3_is_refused_in_one_line(uri, why):
    with pytest.raises(KubeError) as e:
        kserve.deploy(uri, Path("-"), "team-a", kube=object())
    assert str(e.value) == why


def scripted(api, url: str, status: dict) -> Kube:
    api.script_status("inferenceservices", "mnist", status)
    return Kube(client_for(url))


def test_a_ready_status_whose_predictor_cannot_be_asked_times_out_saying_why(images, monkeypatch):
    monkeypatch.setenv(rollout.VERSION_ENV, "0.16")
    dead = f"http://127.0.0.1:{servers.free_port()}"
    with kube_api() as (api, url):
        kube = scripted(api, url, {"conditions": [READY], "address": {"url": dead}})
        with pytest.raises(KubeError) as e:
            kserve.deploy(f"{MODELS}/3", Path("-"), "team-a", kube=kube, timeout=0.3,
                          interval=0.05)  # fmt: skip
    assert str(e.value).startswith(
        "InferenceService team-a/mnist not done after 0.3 s: model status request to "
        f"{dead} failed: <urlopen error "
    )


def test_a_predictor_serving_no_version_yet_times_out_saying_so(images, monkeypatch):
    monkeypatch.setenv(rollout.VERSION_ENV, "0.16")
    predictor = Predictor(b'{"model_version_status": []}')
    with kube_api() as (api, url), servers.serve(predictor.handler()) as serving:
        kube = scripted(api, url, {"conditions": [READY], "address": {"url": serving}})
        with pytest.raises(KubeError) as e:
            kserve.deploy(f"{MODELS}/3", Path("-"), "team-a", kube=kube, timeout=0.3,
                          interval=0.05)  # fmt: skip
    assert str(e.value) == (
        "InferenceService team-a/mnist not done after 0.3 s: the predictor serves no version, "
        "not version 3 yet"
    )


def test_an_empty_warmup_file_is_one_line(tmp_path):
    needs.module("tensorflow")
    empty = tmp_path / "tf_serving_warmup_requests"
    empty.write_bytes(b"")
    with pytest.raises(KubeError) as e:
        kserve.canary_images(empty)
    assert str(e.value) == f"{empty} holds no warm-up request"


# --- KServe's version ---------------------------------------------------------------------


class Schema:
    """A Kube whose API server publishes `document` for serving.kserve.io/v1beta1."""

    def __init__(self, document: dict):
        self.document = document

    def openapi(self, kind):
        assert kind is INFERENCE_SERVICE
        return self.document


TOO_OLD = (
    "serving one complete model version needs spec.predictor.storageUris and the Standard "
    "deployment mode, both from KServe 0.16"
)


def test_the_schema_says_which_kserve_is_installed(monkeypatch, caplog):
    monkeypatch.delenv(rollout.VERSION_ENV, raising=False)
    assert rollout.check_kserve(Schema(openapi_document())) == (
        "KServe 0.16 or later (spec.predictor.storageUris is in its schema)"
    )
    with pytest.raises(KubeError) as e:
        rollout.check_kserve(Schema(openapi_document(storage_uris=False)))
    assert str(e.value) == (
        "KServe older than 0.16 (its InferenceService schema has no spec.predictor.storageUris): "
        + TOO_OLD
    )
    caplog.set_level(logging.WARNING)
    assert rollout.check_kserve(Schema({"components": {"schemas": {}}})) == (
        "KServe taken for 0.16 or later"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "cannot tell KServe's version (the published schema holds no InferenceService "
        "predictor): MNIST_KSERVE_VERSION=<x.y> says it"
    ]


@pytest.mark.parametrize(
    "given, said",
    [("0.16", "KServe 0.16 (MNIST_KSERVE_VERSION)"),
     (" v0.17.1 ", "KServe v0.17.1 (MNIST_KSERVE_VERSION)"),
     ("0.19.0-rc1", "KServe 0.19.0-rc1 (MNIST_KSERVE_VERSION)"),
     ("1.0", "KServe 1.0 (MNIST_KSERVE_VERSION)")],
)  # fmt: skip
def test_a_version_given_at_or_after_0_16_is_taken_as_said(monkeypatch, given, said):
    monkeypatch.setenv(rollout.VERSION_ENV, given)
    assert rollout.check_kserve(kube=None) == said


@pytest.mark.parametrize("given", ["0.15", "0.9.3", "v0.15.0-rc0"])
def test_a_version_given_before_0_16_is_refused_saying_why(monkeypatch, given):
    monkeypatch.setenv(rollout.VERSION_ENV, given)
    with pytest.raises(KubeError) as e:
        rollout.check_kserve(kube=None)
    assert str(e.value) == f"KServe older than 0.16 (MNIST_KSERVE_VERSION={given}): {TOO_OLD}"


def test_the_inference_service_schema_is_found_among_the_others():
    """The API server's document holds every schema of the group/version: the list kind and
    the shared ones come first here; an InferenceService schema that does not describe its
    predictor tells nothing."""
    gvk = {"group": "serving.kserve.io", "version": "v1beta1"}
    ours = openapi_document()["components"]["schemas"]
    (isvc,) = ours.values()
    listing = {"x-kubernetes-group-version-kind": [{**gvk, "kind": "InferenceServiceList"}],
               "properties": {"items": {"type": "array"}}}  # fmt: skip
    meta = {"properties": {"name": {"type": "string"}}}
    schemas = {"a.InferenceServiceList": listing, "b.ObjectMeta": meta, **ours}
    assert rollout.storage_uris_in({"components": {"schemas": schemas}}) is True
    opaque = copy.deepcopy(isvc)
    opaque["properties"]["spec"]["properties"]["predictor"] = {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}  # fmt: skip
    schemas = {"a.InferenceServiceList": listing, "c.InferenceService": opaque}
    assert rollout.storage_uris_in({"components": {"schemas": schemas}}) is None


# --- the mode, the merge patch -------------------------------------------------------------


def test_an_inference_service_kept_in_its_mode_is_said_in_the_log(caplog):
    caplog.set_level(logging.INFO)
    existing = {"metadata": {"name": "mnist"}, "status": {"deploymentMode": "Knative"}}
    assert rollout.mode_annotation(existing) is None
    assert [r.getMessage() for r in caplog.records] == [
        "InferenceService mnist keeps the mode KServe recorded for it, Knative (KServe does not "
        "change it; delete the InferenceService to have it made again as Standard)"
    ]


def test_a_field_that_changes_between_object_and_value_is_replaced_whole():
    assert rollout.nulls({"a": 1, "b": {"x": 1}}, {"a": {"y": 2}, "b": 3}) == {
        "a": {"y": 2}, "b": 3}  # fmt: skip


# --- the rollout, as KServe reports it -----------------------------------------------------


def test_what_an_apply_leaves_to_roll_out():
    applied = {"metadata": {"generation": 8}}
    assert rollout.Rollout.after(None, applied) == rollout.Rollout(8, True, {})
    same = {"metadata": {"generation": 8}, "status": {"observedGeneration": 3}}
    assert rollout.Rollout.after(same, applied) == rollout.Rollout(8, False, same["status"])
    older = {"metadata": {"generation": 7}, "status": {"observedGeneration": 3}}
    assert rollout.Rollout.after(older, applied) == rollout.Rollout(8, True, older["status"])
    # no generation on either (nothing counts them): taken as unchanged
    assert rollout.Rollout.after({"metadata": {}}, {}) == rollout.Rollout(0, False, {})


FAILED = {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "x"}


def status(observed: int = 4, created: str | None = None, *conditions: dict) -> dict:
    out: dict = {"observedGeneration": observed, "conditions": list(conditions)}
    if created:
        out["components"] = {"predictor": {"latestCreatedRevision": created}}
    return out


def test_a_failure_counts_once_kserve_has_taken_the_new_spec():
    before = status(4, "r1", READY)
    wait = rollout.Rollout(generation=9, changed=True, before=before)
    assert wait.verdict({"status": status(4, "r1", FAILED)}) is None  # the old failure
    assert wait.why == "KServe has not taken generation 9 yet (Ready=False (RevisionFailed))"
    assert wait.verdict({"status": status(5, "r1", FAILED)}) is False  # its Deployment moved
    assert wait.verdict({"status": status(4, "r2", FAILED)}) is False  # a new revision


def test_a_failure_counts_at_once_where_there_is_nothing_new_to_roll_out():
    before = status(4, None, FAILED)
    assert rollout.Rollout(9, False, before).verdict({"status": before}) is False
    assert rollout.Rollout(9, True, {}).verdict({"status": before}) is False


def test_not_ready_yet_says_kserves_latest_condition():
    rolling = {"type": "Ready", "status": "Unknown", "reason": "ReplicaSetUpdated",
               "message": "rolling out"}  # fmt: skip
    wait = rollout.Rollout(9, True, status(4))
    assert wait.verdict({"status": status(5, None, rolling)}) is None
    assert wait.why == "Ready=Unknown (ReplicaSetUpdated: rolling out)"
    assert wait.verdict({}) is None and wait.why == "no status yet"


def test_ready_counts_once_the_latest_revision_has_all_the_traffic():
    wait = rollout.Rollout(9, True, status(4))
    predictor = {"latestCreatedRevision": "r2", "latestReadyRevision": "r1",
                 "traffic": [{"revisionName": "r1", "percent": 100}]}  # fmt: skip
    ready = {**status(5, None, READY), "components": {"predictor": predictor}}
    assert wait.verdict({"status": ready}) is None
    assert wait.why == "revision r2 is not ready yet (r1 is)"
    predictor.update(latestReadyRevision="r2", traffic=[{"revisionName": "r2", "percent": 100}])
    assert wait.verdict({"status": ready}) is True and wait.why == ""
    assert wait.verdict({"status": status(5, None, READY)}) is True  # Standard: no revisions


@pytest.mark.parametrize(
    "state, failure",
    [({"modelStatus": {"states": {"targetModelState": "FailedToLoad"}}},
      "the model failed to load"),
     ({"modelStatus": {"states": {"targetModelState": "Loading"}}}, ""),
     ({"conditions": [READY, {"type": "PredictorReady", "status": "False",
                              "reason": "RevisionFailed"}]},
      "PredictorReady=False (RevisionFailed)"),
     ({"conditions": [{"type": "Ready", "status": "False", "reason": "InternalError"}]},
      "Ready=False (InternalError)"),
     ({"conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing"}]}, ""),
     ({"conditions": [{"type": "Ready", "status": "False"}]}, ""),
     ({"conditions": [{"type": "Ready", "status": "Unknown", "reason": "RevisionFailed"}]}, ""),
     ({"conditions": None, "modelStatus": None}, ""),
     ({"modelStatus": {"states": None}}, "")],
)  # fmt: skip
def test_the_failures_kserve_reports(state, failure):
    assert rollout.failed(state) == failure


@pytest.mark.parametrize(
    "predictor, pending",
    [({"latestCreatedRevision": "r2"}, "revision r2 is not ready yet (None is)"),
     ({"latestCreatedRevision": "r2", "latestReadyRevision": "r2",
       "traffic": [{"revisionName": "r2", "percent": 100}, {"revisionName": "r2", "tag": "new"}]},
      ""),
     ({"latestCreatedRevision": "r2", "latestReadyRevision": "r2"},
      "revision r2 has 0% of the traffic, not 100%")],
)  # fmt: skip
def test_a_revision_and_its_share_of_the_traffic(predictor, pending):
    """A tagged route with no percent (Knative omits 0) gives the revision no traffic."""
    assert rollout.revisions_pending(predictor) == pending
