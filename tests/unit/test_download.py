"""The download step against real servers on 127.0.0.1: HTTP that misbehaves on cue, and S3
(SeaweedFS)."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import logging
import threading
import time
import zipfile
from pathlib import Path

import pytest

from components.common.units import human_bytes
from components.dataset import mnist
from components.download import __main__ as download_main
from components.download.fetch import download, redact
from components.download.s3_source import _open_s3, s3_client
from components.download.transfer import RetryPolicy
from components.download.transport import DownloadError
from components.download.verify import ChecksumError
from tests import servers

pytestmark = pytest.mark.timeout(60)
FAST = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05, deadline=20, timeout=5)
GZ = [f.gz_name for f in mnist.FILES]


class FaultServer:
    """HTTP on 127.0.0.1 serving `files` ({path: bytes}); each request takes the next fault.

    Faults: '500', '503', '404', '403' (that status), 'drop' (half the body, then close),
    'html' (an HTML page with 200), 'stall' (answer late), 'nolength' (no Content-Length).
    """

    def __init__(self, files: dict[str, bytes], faults=(), ranges: bool = True):
        self.files, self.faults, self.ranges = files, list(faults), ranges
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.lock = threading.Lock()

    def next_fault(self, path: str, range_header: str | None) -> str | None:
        with self.lock:
            self.requests.append((path, range_header))
            return self.faults.pop(0) if self.faults else None

    @contextlib.contextmanager
    def running(self):
        state = self

        class Handler(_FaultHandler):
            server_state = state

        with servers.serve(Handler) as url:
            yield url


class _FaultHandler(http.server.BaseHTTPRequestHandler):
    server_state: FaultServer

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):  # noqa: N802 - the http.server interface
        state = self.server_state
        path = self.path.split("?")[0].lstrip("/")
        fault = state.next_fault(path, self.headers.get("Range"))
        if fault and fault.isdigit():
            return self.send_error(int(fault))
        if fault == "stall":
            time.sleep(1.0)
        if path not in state.files:
            return self.send_error(404)
        if fault == "html":
            return self._send(200, b"<html><body>Sign in</body></html>", "text/html")
        body, status, start = state.files[path], 200, 0
        range_header = self.headers.get("Range")
        if range_header and state.ranges:
            start, status = int(range_header.split("=")[1].rstrip("-")), 206
        with contextlib.suppress(OSError):  # the client may have given up (a stall)
            self._send(status, body, start=start, fault=fault)

    def _send(self, status, body, ctype="application/octet-stream", start=0, fault=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if fault != "nolength":
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        self.wfile.write(rest[: len(rest) // 2] if fault == "drop" else rest)


@pytest.fixture
def small_files(small_mnist_dir) -> dict[str, bytes]:
    return {name: (small_mnist_dir / name).read_bytes() for name in GZ}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == []


# --- the two source shapes, over HTTP -------------------------------------------------------


def test_http_base_folder(small_files, tmp_path):
    server = FaultServer(small_files)
    with server.running() as url:
        meta = download(url, tmp_path / "out", verify_checksums=False, retry=FAST)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(GZ)
    for name in GZ:
        assert (tmp_path / "out" / name).read_bytes() == small_files[name]
    assert meta == {
        "source": url,
        "shape": "files",
        "files": sorted(GZ),
        "bytes": sum(map(len, small_files.values())),
        "checksums_verified": False,
        "sha256": {},
    }


def test_http_archive_with_top_folder(small_files, tmp_path):
    data = zip_bytes({f"Mnist-Data-Set/{n}": b for n, b in small_files.items()})
    server = FaultServer({"dl/Mnist-Data-Set.zip": data})
    with server.running() as url:
        meta = download(url + "dl/Mnist-Data-Set.zip", tmp_path, verify_checksums=False)
    assert (tmp_path / "Mnist-Data-Set.zip").read_bytes() == data
    assert meta["shape"] == "archive" and meta["files"] == ["Mnist-Data-Set.zip"]
    assert [p.name for p in tmp_path.iterdir()] == ["Mnist-Data-Set.zip"]


def test_canonical_checksums_hold_for_rewrapped_gzip(full_mnist_dir, tmp_path, http_dir):
    """The digest is of the decompressed content, so a mirror's different .gz bytes pass."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in GZ:
        (mirror / name).symlink_to(full_mnist_dir / name)
    labels = mirror / "t10k-labels-idx1-ubyte.gz"
    rewrapped = gzip.compress(gzip.decompress(labels.read_bytes()), compresslevel=1, mtime=1)
    labels.unlink()
    labels.write_bytes(rewrapped)
    assert rewrapped != (full_mnist_dir / labels.name).read_bytes()
    meta = download(http_dir(mirror), tmp_path / "out", verify_checksums=True)
    assert meta["sha256"] == {f.name: f.sha256 for f in mnist.FILES}
    assert meta["checksums_verified"] is True


