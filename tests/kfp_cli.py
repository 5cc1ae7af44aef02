"""Fixtures of the CLI tests that talk to a fake KFP API (tests/kfp_server.py); a plugin of
tests/conftest.py. Modules that use them mark `pytest.mark.usefixtures("no_kfp_context")`."""

from __future__ import annotations

import pytest

from tests.kfp_server import KfpServer

KFP_ENV = (
    "KFP_HOST",
    "KFP_NAMESPACE",
    "KFP_TOKEN",
    "KFP_TOKEN_FILE",
    "KFP_CA_CERT",
    "KF_PIPELINES_ENDPOINT",
    "KF_PIPELINES_UI_ENDPOINT",
    "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
    "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME",
)


@pytest.fixture
def no_kfp_context(monkeypatch, tmp_path):
    """Keep ~/.config/kfp/context.json and the caller's KFP variables out of the tests."""
    monkeypatch.setattr(
        "kfp.client.client.Client._LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json")
    )
    for name in KFP_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kfp_api(monkeypatch):
    """A fake KFP API; KFP_HOST points at it."""
    with KfpServer() as server:
        monkeypatch.setenv("KFP_HOST", server.url)
        yield server
