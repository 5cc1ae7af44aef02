"""What KServe reports, read the way its controller writes it: which KServe is installed, the
deployment mode an InferenceService keeps, and when a new model is rolled out.

Supported: KServe 0.16 and later (checked against KServe's own source, v0.13 to v0.20).

- 0.16 added `spec.predictor.storageUris` (a URI and the folder it is copied to), which the
  deploy step needs to serve one complete version (kserve.py), and renamed the deployment
  modes: RawDeployment became Standard, Serverless became Knative. It still accepts the old
  names and reads them as the new ones (pkg/constants ParseDeploymentMode, GetDeploymentMode).
- 0.15 and older know neither: the API server drops `storageUris` (the CRD prunes unknown
  fields) and KServe takes `Standard` for an unknown mode and falls back to its configured
  default. The step refuses them. `check_kserve` finds out from the InferenceService schema the
  API server publishes (OpenAPI v3, readable by any account); MNIST_KSERVE_VERSION=<x.y> says
  it instead, where that schema cannot be read.
- KServe never changes the mode of an existing InferenceService: its webhook refuses an update
  whose deploymentMode annotation differs from `status.deploymentMode` (0.16-0.18 compare the
  spellings, 0.19 and later the normalized modes). A patch sets `Standard` only where the status
  says `Standard` (or nothing yet), and otherwise removes the annotation, which both accept.

Rolled out. KServe's `status.observedGeneration` is not the InferenceService's: KServe copies
it from the predictor's Deployment (Standard) or Knative Service (Knative)
(inference_service_status.go PropagateRawStatus / PropagateStatus; kserve/kserve#6081), whose
counter moves with their own spec, so `observedGeneration >= metadata.generation` may pass on
the old status (the child's counter is ahead) or never pass (the child was made again, or
KServe folded two generations into one update). And `Ready` stays True on the old pods until
the new ones replace them. So a deploy waits until KServe reports Ready; where it reports
revisions (Knative), the latest created one ready with 100% of the traffic; and the predictor
itself (TF Serving's model status, kserve.served_versions) reports the new version AVAILABLE,
which only the new pods can. A failure KServe reports counts once it has taken the new spec
(its observedGeneration or latest created revision moved since the apply); before that it is
the previous deploy's, still on show.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from components.common.errors import InputError
from components.common.kube import INFERENCE_SERVICE, Kube, KubeError, condition, latest_condition
from components.common.log import get_logger

log = get_logger("deploy")
VERSION_ENV = "MNIST_KSERVE_VERSION"
MINIMUM = (0, 16)
MODE_KEY = "serving.kserve.io/deploymentMode"
STANDARD = "Standard"
RENAMED = {"RawDeployment": "Standard", "Serverless": "Knative"}  # KServe 0.16's new names


def check_kserve(kube: Kube) -> str:
    """Refuse a KServe older than 0.16; returns how the version was found, for the log."""
    override = os.environ.get(VERSION_ENV, "").strip()
    if override:
        match = re.fullmatch(r"v?(\d+)\.(\d+)(\.\d+)?(-.*)?", override)
        if not match:
            raise InputError(f"{VERSION_ENV}={override!r} is not a KServe version such as 0.16")
        if (int(match[1]), int(match[2])) < MINIMUM:
            raise KubeError(_too_old(f"{VERSION_ENV}={override}"))
        return f"KServe {override} ({VERSION_ENV})"
    try:
        has = storage_uris_in(kube.openapi(INFERENCE_SERVICE))
        why = "the published schema holds no InferenceService predictor"
    except KubeError as e:
        has, why = None, str(e)
    if has is None:
        log.warning("cannot tell KServe's version (%s): %s=<x.y> says it", why, VERSION_ENV)
        return "KServe taken for 0.16 or later"
    if not has:
        raise KubeError(_too_old("its InferenceService schema has no spec.predictor.storageUris"))
    return "KServe 0.16 or later (spec.predictor.storageUris is in its schema)"


def _too_old(why: str) -> str:
    return (
        f"KServe older than 0.16 ({why}): serving one complete model version needs "
        "spec.predictor.storageUris and the Standard deployment mode, both from KServe 0.16"
    )


def storage_uris_in(document: dict) -> bool | None:
    """Whether the InferenceService schema in an OpenAPI v3 document has predictor.storageUris
    (None when the document holds no InferenceService schema to tell)."""
    for schema in ((document.get("components") or {}).get("schemas") or {}).values():
        kinds = schema.get("x-kubernetes-group-version-kind") or []
        if {"group": INFERENCE_SERVICE.group, "kind": INFERENCE_SERVICE.kind,
                "version": INFERENCE_SERVICE.version} in kinds:  # fmt: skip
            spec = ((schema.get("properties") or {}).get("spec") or {}).get("properties") or {}
            predictor = (spec.get("predictor") or {}).get("properties")
            return None if predictor is None else "storageUris" in predictor
    return None


def mode_annotation(existing: dict | None) -> str | None:
    """The deploymentMode annotation a deploy writes onto `existing` (None: remove it): see the
    module's docstring. One KServe runs in Knative mode stays there (its storage initializer
    then runs in the Knative Service's pods, which needs Knative's
    `kubernetes.podspec-init-containers` feature)."""
    recorded = ((existing or {}).get("status") or {}).get("deploymentMode") or STANDARD
    if recorded != STANDARD:
        log.info(
            "InferenceService %s keeps the mode KServe recorded for it, %s (KServe does not "
            "change it; delete the InferenceService to have it made again as %s)",
            existing["metadata"]["name"],
            recorded,
            STANDARD,
        )
        return None
    return STANDARD


def nulls(old: dict, new: dict) -> dict:
    """`new`, with None (a merge patch's "remove") for each key of `old` it lacks, in nested
    objects too: the merge patch that turns `old` into `new`."""
    patch = dict(new)
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            patch[key] = nulls(value, new[key])
    return patch


@dataclass
class Rollout:
    """A deploy's wait: KServe's report on the InferenceService the apply returned. `why` says
    what is still awaited (the progress lines, the timeout's message)."""

    generation: int  # metadata.generation after the apply
    changed: bool  # the apply changed the spec: KServe has something new to roll out
    before: dict = field(default_factory=dict)  # the status before the apply
    why: str = "no status yet"

    @classmethod
    def after(cls, existing: dict | None, applied: dict) -> Rollout:
        generation = int((applied.get("metadata") or {}).get("generation") or 0)
        if existing is None:
            return cls(generation, True)
        old = int((existing.get("metadata") or {}).get("generation") or 0)
        return cls(generation, generation != old, existing.get("status") or {})

    def taken(self, status: dict) -> bool:
        """Whether KServe's status is newer than the apply: nothing new to roll out, or its
        observedGeneration or latest created revision moved since."""
        if not self.changed or not self.before:
            return True
        paths = (("observedGeneration",), (*REVISIONS, "latestCreatedRevision"))
        return any(_get(status, *path) != _get(self.before, *path) for path in paths)

    def verdict(self, obj: dict) -> bool | None:
        """True when KServe reports Ready and, where it reports revisions, the latest one ready
        with all the traffic; False when it reports a failure after taking the new spec (an
        earlier failure still on show is not this deploy's); None while it is getting there.
        Ready alone may be the old pods': kserve.py then asks the predictor for its version."""
        status = obj.get("status") or {}
        failure = failed(status)
        if failure and self.taken(status):
            return False
        if failure:
            self.why = f"KServe has not taken generation {self.generation} yet ({failure})"
            return None
        if not condition(obj, "Ready"):
            self.why = latest_condition(obj)
            return None
        self.why = revisions_pending(_get(status, *REVISIONS) or {})
        return None if self.why else True


REVISIONS = ("components", "predictor")


def _get(status: dict, *path: str):
    for key in path:
        status = status.get(key) if isinstance(status, dict) else None
    return status


def failed(status: dict) -> str:
    """KServe's failure of the model, in a few words; "" when it reports none."""
    target = _get(status, "modelStatus", "states", "targetModelState")
    if target == "FailedToLoad":
        return "the model failed to load"
    for c in status.get("conditions") or []:
        reason = str(c.get("reason") or "")
        if str(c.get("status")) == "False" and ("Fail" in reason or "Error" in reason):
            return f"{c.get('type')}={c.get('status')} ({reason})"
    return ""


def revisions_pending(predictor: dict) -> str:
    """Where KServe reports revisions (Knative mode): "" once the latest created revision is
    the latest ready one and takes all the traffic; otherwise what is missing. Standard mode
    has no revisions, and nothing to wait for here."""
    created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if not (created or ready):
        return ""
    if created != ready:
        return f"revision {created} is not ready yet ({ready} is)"
    share = sum(
        int(t.get("percent") or 0)
        for t in predictor.get("traffic") or []
        if t.get("revisionName") == ready
    )
    return "" if share == 100 else f"revision {ready} has {share}% of the traffic, not 100%"