def test_canonical_checksums_of_an_archive(full_mnist_dir, tmp_path):
    members = {f"MNIST/{n}": (full_mnist_dir / n).read_bytes() for n in GZ}
    (tmp_path / "mnist.zip").write_bytes(zip_bytes(members))
    meta = download(str(tmp_path / "mnist.zip"), tmp_path / "out")
    assert meta["sha256"] == {f.name: f.sha256 for f in mnist.FILES}


def test_checksum_mismatch_names_the_file(small_files, tmp_path):
    message = r"train-images-idx3-ubyte.gz: sha256 of the decompressed content is [0-9a-f]{64}"
    with FaultServer(small_files).running() as url, pytest.raises(ChecksumError, match=message):
        download(url, tmp_path / "out", verify_checksums=True)
    assert_nothing_written(tmp_path / "out")


def test_checksum_mismatch_in_an_archive(small_files, tmp_path):
    (tmp_path / "m.zip").write_bytes(zip_bytes(small_files))
    with pytest.raises(ChecksumError, match=r"m.zip: train-images-idx3-ubyte: sha256"):
        download(str(tmp_path / "m.zip"), tmp_path / "out", verify_checksums=True)
    assert_nothing_written(tmp_path / "out")


def test_archive_missing_a_file(full_mnist_dir, tmp_path):
    members = {n: (full_mnist_dir / n).read_bytes() for n in GZ[:3]}
    (tmp_path / "m.zip").write_bytes(zip_bytes(members))
    with pytest.raises(ChecksumError, match="m.zip: holds no t10k-labels-idx1-ubyte"):
        download(str(tmp_path / "m.zip"), tmp_path / "out")


def test_corrupt_gzip_is_a_download_error(small_files, tmp_path):
    files = dict(small_files, **{GZ[0]: b"\x1f\x8b not really gzip"})
    with (
        FaultServer(files).running() as url,
        pytest.raises(DownloadError, match=f"{GZ[0]}: corrupt or truncated"),
    ):
        download(url, tmp_path / "out", verify_checksums=True)


# --- faults: what is retried and what is not -----------------------------------------------


@pytest.mark.parametrize("status", ["404", "403"])
def test_client_errors_are_not_retried(small_files, tmp_path, status):
    server = FaultServer(small_files, faults=[status])
    with (
        server.running() as url,
        pytest.raises(DownloadError, match=rf"{url}{GZ[0]}: HTTP {status} .*not retried"),
    ):
        download(url, tmp_path / "out", verify_checksums=False, retry=FAST)
    assert len(server.requests) == 1
    assert_nothing_written(tmp_path / "out")


def test_a_later_failure_leaves_no_file_behind(small_files, tmp_path):
    """Files are renamed into place only when all four have arrived and passed."""
    files = {name: data for name, data in small_files.items() if name != GZ[2]}
    with FaultServer(files).running() as url, pytest.raises(DownloadError, match=GZ[2]):
        download(url, tmp_path / "out", verify_checksums=False, retry=FAST)
    assert_nothing_written(tmp_path / "out")


