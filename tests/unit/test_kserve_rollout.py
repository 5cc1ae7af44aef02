"""The deploy step against KServe as it behaves (tests/kserve_fake.py): a re-deploy returns only
once the new version is served, whatever the old status still says; KServe's installed version
and the mode an existing InferenceService keeps; and only a complete version is served."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from components import store as st
from components.common import spec
from components.common.errors import InputError
from components.common.kube import INFERENCE_SERVICE, Kube, KubeError
from components.deploy import kserve, rollout
from components.export import exporter
from tests.kserve_fake import OPENAPI_PATH, PLURAL, KServe, kserve_api
from tests.kube_server import client_for

MODELS = "s3://mlpipeline/mnist/models/mnist"
KEY = (PLURAL, "team-a", "mnist")


@pytest.fixture(autouse=True)
def images(monkeypatch):
    """The canary's images without TensorFlow (test_kserve_deploy.py reads the real ones)."""
    monkeypatch.setattr(kserve, "canary_images", lambda _: np.zeros((2, 28, 28), np.uint8))


def deploy(url: str, version: int, **kw) -> dict:
    kube = Kube(client_for(url))
    return kserve.deploy(f"{MODELS}/{version}", Path("-"), "team-a", kube=kube, interval=0.02,
                         timeout=kw.pop("timeout", 20), **kw)  # fmt: skip


def made_earlier(api, kserve_fake: KServe, url: str, status: dict, served=2, **body) -> dict:
    """An InferenceService already there, as an earlier step left it for version 2, its pods
    serving `served`: `body` replaces parts of ours (an older layout), `status` is KServe's."""
    obj = kserve.inference_service(f"{MODELS}/2", "team-a", 2)
    obj["metadata"]["annotations"].update(body.pop("annotations", {}))
    obj["spec"]["predictor"].update(body)
    obj["spec"]["predictor"] = {k: v for k, v in obj["spec"]["predictor"].items() if v is not None}
    Kube(client_for(url)).apply(INFERENCE_SERVICE, "team-a", obj)
    stored = api.objects[KEY]
    stored["status"] = copy.deepcopy(status)
    kserve_fake.running(stored, served)
    return stored


READY = {"type": "Ready", "status": "True"}


def ready(mode: str = "Standard", observed: int = 1, **status) -> dict:
    return {"deploymentMode": mode, "observedGeneration": observed, "conditions": [READY],
            "address": {"url": ""}, **status}  # fmt: skip


# --- the rollout --------------------------------------------------------------------------


def test_a_redeploy_returns_only_once_the_new_version_is_served():
    """The old status (Ready, the old pods) stays a while after the patch: the previous step
    returned on it and sent its canary to the old version."""
    kserve_fake = KServe(lag=4, rollout=3)
    with kserve_api(kserve_fake) as (api, url):
        deploy(url, 3)
        gets_before = sum(m == "GET" for m, *_ in api.requests)
        result = deploy(url, 4)
        gets = sum(m == "GET" for m, *_ in api.requests) - gets_before
    assert kserve_fake.answers == [3, 4]  # each canary answered by the version just deployed
    assert result["version"] == 4 and kserve_fake.served == 4
    assert gets > 4 + 3  # it waited through the stale status and the rollout


@pytest.mark.parametrize("observed", [9, 0])
def test_observed_generation_is_the_deployments_counter_and_neither_way_misleads(observed):
    """KServe copies status.observedGeneration from the Deployment (kserve/kserve#6081). Above
    the InferenceService's generation (9: the stale status already passes `>= generation`),
    or below it (0: the Deployment made again, its counter restarted), the wait ends when,
    and only when, the new version is served."""
    kserve_fake = KServe(lag=3, rollout=2)
    with kserve_api(kserve_fake) as (api, url):
        earlier = made_earlier(api, kserve_fake, url, ready(observed=observed))
        earlier["metadata"]["generation"] = 5
        kserve_fake.child_generation = observed
        deploy(url, 3)
        obj = api.objects[KEY]
    assert kserve_fake.answers == [3]
    assert (
        obj["metadata"]["generation"] == 6 and obj["status"]["observedGeneration"] == observed + 1
    )


