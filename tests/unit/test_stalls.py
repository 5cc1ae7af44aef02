"""Servers on 127.0.0.1 that stall: every network call is bounded, and the message says the bound.

The bounds are made short through parameters or the environment; nothing here sleeps minutes.
Each elapsed-time check only says "it stopped" (a generous ceiling), not how fast.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from components.download.fetch import download
from components.download.transfer import RetryPolicy
from components.download.transport import DownloadError
from components.store import StoreError, open_store
from tests import servers
from tests.conftest import FAKE_SECRET_KEY


def test_a_trickling_http_source_is_cut_at_the_speed_floor_and_the_deadline(tmp_path):
    """One byte every 0.2 s: under the speed floor, so each try is cut and resumed, and the
    whole download stops at the deadline, while the body is still being read."""
    policy = RetryPolicy(attempts=50, backoff=0.01, deadline=3, timeout=2, speed_window=0.5)
    handler = servers.trickle_handler(size=10_000, every=0.2)
    with servers.serve(handler) as url:
        start = time.monotonic()
        with pytest.raises(DownloadError) as e:
            download(url + "m.zip", tmp_path / "out", verify_checksums=False, retry=policy)
    message = str(e.value)
    assert "3 s" in message and ("deadline" in message or "giving up" in message), message
    assert time.monotonic() - start < 30
    assert not any((tmp_path / "out").iterdir())  # nothing half-written left behind


def test_headers_then_silence_is_bounded_by_the_read_timeout_and_deadline(tmp_path):
    policy = RetryPolicy(attempts=3, backoff=0.01, deadline=5, timeout=0.5)
    handler = servers.trickle_handler(size=100, every=0.2, headers_only=True)
    with servers.serve(handler) as url:
        start = time.monotonic()
        with pytest.raises(DownloadError, match=r"giving up after 3 attempt\(s\)") as e:
            download(url + "m.zip", tmp_path / "out", verify_checksums=False, retry=policy)
    assert "bounds: 3 attempts, 5 s" in str(e.value)
    assert time.monotonic() - start < 30


def test_the_download_bounds_come_from_the_environment(monkeypatch, tmp_path):
    """What the README and the deadline message promise: the variables set the bounds of a
    download that is given no policy (as the step's is)."""
    monkeypatch.setenv("MNIST_DOWNLOAD_DEADLINE", "2")
    monkeypatch.setenv("MNIST_DOWNLOAD_TIMEOUT", "0.5")
    policy = RetryPolicy.from_env()
    assert (policy.deadline, policy.timeout) == (2, 0.5)
    handler = servers.trickle_handler(size=100, every=0.2, headers_only=True)
    with servers.serve(handler) as url, pytest.raises(DownloadError) as e:
        download(url + "m.zip", tmp_path / "out", verify_checksums=False)
    assert "bounds: 6 attempts, 2 s" in str(e.value)


def test_an_s3_endpoint_that_never_answers_is_bounded_and_says_so(s3_env, monkeypatch):
    monkeypatch.setenv("MNIST_S3_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("MNIST_S3_ATTEMPTS", "2")
    with servers.silent_server() as endpoint:
        store = open_store("s3://quiet-bucket/p", f"http://{endpoint}")
        start = time.monotonic()
        with pytest.raises(StoreError) as e:
            list(store.list("images"))
    message = str(e.value)
    assert "no answer (2 attempt(s), each within 10+0.5 s)" in message, message
    assert "quiet-bucket" in message and endpoint in message and FAKE_SECRET_KEY not in message
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_kfp_api_that_never_answers_is_bounded_and_the_message_is_true(monkeypatch, scheme):
    """A plain-http port that never answers; with https:// the message adds the TLS hint."""
    from pipeline.cli import main

    monkeypatch.setenv("MNIST_KFP_TIMEOUT", "0.5")
    with servers.silent_server() as endpoint:
        start = time.monotonic()
        result = CliRunner().invoke(
            main, ["submit", "--host", f"{scheme}://{endpoint}", "--token", "t"]
        )
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    if scheme == "https":
        assert "try http://" in message, message
    else:
        assert "did not answer within 0.5 s, up to 3 tries" in message, message
    assert time.monotonic() - start < 60