def test_5xx_is_retried_then_succeeds(small_files, tmp_path):
    server = FaultServer(small_files, faults=["500", "503"])
    with server.running() as url:
        download(url, tmp_path, verify_checksums=False, retry=FAST)
    assert [p for p, _ in server.requests[:3]] == [GZ[0]] * 3
    assert (tmp_path / GZ[0]).read_bytes() == small_files[GZ[0]]


def test_5xx_retries_are_bounded(small_files, tmp_path):
    server = FaultServer(small_files, faults=["500"] * 10)
    with (
        server.running() as url,
        pytest.raises(DownloadError, match=rf"{GZ[0]}: giving up after 3 attempt\(s\).*500"),
    ):
        download(
            url,
            tmp_path / "out",
            verify_checksums=False,
            retry=RetryPolicy(attempts=3, backoff=0.01),
        )
    assert len(server.requests) == 3
    assert_nothing_written(tmp_path / "out")


def test_retries_stop_at_the_deadline(small_files, tmp_path):
    server = FaultServer(small_files, faults=["500"] * 10)
    policy = RetryPolicy(attempts=10, backoff=5.0, deadline=1.0)  # the first delay passes it
    with (
        server.running() as url,
        pytest.raises(DownloadError, match=r"giving up after 1 attempt\(s\)"),
    ):
        download(url, tmp_path / "out", verify_checksums=False, retry=policy)


def test_dropped_connection_resumes_with_range(small_files, tmp_path):
    server = FaultServer(small_files, faults=["drop"])
    with server.running() as url:
        download(url, tmp_path, verify_checksums=False, retry=FAST)
    assert (tmp_path / GZ[0]).read_bytes() == small_files[GZ[0]]
    half = len(small_files[GZ[0]]) // 2
    assert server.requests[:2] == [(GZ[0], None), (GZ[0], f"bytes={half}-")]


def test_dropped_connection_restarts_without_range_support(small_files, tmp_path):
    server = FaultServer(small_files, faults=["drop", "drop"], ranges=False)
    with server.running() as url:
        download(url, tmp_path, verify_checksums=False, retry=FAST)
    assert (tmp_path / GZ[0]).read_bytes() == small_files[GZ[0]]
    assert len(server.requests) == 3 + len(GZ) - 1


def test_timeout_is_retried(small_files, tmp_path):
    server = FaultServer(small_files, faults=["stall"])
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=0.3)
    with server.running() as url:
        download(url, tmp_path, verify_checksums=False, retry=policy)
    assert (tmp_path / GZ[0]).read_bytes() == small_files[GZ[0]]
    assert [p for p, _ in server.requests[:2]] == [GZ[0], GZ[0]]


def test_connection_refused_gives_up_naming_the_url(tmp_path):

    url = f"http://127.0.0.1:{servers.free_port()}/"
    said = rf"{url}{GZ[0]}: giving up after 2 .*ConnectionError: connection refused \(nothing"
    with pytest.raises(DownloadError, match=said):
        download(url, tmp_path, retry=RetryPolicy(attempts=2, backoff=0.01, timeout=2))


