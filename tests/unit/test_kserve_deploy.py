"""The InferenceService the deploy step writes, read the way KServe reads it, and the deploy
against KServe's stand-in on 127.0.0.1 (tests/kserve_fake.py over tests/kube_server.py).

What a field means to its reader is asserted, not the YAML: KServe picks the serving runtime by
`modelFormat`; its storage initializer copies what is under each storageUris URI (s3:// only)
into the mountPath, as kserve_storage.py `_download_s3` does, and the runtime's TF Serving loads
the integer folders under its --model_base_path; the initializer's S3 credentials come from the
Secret of the ServiceAccount the predictor names. The rollout, the mode and the version checks
are in test_kserve_rollout.py."""

from __future__ import annotations

import http.server
import json
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml

from components.common.kube import INFERENCE_SERVICE, VERBS, Kube, KubeError
from components.deploy import kserve, rollout
from tests import needs, servers
from tests.crds import CRDS, errors
from tests.kserve_fake import KServe, kserve_api
from tests.kube_server import client_for, kube_api

CRD = "serving.kserve.io_inferenceservices.yaml"
MODEL = "s3://mlpipeline/mnist/models/mnist/3"
RUNTIME = yaml.safe_load((CRDS / "kserve-tensorflow-serving-runtime.yaml").read_text())


def body(version: int = 3) -> dict:
    return kserve.inference_service(
        f"s3://mlpipeline/mnist/models/mnist/{version}", "team-a", version
    )


def test_the_inference_service_validates_strictly_against_kserves_crd():
    assert errors(body(), CRD, "v1beta1") == []
    misspelt = json.loads(json.dumps(body()))
    misspelt["spec"]["predictor"]["storageURIs"] = misspelt["spec"]["predictor"].pop("storageUris")
    assert any("storageURIs" in e for e in errors(misspelt, CRD, "v1beta1"))


def selected_runtime(isvc: dict, runtimes: list[dict]) -> str | None:
    """The runtime KServe picks for `model`: one that supports its modelFormat (by name, and
    version when the model gives one) with autoSelect, and speaks the v1 protocol."""
    model = isvc["spec"]["predictor"]["model"]
    wanted = model["modelFormat"]
    for runtime in runtimes:
        for supported in runtime["spec"]["supportedModelFormats"]:
            if (supported["name"] == wanted["name"] and supported.get("autoSelect")
                    and wanted.get("version") in (None, supported.get("version"))
                    and "v1" in runtime["spec"]["protocolVersions"]):  # fmt: skip
                return runtime["metadata"]["name"]
    return None


def test_kserve_serves_the_model_with_its_tensorflow_runtime_at_our_tf_serving_tag():
    isvc = body()
    assert selected_runtime(isvc, [RUNTIME]) == "kserve-tensorflow-serving"
    # runtimeVersion is the runtime image's tag: TF Serving 2.19.1, which loads TF 2.21 models
    assert isvc["spec"]["predictor"]["model"]["runtimeVersion"] == "2.19.1"
    (container,) = RUNTIME["spec"]["containers"]
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    assert "--model_name={{.Name}}" in container["args"]  # the REST path /v1/models/mnist
    assert isvc["metadata"]["name"] == kserve.NAME == "mnist"


def initializer_copy(storage: dict, store: dict[str, bytes]) -> dict[str, bytes]:
    """KServe's storage initializer on one storageUris entry: every object whose key starts
    with the URI's path (a plain S3 prefix), its key less that prefix, under the mountPath."""
    uri = urlsplit(storage["uri"])
    if uri.scheme != "s3":  # kserve_storage.py dispatches on the scheme
        raise ValueError(f"no storage provider for {storage['uri']}")
    prefix = f"{uri.netloc}/{uri.path.lstrip('/')}"
    return {
        f"{storage['mountPath']}/{key[len(prefix) :].lstrip('/')}": data
        for key, data in store.items()
        if key.startswith(prefix) and not key.endswith("/")
    }


def tf_serving_versions(files: dict[str, bytes]) -> dict[int, set[str]]:
    """What TF Serving, run with the runtime's --model_base_path, finds: each integer-named
    folder right under it, with the files in it."""
    (base,) = [a.split("=", 1)[1] for a in RUNTIME["spec"]["containers"][0]["args"]
               if a.startswith("--model_base_path=")]  # fmt: skip
    versions: dict[int, set[str]] = {}
    for path in files:
        rel = PurePosixPath(path).relative_to(base)
        if rel.parts[0].isdigit():
            versions.setdefault(int(rel.parts[0]), set()).add("/".join(rel.parts[1:]))
    return versions


def test_the_predictor_gets_the_one_complete_version_where_tf_serving_loads_it():
    """Versions 30 (whose name starts with 3) and 31 (claimed, still being written, higher
    than all) are in the store beside 3: TF Serving must see version 3 alone, whole."""
    files = (
        "saved_model.pb",
        "variables/variables.index",
        "assets.extra/tf_serving_warmup_requests",
    )
    store = {f"mlpipeline/mnist/models/mnist/{v}/{f}": b"x" for v in (3, 30) for f in files}
    store["mlpipeline/mnist/models/mnist/31/CLAIM.json"] = b"{}"
    store["mlpipeline/mnist/models/mnist/3/"] = b""  # a folder marker some S3 tools write
    (storage,) = body(3)["spec"]["predictor"]["storageUris"]
    assert tf_serving_versions(initializer_copy(storage, store)) == {3: set(files)}
    assert "storageUri" not in body(3)["spec"]["predictor"]["model"]


