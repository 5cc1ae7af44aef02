"""What a test needs that is not a project dependency in every install (TensorFlow, a checker).

On a laptop a missing one skips the test, with the reason. Under CI=true it fails the test: CI
installs everything, so a skip there is a test that silently stopped running."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def module(name: str) -> ModuleType:
    """`name` imported; skipped where it is missing, except under CI=true, where that fails."""
    if in_ci():
        try:
            return importlib.import_module(name)
        except ImportError as e:
            pytest.fail(f"CI=true and {name} cannot be imported ({e}): install it, do not skip")
    return pytest.importorskip(name)
