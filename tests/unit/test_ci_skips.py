"""tests/ci_skips.py: under CI=true a skip is a failure that names its reason; elsewhere it is
a skip, listed with its reason. Run on a small test file of its own, as pytest runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = """
import pytest
def test_skipped_in_the_body(): pytest.skip("needs chromium")
@pytest.mark.skipif(True, reason="needs kubectl")
def test_skipped_by_a_mark(): pass
@pytest.mark.xfail(reason="a known bug")
def test_expected_to_fail(): assert False
def test_passes(): pass
"""


def pytest_on(tmp_path: Path, ci: str | None) -> str:
    (tmp_path / "test_sample.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-rs", "-q", "-p",
         "no:cacheprovider", str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_fails_with_its_reason(tmp_path, ci):
    out = pytest_on(tmp_path, ci)
    assert "CI=true and this test was skipped (Skipped: needs chromium)" in out
    assert "CI=true and this test was skipped (Skipped: needs kubectl)" in out
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in out


@pytest.mark.parametrize("ci", [None, "false"])
def test_elsewhere_a_skip_is_listed_with_its_reason(tmp_path, ci):
    out = pytest_on(tmp_path, ci)
    assert "SKIPPED [1] test_sample.py:3: needs chromium" in out
    assert "1 passed, 2 skipped, 1 xfailed in" in out
