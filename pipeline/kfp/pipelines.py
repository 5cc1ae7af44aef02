"""Uploaded pipelines: upload one (or a new version of it), find one by name, pick a version.

kfp.Client's own `get_pipeline_id` does not pass the namespace, so it misses a profile's
pipelines; the lookup here filters by name in the namespace (and the shared ones) itself.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from pipeline.kfp.client import quietly
from pipeline.kfp.errors import KfpApiError
from pipeline.kfp.settings import KfpSettings


class Uploaded(NamedTuple):
    """What an upload made: a new pipeline (its first version) or a new version of one."""

    kind: str  # "pipeline" or "version"
    pipeline_id: str
    version: str
    version_id: str | None

    @property
    def fragment(self) -> str:
        """The KFP UI page of what was made (KfpSettings.link)."""
        page = f"pipelines/details/{self.pipeline_id}"
        return page if self.kind == "pipeline" else f"{page}/version/{self.version_id}"


class UploadedVersion(NamedTuple):
    pipeline_id: str
    version_id: str
    name: str


def find_pipeline_id(client, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline named `name` (in `namespace`, or shared), None if there is none."""
    by_name = json.dumps(
        {"predicates": [{"operation": 1, "key": "display_name", "stringValue": name}]}
    )  # 1 = EQUALS
    found = client.list_pipelines(filter=by_name, namespace=namespace, page_size=2).pipelines
    if not found:
        return None
    if len(found) > 1:
        raise KfpApiError(f"several pipelines are named {name!r}; pass a unique --name")
    return found[0].pipeline_id


def upload_package(
    client, package: str, name: str, description: str, namespace: str | None, version: str
) -> Uploaded:
    """Upload `package` as the pipeline `name`, or as its version `version` when it exists.

    KFP names a new pipeline's first version after the pipeline, so `version` applies only to
    later uploads.
    """
    pipeline_id = find_pipeline_id(client, name, namespace)
    if pipeline_id is None:
        pipeline_id = quietly(
            client.upload_pipeline,
            package,
            pipeline_name=name,
            description=description,
            namespace=namespace,
        ).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, page_size=1).pipeline_versions
        version_id = versions[0].pipeline_version_id if versions else None
        return Uploaded("pipeline", pipeline_id, name, version_id)
    created = quietly(
        client.upload_pipeline_version,
        package,
        version,
        pipeline_id=pipeline_id,
        description=description,
    )
    return Uploaded("version", pipeline_id, version, created.pipeline_version_id)


def resolve_uploaded(
    client, settings: KfpSettings, name: str, version: str | None
) -> UploadedVersion:
    """The uploaded pipeline `name` and its version `version` (the newest when None); a
    one-line error naming what exists when either is not there."""
    pipeline_id = find_pipeline_id(client, name, settings.namespace)
    if pipeline_id is None:
        raise KfpApiError(
            f"no uploaded pipeline named {name!r} at {settings.host}: upload it first "
            "(mnist-pipeline upload)"
        )
    answer = client.list_pipeline_versions(pipeline_id, page_size=100, sort_by="created_at desc")
    versions = answer.pipeline_versions or []
    if version is None:
        if not versions:
            raise KfpApiError(f"pipeline {name!r} has no version at {settings.host}")
        chosen = versions[0]
    else:
        chosen = next((v for v in versions if v.display_name == version), None)
        if chosen is None:
            known = ", ".join(v.display_name for v in versions[:10]) or "none"
            raise KfpApiError(f"pipeline {name!r} has no version {version!r}; newest: {known}")
    return UploadedVersion(pipeline_id, chosen.pipeline_version_id, chosen.display_name)