def test_in_knative_mode_the_new_revision_must_be_ready_with_all_the_traffic():
    """An InferenceService KServe runs in Knative mode (made so by an older step) stays there:
    KServe keeps the old revision Ready with the traffic while the new one starts."""
    kserve_fake = KServe(lag=2, rollout=4, webhook="0.16")
    first = "mnist-predictor-00000"
    predictor = {"latestCreatedRevision": first, "latestReadyRevision": first,
                 "traffic": [{"revisionName": first, "percent": 100}]}  # fmt: skip
    with kserve_api(kserve_fake) as (api, url):
        made_earlier(api, kserve_fake, url, ready("Knative", components={"predictor": predictor}),
                     annotations={rollout.MODE_KEY: "Serverless"})  # fmt: skip
        deploy(url, 3)
        obj = api.objects[KEY]
    assert kserve_fake.answers == [3]
    assert rollout.MODE_KEY not in obj["metadata"]["annotations"]  # the webhook's rule
    assert obj["status"]["deploymentMode"] == "Knative"
    revisions = obj["status"]["components"]["predictor"]
    assert revisions["latestCreatedRevision"] == revisions["latestReadyRevision"] != first


@pytest.mark.parametrize(
    "predictor, pending",
    [({}, ""),  # Standard: no revisions
     ({"latestCreatedRevision": "r2", "latestReadyRevision": "r1"},
      "revision r2 is not ready yet (r1 is)"),
     ({"latestCreatedRevision": "r2", "latestReadyRevision": "r2",
       "traffic": [{"revisionName": "r2", "percent": 10}, {"revisionName": "r1", "percent": 90}]},
      "revision r2 has 10% of the traffic, not 100%"),
     ({"latestCreatedRevision": "r2", "latestReadyRevision": "r2",
       "traffic": [{"revisionName": "r2", "percent": 100, "latestRevision": True}]}, "")],
)  # fmt: skip
def test_revisions_and_traffic_as_kserve_reports_them(predictor, pending):
    assert rollout.revisions_pending(predictor) == pending


def test_an_earlier_failure_still_on_show_is_not_this_deploys():
    """The last deploy failed; its failure stays in the status until KServe takes the new
    spec. The previous step failed at once on it."""
    failed = {"deploymentMode": "Standard", "observedGeneration": 1, "address": {"url": ""},
              "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed"}],
              "modelStatus": {"states": {"targetModelState": "FailedToLoad"}}}  # fmt: skip
    kserve_fake = KServe(lag=3, rollout=2)
    with kserve_api(kserve_fake) as (api, url):
        made_earlier(api, kserve_fake, url, failed, served=None)
        kserve_fake.child_generation = 1
        deploy(url, 3)
    assert kserve_fake.answers == [3]


def test_a_version_that_fails_to_load_fails_the_step_in_one_line():
    kserve_fake = KServe(lag=1, rollout=1)
    kserve_fake.fail.add(4)
    with kserve_api(kserve_fake) as (_, url):
        deploy(url, 3)
        with pytest.raises(KubeError) as e:
            deploy(url, 4)
    assert str(e.value) == (
        "InferenceService team-a/mnist failed: Ready=False (RevisionFailed: model failed to load)"
    )


def test_a_rollout_that_never_serves_the_version_times_out_saying_so():
    kserve_fake = KServe(lag=1, rollout=1)
    with kserve_api(kserve_fake) as (api, url):
        deploy(url, 3)
        kserve_fake.lag = 10**6  # KServe never takes the new spec
        with pytest.raises(KubeError) as e:
            deploy(url, 4, timeout=0.5)
    assert str(e.value) == (
        "InferenceService team-a/mnist not done after 0.5 s: the predictor serves {3: "
        "'AVAILABLE'}, not version 4 yet"
    )


