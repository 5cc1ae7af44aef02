"""Validate custom resources against the CRDs in ../shared/crds/ (their openAPIV3Schema), with a
strict pass that rejects keys the schema does not name, so a misspelt field fails."""

from __future__ import annotations

import copy
import functools

import yaml
from jsonschema import Draft7Validator

from tests.conftest import REPO

CRDS = REPO.parent / "shared" / "crds"


def _strict(schema: dict) -> dict:
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            if isinstance(value, dict):
                _strict(value)
            elif isinstance(value, list):
                for item in value:
                    _strict(item)
    return schema


@functools.cache
def validator(file: str, version: str) -> Draft7Validator:
    crd = yaml.safe_load((CRDS / file).read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return Draft7Validator(_strict(copy.deepcopy(served["schema"]["openAPIV3Schema"])))


def errors(obj: dict, file: str, version: str) -> list[str]:
    """Every schema violation, as `path: message`."""
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator(file, version).iter_errors(obj)
    ]
