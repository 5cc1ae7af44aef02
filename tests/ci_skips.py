"""A pytest plugin (tests/conftest.py loads it): no silent skips in CI."""

from __future__ import annotations

import pytest

from tests import needs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails, naming its reason: CI installs every tool and data
    set a test needs, so a skip there is a test that silently stopped running (a missing
    chromium, kubectl or MNIST copy). Elsewhere a skip stays a skip, listed with its reason
    (addopts has -rs)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and needs.in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true and this test was skipped ({reason}): install what it needs"