# --- KServe's version and the deployment mode ----------------------------------------------


@pytest.mark.parametrize("webhook", ["0.16", "0.19"])
def test_an_inference_service_of_the_previous_step_is_taken_over(webhook):
    """Made by the previous step on KServe 0.15: storageUri at the models prefix, and the mode
    KServe recorded is RawDeployment. KServe 0.16-0.18 refuse the annotation `Standard` (not
    the recorded spelling), 0.19 and later `RawDeployment` (not the normalized mode), and all
    refuse storageUri beside storageUris; the previous step sent `Standard` and kept both."""
    kserve_fake = KServe(lag=1, rollout=1, webhook=webhook)
    with kserve_api(kserve_fake) as (api, url):
        ours = kserve.inference_service(MODELS, "t", 2)["spec"]["predictor"]["model"]
        made_earlier(api, kserve_fake, url, ready("RawDeployment"), storageUris=None,
                     model={**ours, "storageUri": MODELS},
                     annotations={rollout.MODE_KEY: "Standard"})  # fmt: skip
        deploy(url, 3)
        obj = api.objects[KEY]
    assert kserve_fake.answers == [3]
    assert "storageUri" not in obj["spec"]["predictor"]["model"]
    assert rollout.MODE_KEY not in obj["metadata"]["annotations"]
    assert obj["status"]["deploymentMode"] == "RawDeployment"  # KServe keeps it: same mode


def test_a_new_inference_service_asks_for_the_standard_mode():
    assert rollout.mode_annotation(None) == "Standard"
    assert rollout.mode_annotation({"status": {"deploymentMode": "Standard"}}) == "Standard"
    assert rollout.mode_annotation({"status": {}}) == "Standard"


def test_kserve_before_0_16_is_refused_before_anything_is_made():
    kserve_fake = KServe()
    with kserve_api(kserve_fake, storage_uris=False) as (api, url), pytest.raises(KubeError) as e:
        deploy(url, 3)
    assert str(e.value).startswith(
        "KServe older than 0.16 (its InferenceService schema has no spec.predictor.storageUris)"
    )
    assert [m for m, *_ in api.requests if m in ("POST", "PATCH")] == []


@pytest.mark.parametrize(
    "version, refused", [("0.15.2", True), ("v0.16.0", False), ("0.20", False)]
)
def test_the_version_can_be_given_instead_of_read(monkeypatch, version, refused):
    monkeypatch.setenv(rollout.VERSION_ENV, version)
    kserve_fake = KServe(lag=0, rollout=0)
    with kserve_api(kserve_fake, storage_uris=False) as (api, url):
        if refused:
            with pytest.raises(
                KubeError, match=rf"KServe older than 0.16 \(MNIST_KSERVE_VERSION={version}\)"
            ):
                deploy(url, 3)
        else:
            deploy(url, 3)
        assert [p for _, p, _ in api.requests if p.startswith("/openapi")] == []


def test_a_version_that_is_no_version_is_one_line(monkeypatch):
    monkeypatch.setenv(rollout.VERSION_ENV, "latest")
    with pytest.raises(InputError, match="MNIST_KSERVE_VERSION='latest' is not a KServe version"):
        rollout.check_kserve(kube=None)


def test_a_schema_that_cannot_be_read_is_taken_for_a_current_kserve(caplog):
    kserve_fake = KServe(lag=0, rollout=0)
    with kserve_api(kserve_fake) as (api, url):
        del api.documents[OPENAPI_PATH]
        deploy(url, 3)
    path = "/openapi/v3/apis/serving.kserve.io/v1beta1"
    assert f"cannot tell KServe's version (cannot read {path}: HTTP 404)" in caplog.text
    assert rollout.storage_uris_in({"components": {"schemas": {"x": {}}}}) is None