def test_a_storage_uri_that_is_not_s3_reaches_no_storage_provider():
    (storage,) = body(3)["spec"]["predictor"]["storageUris"]
    assert (
        urlsplit(storage["uri"]).scheme == "s3" and urlsplit(storage["uri"]).netloc == "mlpipeline"
    )
    with pytest.raises(ValueError, match="no storage provider"):
        initializer_copy({**storage, "uri": storage["uri"].removeprefix("s3://")}, {})


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> list[dict]:
    from tests.compile.test_manifests import copy_manifests

    root = copy_manifests(tmp_path_factory.mktemp("kserve") / "manifests")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(root / "overlays" / "kserve")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    return list(yaml.safe_load_all(rendered.stdout))


def test_the_storage_initializer_reads_the_store_with_the_overlays_s3_secret(overlay):
    """KServe builds the initializer's S3 settings from the Secrets of the predictor's
    ServiceAccount (credentials/service_account_credentials.go): without the name, `default`,
    which has none."""
    account_name = body()["spec"]["predictor"]["serviceAccountName"]
    (account,) = [d for d in overlay if d["kind"] == "ServiceAccount"
                  and d["metadata"]["name"] == account_name]  # fmt: skip
    secrets = {d["metadata"]["name"]: d for d in overlay if d["kind"] == "Secret"}
    (secret,) = [secrets[ref["name"]] for ref in account["secrets"]]
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret["data"])


def test_the_kserve_overlay_role_covers_every_call(overlay):
    roles = [d for d in overlay if d["kind"] == "Role"]
    rules = [r for role in roles for r in role["rules"] if "serving.kserve.io" in r["apiGroups"]]
    assert rules and set(VERBS) <= {v for r in rules for v in r["verbs"]}
    assert all(r["resources"] == ["inferenceservices"] for r in rules)


@pytest.fixture
def warmup(tmp_path) -> Path:
    needs.module("tensorflow")
    from components.export.exporter import WARMUP_FILE, check_sample, write_warmup_requests

    write_warmup_requests(tmp_path, check_sample()[:8])
    return tmp_path / WARMUP_FILE


def test_deploy_creates_waits_for_the_version_and_checks_a_canary(warmup):
    kserve_fake = KServe()
    requests = []
    with kserve_api(kserve_fake) as (api, url):
        kube = Kube(client_for(url))
        result = kserve.deploy(MODEL, warmup, "team-a", timeout=30, kube=kube, interval=0.05)
        assert result == {
            "url": kserve_fake.url,
            "version": 3,
            "namespace": "team-a",
            "storage_uri": "s3://mlpipeline/mnist/models/mnist/3/",
        }
        (created,) = api.objects.values()
        assert errors({k: created[k] for k in ("apiVersion", "kind", "spec")}, CRD, "v1beta1") == []
        assert created["metadata"]["annotations"][rollout.MODE_KEY] == "Standard"
        requests = [b for m, p, b in api.requests if m in ("POST", "PATCH")]
    assert kserve_fake.answers == [3]  # one canary, answered by the new version's pods
    assert len(requests) == 1


def test_the_canary_is_the_exports_warm_up_images_and_its_answer_is_checked(warmup):
    sent = []

    class Predictor(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):
            sent.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"predictions": [{"probabilities": [1, 0], "classes": 0}]}')

    with servers.serve(Predictor) as url, pytest.raises(KubeError, match="not 10 probabilities"):
        kserve.canary(url.rstrip("/"), kserve.canary_images(warmup))
    (request,) = sent
    assert request["signature_name"] == "serving_default"
    np.testing.assert_array_equal(request["instances"], kserve.canary_images(warmup))


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
        with pytest.raises(KubeError, match=r"not done after 1\.0 s: no status yet"):
            kserve.deploy(
                MODEL, warmup, "team-a", timeout=1, kube=Kube(client_for(url)), interval=0.1
            )


def test_a_forbidden_call_names_the_verb_the_role_lacks(warmup):
    with kube_api() as (api, url):
        api.forbid("create")
        with pytest.raises(KubeError) as e:
            kserve.deploy(MODEL, warmup, "team-a", timeout=5, kube=Kube(client_for(url)))
    assert "HTTP 403 forbidden: the pipeline's service account needs `create` on " in str(e.value)
    assert "inferenceservices.serving.kserve.io in team-a" in str(e.value)


@pytest.mark.parametrize("first", ["get", "wait"])
def test_an_api_that_cannot_be_reached_is_one_line(warmup, first, monkeypatch):
    """The kubernetes client gives up on a refused connection with urllib3's MaxRetryError,
    which is no OSError: it left the step as a traceback."""
    monkeypatch.setenv(rollout.VERSION_ENV, "0.16")
    kube = Kube(client_for(f"http://127.0.0.1:{servers.free_port()}"))
    if first == "wait":  # the InferenceService was made; then the API went away
        monkeypatch.setattr(kube, "find", lambda *args: None)
        monkeypatch.setattr(kube, "apply", lambda *args: {})
    where = "cannot get InferenceService team-a/mnist: the Kubernetes API cannot be reached"
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


def test_a_waits_timeout_names_what_is_awaited():
    """kube.wait's `describe` names what is awaited, in its timeout message."""
    with kube_api() as (api, url):
        kube = Kube(client_for(url))
        kube.apply(INFERENCE_SERVICE, "team-a", body())
        with pytest.raises(KubeError, match=r"not done after 0\.2 s: awaiting X"):
            kube.wait(INFERENCE_SERVICE, "team-a", "mnist", lambda obj: None, timeout=0.2,
                      interval=0.05, describe=lambda obj: "awaiting X")  # fmt: skip
