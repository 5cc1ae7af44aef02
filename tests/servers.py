"""Real servers on 127.0.0.1 for the tests: static HTTP and an S3 endpoint (moto)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
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
