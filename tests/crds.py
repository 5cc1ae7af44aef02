"""Validate custom resources against the CRDs vendored in tests/vendor/crds/ (their
openAPIV3Schema), with a strict pass that rejects keys the schema does not name, so a misspelt
field fails. The CRDs are in the repository, so these checks run wherever the tests run (in
mutmut's mutants/ copy too): a missing file is an error, never a skip."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml
from jsonschema import Draft7Validator

from tests.conftest import REPO

CRDS = REPO / "tests" / "vendor" / "crds"  # origin and version: its README.md


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


def crd_file(name: str) -> Path:
    """A vendored CRD (or runtime) file; its absence fails the test that needs it, loudly."""
    path = CRDS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the CRDs are vendored in tests/vendor/crds")
    return path


@functools.cache
def validator(file: str, version: str) -> Draft7Validator:
    crd = yaml.safe_load(crd_file(file).read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return Draft7Validator(_strict(copy.deepcopy(served["schema"]["openAPIV3Schema"])))


def errors(obj: dict, file: str, version: str) -> list[str]:
    """Every schema violation, as `path: message`."""
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator(file, version).iter_errors(obj)
    ]
