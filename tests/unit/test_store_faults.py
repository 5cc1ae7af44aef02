"""Store faults on 127.0.0.1: refused connections, 5xx answers, a server stopped mid-upload.

Every failure is bounded (a few retries with backoff) and names the endpoint and bucket, never
the credentials; a re-run after the server comes back completes the dataset.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from components.common import spec
from components.dataset.manifest import DatasetError, read_manifest
from components.store import StoreError, open_store
from components.unpack_upload.unpack import unpack_and_upload
from tests import servers
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY


def test_connection_refused_is_bounded_and_clear(s3_env):
    endpoint = f"http://127.0.0.1:{servers.free_port()}"
    store = open_store("s3://some-bucket/p", endpoint)
    start = time.monotonic()
    with pytest.raises(StoreError) as e:
        store.put_bytes("k", b"x")
    elapsed = time.monotonic() - start
    message = str(e.value)
    assert "some-bucket" in message and endpoint.removeprefix("http://") in message
    assert "refused" in message.lower()
    assert FAKE_SECRET_KEY not in message and FAKE_ACCESS_KEY not in message
    assert elapsed < 60  # bounded, not a hang (no figure asserted beyond "it stops")


def s3_error_handler(status: int, code: str, message: str):
    """A handler class that answers every request like S3 does with `code` (counting them)."""
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        requests = 0

        def _answer(self):
            type(self).requests += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def misbehaving_s3(handler) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1; yields its host:port."""
    with servers.serve(handler) as url:
        yield url.removeprefix("http://").rstrip("/")


def test_wrong_credentials_fail_once_and_clearly(s3_env):
    handler = s3_error_handler(
        403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records."
    )
    with misbehaving_s3(handler) as endpoint, pytest.raises(StoreError) as e:
        open_store("s3://secure-bucket/p", f"http://{endpoint}").put_bytes("k", b"x")
    message = str(e.value)
    assert "InvalidAccessKeyId" in message and "secure-bucket" in message and endpoint in message
    assert FAKE_ACCESS_KEY not in message and FAKE_SECRET_KEY not in message
    assert handler.requests <= 2  # at most the region look-up and the call: not retried


def test_5xx_answers_are_retried_then_reported(s3_env):
    handler = s3_error_handler(500, "InternalError", "boom")
    with misbehaving_s3(handler) as endpoint, pytest.raises(StoreError) as e:
        open_store("s3://flaky-bucket/p", f"http://{endpoint}").get_bytes("MANIFEST.json")
    message = str(e.value)
    assert "flaky-bucket" in message and endpoint in message and "500" in message
    assert handler.requests > 1  # retried, and then it stopped


def test_server_stopped_mid_upload_then_rerun_completes(small_mnist_dir, tmp_path, monkeypatch):
    """A moto server is stopped while the dataset uploads; readers see no dataset; a re-run after
    a restart on the same port completes it, with no duplicate or corrupt object."""
    import boto3

    # moto, not SeaweedFS: stopped and restarted in-process within milliseconds, keeping its
    # objects, it can be cut off right as the first file lands, which is the fault under test.
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    port = servers.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="mid")
    store = open_store("s3://mid/root", endpoint)

    # Stop the server as soon as the first IDX file has landed.
    def stop_after_first_object():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if any(True for _ in store.list(spec.DATASET_PREFIX)):
                    break
            except StoreError:
                pass
            time.sleep(0.01)
        server.stop()

    stopper = threading.Thread(target=stop_after_first_object)
    stopper.start()
    with pytest.raises(StoreError):
        unpack_and_upload(
            small_mnist_dir, store, spec.DATASET_PREFIX, canonical=False, workdir=tmp_path / "w1"
        )
    stopper.join()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with pytest.raises(DatasetError, match="MANIFEST.json is missing"):
            read_manifest(store, spec.DATASET_PREFIX)  # the partial upload is not a dataset
        meta = unpack_and_upload(
            small_mnist_dir, store, spec.DATASET_PREFIX, canonical=False, workdir=tmp_path / "w2"
        )
        manifest = read_manifest(store, spec.DATASET_PREFIX)
        keys = sorted(o.key for o in store.list(spec.DATASET_PREFIX))
        assert keys == sorted(
            [f"{spec.DATASET_PREFIX}/{name}" for name in manifest["files"]]
            + [f"{spec.DATASET_PREFIX}/{spec.MANIFEST}"]
        )
        for name, entry in manifest["files"].items():
            info = store.stat(f"{spec.DATASET_PREFIX}/{name}")
            assert (info.size, info.sha256) == (entry["size"], entry["sha256"])
        assert meta["dataset_uri"] == "s3://mid/root/datasets/mnist"
    finally:
        server.stop()