def test_a_host_name_that_does_not_resolve_is_said_in_words(tmp_path, monkeypatch):
    """Offline, the name of the default mirror does not resolve: the error says so, not a bare
    ConnectionError (socket.getaddrinfo fails as it does with no network)."""
    import socket

    def no_network(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    said = r"giving up after 2 .*: ConnectionError: the host name does not resolve \(no network"
    with pytest.raises(DownloadError, match=said):
        download("https://mirror.invalid/mnist/", tmp_path, retry=RetryPolicy(2, 0.01, timeout=2))


@pytest.mark.parametrize(
    "cause, said",
    [
        (TimeoutError(), "timed out"),
        (ConnectionRefusedError(), "connection refused (nothing listens at that host and port)"),
        (ValueError("no fault of the connection"), "RuntimeError"),  # the outer error's class
    ],
)
def test_a_connection_fault_is_named_by_its_cause_never_by_its_text(cause, said):
    from components.download.transport import connection_fault

    outer = RuntimeError("https://user:S3CRET@host/ failed")
    outer.__context__ = RuntimeError("wrapper")
    outer.__context__.__cause__ = cause
    assert connection_fault(outer) == said


# --- bad payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Content-Length", "Content-Range"])
def test_a_size_header_int_cannot_read_is_taken_for_no_size(small_files, tmp_path, header):
    """'²' passes str.isdigit() and then int() raises a bare ValueError: a traceback."""
    body = zip_bytes(small_files)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(206 if header == "Content-Range" else 200)
            self.send_header(header, "\u00b2" if header == "Content-Length" else "bytes 0-9/\u00b2")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

    with servers.serve(Handler) as url:
        meta = download(url + "mnist.zip", tmp_path / "out", verify_checksums=False, retry=FAST)
    assert meta["bytes"] == len(body)


def test_html_page_with_200_is_refused(small_files, tmp_path):
    server = FaultServer(small_files, faults=["html"])
    with (
        server.running() as url,
        pytest.raises(DownloadError, match=f"{GZ[0]}: served an HTML page"),
    ):
        download(url, tmp_path / "out", verify_checksums=False, retry=FAST)
    assert len(server.requests) == 1
    assert_nothing_written(tmp_path / "out")


def test_body_starting_with_a_tag_is_refused(tmp_path):
    files = {"m.zip": b"\n  <!DOCTYPE html><html>Access denied</html>"}
    with (
        FaultServer(files).running() as url,
        pytest.raises(DownloadError, match="m.zip: served an HTML or XML page"),
    ):
        download(url + "m.zip", tmp_path / "out", verify_checksums=False, retry=FAST)
    assert_nothing_written(tmp_path / "out")


def test_empty_file_is_refused(tmp_path):
    with (
        FaultServer({"m.zip": b""}).running() as url,
        pytest.raises(DownloadError, match=r"m.zip: is empty \(0 bytes\)"),
    ):
        download(url + "m.zip", tmp_path / "out", verify_checksums=False, retry=FAST)
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("faults", [[], ["nolength"]], ids=["content-length", "streamed"])
def test_source_larger_than_the_limit(tmp_path, faults):
    server = FaultServer({"m.zip": bytes(50_000)}, faults=faults)
    message = r"m.zip: the source is larger than the limit of 10000 bytes \(max_bytes\)"
    with server.running() as url, pytest.raises(DownloadError, match=message):
        download(url + "m.zip", tmp_path / "out", max_bytes=10_000, retry=FAST)
    assert_nothing_written(tmp_path / "out")


def test_the_limit_covers_all_four_files(small_files, tmp_path):
    limit = sum(map(len, small_files.values())) - 1
    with (
        FaultServer(small_files).running() as url,
        pytest.raises(DownloadError, match=f"{GZ[3]}: the source is larger than the limit"),
    ):
        download(url, tmp_path / "out", verify_checksums=False, max_bytes=limit, retry=FAST)
    assert_nothing_written(tmp_path / "out")


def test_credentials_in_the_url_never_reach_messages(tmp_path):
    with FaultServer({}).running() as url:
        secret_url = url.replace("http://", "http://user:Pa55w0rd@") + "m.zip?X-Amz-Signature=SiG"
        with pytest.raises(DownloadError) as e:
            download(secret_url, tmp_path / "out", retry=FAST)
    assert "404" in str(e.value)
    assert "Pa55w0rd" not in str(e.value) and "SiG" not in str(e.value)
    assert redact(secret_url) == url + "m.zip"


@pytest.mark.parametrize("source,message", [
    ("ftp://example.org/mnist/", "unsupported scheme 'ftp'"),
    ("/no/such/folder", "no such folder, or not a .zip"),
    ("/no/such/mnist.zip", "mnist.zip: cannot be read"),
    ("http://[::1/mnist/", "is not a valid URL: its host cannot be read"),
])  # fmt: skip
def test_bad_sources(tmp_path, source, message):
    with pytest.raises(DownloadError, match=message):
        download(source, tmp_path / "out")


def test_a_download_bound_that_is_no_number_ends_the_step_in_one_line(tmp_path, monkeypatch):
    """The step's shim, called directly: MNIST_DOWNLOAD_DEADLINE=10m was float's bare
    ValueError, a traceback; it is one line naming the variable, and exit status 1."""
    from kfp.dsl import Dataset

    from components.common.failure import ERROR_FILE_ENV
    from components.download.component import download as step

    errors = tmp_path / "errors.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    monkeypatch.setenv("MNIST_DOWNLOAD_DEADLINE", "10m")
    dataset = Dataset(name="dataset", uri=str(tmp_path / "dataset"), metadata={})
    with pytest.raises(SystemExit) as ended:
        step.python_func(
            source="https://mirror.invalid/mnist/", verify_checksums=True, s3_endpoint="",
            dataset=dataset,
        )  # fmt: skip
    assert ended.value.code == 1
    assert errors.read_text().splitlines() == [
        "download: MNIST_DOWNLOAD_DEADLINE='10m' is not a number"
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_the_dataset_ends_the_step_in_one_line(
    small_mnist_dir, tmp_path, monkeypatch
):
    """The file being written is on a full disk (/dev/full answers every write ENOSPC): a
    bare OSError, a traceback; it is one line naming where, exit status 1, no part left."""
    from kfp.dsl import Dataset

    from components.common.failure import ERROR_FILE_ENV
    from components.download.component import download as step

    errors = tmp_path / "errors.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(errors))
    dest = tmp_path / "dataset"
    dest.mkdir()
    (dest / f".part-{GZ[0]}").symlink_to("/dev/full")
    dataset = Dataset(name="dataset", uri=str(dest), metadata={})
    with pytest.raises(SystemExit) as ended:
        step.python_func(
            source=str(small_mnist_dir), verify_checksums=False, s3_endpoint="", dataset=dataset
        )
    assert ended.value.code == 1
    (line,) = errors.read_text().splitlines()
    assert line.startswith(f"download: download into {dest} failed: ") and "No space left" in line
    assert_nothing_written(dest)


def test_a_file_where_the_dataset_folder_should_be_is_a_download_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DownloadError, match="download into .*a-file/dataset failed: .*Not a dir"):
        download("https://mirror.invalid/mnist/", tmp_path / "a-file" / "dataset")


def test_a_source_folder_that_cannot_be_listed_is_a_download_error(small_mnist_dir, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    """Root lists any folder, so the refusal of a folder without read permission is faked."""
    real = Path.iterdir

    def refused(self):
        if self == small_mnist_dir:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", refused)
    with pytest.raises(DownloadError, match="source folder .*: cannot be read: Permission denied"):
        download(str(small_mnist_dir), tmp_path / "out")


# --- local paths and S3 ---------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file-uri"])
def test_local_folder(small_mnist_dir, tmp_path, form):
    source = str(small_mnist_dir) if form == "path" else small_mnist_dir.as_uri()
    meta = download(source, tmp_path / "out", verify_checksums=False)
    assert sorted(meta["files"]) == sorted(GZ)
    assert (tmp_path / "out" / GZ[1]).read_bytes() == (small_mnist_dir / GZ[1]).read_bytes()


def _s3_put(endpoint: str, bucket: str, files: dict[str, bytes]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)


def _public_read(endpoint: str, bucket: str, prefix: str) -> None:
    """Anyone may GET keys under `prefix`: a bucket policy, as on MinIO and AWS (whose object
    ACLs MinIO ignores and new AWS buckets refuse)."""
    import boto3

    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
    }
    policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.put_bucket_policy(Bucket=bucket, Policy=policy)


def test_s3_base_with_credentials(s3_env, s3_bucket, small_files, tmp_path):
    _s3_put(s3_env, s3_bucket, {f"mnist/{n}": b for n, b in small_files.items()})
    meta = download(
        f"s3://{s3_bucket}/mnist/", tmp_path, verify_checksums=False, s3_endpoint=s3_env
    )
    assert meta["bytes"] == sum(map(len, small_files.values()))
    assert (tmp_path / GZ[2]).read_bytes() == small_files[GZ[2]]


def test_s3_archive_anonymous_via_env_endpoint(
    s3_env, s3_bucket, small_files, tmp_path, monkeypatch
):
    data = zip_bytes(small_files)
    _s3_put(s3_env, s3_bucket, {"pub/Mnist-Data-Set.zip": data})
    _public_read(s3_env, s3_bucket, "pub/")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    download(f"s3://{s3_bucket}/pub/Mnist-Data-Set.zip", tmp_path, verify_checksums=False)
    assert (tmp_path / "Mnist-Data-Set.zip").read_bytes() == data


def test_s3_anonymous_on_a_private_object_is_refused(s3_env, s3_bucket, tmp_path, monkeypatch):
    _s3_put(s3_env, s3_bucket, {"m.zip": b"PK"})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(DownloadError, match=rf"s3://{s3_bucket}/m.zip at .*HTTP 403, not retried"):
        download(f"s3://{s3_bucket}/m.zip", tmp_path / "out", s3_endpoint=s3_env, retry=FAST)


def test_s3_missing_key_is_not_retried(s3_env, s3_bucket, tmp_path):
    with pytest.raises(
        DownloadError,
        match=rf"s3://{s3_bucket}/x/{GZ[0]} at {s3_env}: "
        r"NoSuchKey \(HTTP 404, not retried\)",
    ):
        download(f"s3://{s3_bucket}/x", tmp_path / "out", s3_endpoint=s3_env, retry=FAST)
    assert_nothing_written(tmp_path / "out")


def test_s3_resumes_at_an_offset(s3_env, s3_bucket):
    _s3_put(s3_env, s3_bucket, {"k": b"0123456789"})
    resp = _open_s3(s3_client(s3_env), f"s3://{s3_bucket}/k", 4)
    assert (resp.offset, resp.total, b"".join(resp.chunks)) == (4, 10, b"456789")


# --- logs and the debugging entry point ----------------------------------------------------


def test_progress_is_logged(small_files, tmp_path, caplog):
    logger = logging.getLogger("mnist")
    logger.addHandler(caplog.handler)
    try:
        with FaultServer(small_files).running() as url:
            download(url, tmp_path, verify_checksums=False)
    finally:
        logger.removeHandler(caplog.handler)
    total = sum(len(data) for data in small_files.values())
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fetched")]
    assert line == f"fetched 4 file(s), {human_bytes(total)}"


def test_main_prints_metadata(small_mnist_dir, tmp_path, capsys):
    download_main.main([str(small_mnist_dir), str(tmp_path / "out"), "--no-verify"])
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{\n") :])["files"] == sorted(GZ)


def test_rerun_into_the_same_folder_replaces_files(small_mnist_dir, tmp_path):
    dest = tmp_path / "out"
    download(str(small_mnist_dir), dest, verify_checksums=False)
    (dest / GZ[0]).write_bytes(b"stale")
    download(str(small_mnist_dir), dest, verify_checksums=False)
    assert (dest / GZ[0]).read_bytes() == (small_mnist_dir / GZ[0]).read_bytes()