def test_a_refusal_by_kserves_webhook_reads_as_the_webhooks_not_as_a_missing_permission():
    with kserve_api(KServe()) as (api, url):
        both = kserve.inference_service(f"{MODELS}/3", "team-a", 3)
        both["spec"]["predictor"]["model"]["storageUri"] = MODELS
        with pytest.raises(KubeError) as e:
            Kube(client_for(url)).apply(INFERENCE_SERVICE, "team-a", both)
    assert str(e.value) == (
        "cannot create InferenceService team-a/mnist: HTTP 403: admission webhook "
        '"inferenceservices.validator" denied the request: Setting both StorageURI and '
        "StorageURIs is not supported."
    )


def test_a_merge_patch_removes_what_the_body_no_longer_has():
    old = {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://b/m", "x": 1}}}
    new = {"predictor": {"model": {"x": 2}}}
    assert rollout.nulls(old, new) == {
        "predictor": {"canaryTrafficPercent": None, "model": {"storageUri": None, "x": 2}}
    }


# --- only a complete version --------------------------------------------------------------


def saved_model(tmp_path: Path) -> Path:
    local = tmp_path / "saved"
    (local / "variables").mkdir(parents=True)
    for rel in ("saved_model.pb", "fingerprint.pb", "variables/variables.index"):
        (local / rel).write_bytes(b"x")
    return local


def test_a_version_the_export_has_claimed_but_not_finished_is_not_served(tmp_path):
    """The export's own writes, stopped at each phase: claimed (CLAIM.json), everything but
    saved_model.pb, then published."""
    store = st.open_store(str(tmp_path / "store"))
    models = store_at(store)
    seen = {}

    def at(phase: str, version: int) -> None:
        try:
            kserve.check_complete(models, version)
            seen[phase] = "complete"
        except InputError as e:
            seen[phase] = str(e)

    exporter.publish(saved_model(tmp_path), store, spec.MODELS_PREFIX, at)
    where = models.uri("1")
    why = "no saved_model.pb, which the export writes last; not serving it"
    incomplete = f"{where} is claimed but not complete: {why}"
    assert seen == {"listed": f"{where} is not published: {why}", "claimed": incomplete,
                    "uploaded": incomplete, "published": "complete"}  # fmt: skip


def store_at(store):
    return st.open_store(store.uri(spec.MODELS_PREFIX))


def test_deploy_checks_the_version_before_it_touches_kubernetes(tmp_path):
    store = st.open_store(str(tmp_path / "store"))
    store.put_bytes(f"{spec.MODELS_PREFIX}/4/CLAIM.json", b"{}")
    with pytest.raises(InputError, match=r"/4 is claimed but not complete"):
        kserve.deploy(f"{MODELS}/4", Path("-"), "team-a", kube=object(), store=store_at(store))


def test_the_step_checks_the_version_in_the_s3_store(s3_bucket, s3_env):
    store = st.open_store(f"s3://{s3_bucket}/mnist", s3_env)
    store.put_bytes(f"{spec.MODELS_PREFIX}/1/CLAIM.json", b"{}")
    store.put_bytes(f"{spec.MODELS_PREFIX}/1/saved_model.pb", b"graph")
    store.put_bytes(f"{spec.MODELS_PREFIX}/2/CLAIM.json", b"{}")
    models = kserve.models_store(f"s3://{s3_bucket}/mnist/{spec.MODELS_PREFIX}/2", s3_env)
    kserve.check_complete(models, 1)
    with pytest.raises(InputError, match=f"s3://{s3_bucket}/mnist/models/mnist/2 is claimed"):
        kserve.check_complete(models, 2)


def test_without_store_credentials_the_check_is_left_out_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    assert kserve.models_store(f"{MODELS}/3", "") is None
    assert [r.getMessage() for r in caplog.records] == [
        f"no store credentials here: not checking that {MODELS}/3 is complete"
    ]
