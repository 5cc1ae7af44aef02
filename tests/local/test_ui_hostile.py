"""The web page against hostile clients, on a real server configured as `mnist-pipeline ui`
configures it (pipeline/ui/server.py, pipeline/ui/limits.py), with short limits so the tests
are quick: pixel-bomb uploads, more decodes than cores, slow and idle connections, too many
connections, a client that leaves mid-upload, and the security headers.

The model is tests/unit/digit_images.py's template classifier (numpy, no TensorFlow), behind
the same back-end interface as an exported model.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests import servers
from tests.conftest import REPO
from tests.local.test_ui import call, serving
from tests.unit.digit_images import classify, sample_files
from tests.unit.test_image_decode_fuzz import png

pytest.importorskip("fastapi")
pytestmark = pytest.mark.timeout(120)
SHORT = {"header_seconds": 1.0, "idle_seconds": 1.0, "body_seconds": 1.5}


class Template:
    """The template classifier as a back end (the embedded back end's interface)."""

    label, version = "template", "1"

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(classify(pixels[None])[0][0], dtype=np.float64)


def app(**limits):
    from pipeline.ui.app import create_app
    from pipeline.ui.limits import Limits

    settings = Limits(**{**SHORT, **limits})
    return create_app(Template(), limits=settings), settings


def closed_after(sock: socket.socket, trickle: bytes = b"", every: float = 0.2, cap=15.0):
    """Seconds until the server closes `sock` (sending `trickle` a byte at a time meanwhile),
    and what it answered; fails when it is still open after `cap` seconds."""
    start, answer = time.monotonic(), b""
    sock.settimeout(every)
    sent = 0
    while time.monotonic() - start < cap:
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent : sent + 1])
                sent += 1
            except OSError:  # reset by the server
                return time.monotonic() - start, answer
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start, answer
        if not data:
            return time.monotonic() - start, answer
        answer += data
    pytest.fail(f"the connection was still open after {cap} s (answered {answer[:80]!r})")


def connect(port: int, source: str | None = None) -> socket.socket:
    """A connection to the server, from `source` (another loopback address: another client)."""
    where = (source, 0) if source else None
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=where)


# -- memory: a 77 KB PNG held 611 MB ---------------------------------------------------------

MEASURE = """
import ctypes, re, sys
from pathlib import Path
from components.reading.image_decode import decode_gray, ImageError
from tests.unit.test_image_decode_fuzz import png
data = png(6300, 6300, 16)
rss = lambda key: int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
ctypes.CDLL("libc.so.6").malloc_trim(0)
Path("/proc/self/clear_refs").write_text("5")
before = rss("VmRSS")
try:
    outcome = decode_gray(data).shape
except ImageError as e:
    outcome = str(e)
print(len(data), (rss("VmHWM") - before) // 1024, outcome)
"""


def test_a_16_bit_6300x6300_png_decodes_in_bounded_memory():
    from components.reading.image_decode import MAX_DECODED_BYTES

    result = subprocess.run(
        [sys.executable, "-c", MEASURE], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    size, growth_mb, outcome = result.stdout.split(" ", 2)
    assert int(size) < 400_000  # a small file ...
    assert int(growth_mb) <= MAX_DECODED_BYTES // 2**20 + 32, f"{growth_mb} MB: {outcome}"
    assert outcome.strip() == "(1050, 1050)" or "too large" in outcome  # decoded or refused


def test_the_pixel_bomb_over_http_gets_an_answer():
    application, _ = app()
    with serving(application) as port:
        status, answer = call(port, "POST", "/api/predict", png(6300, 6300, 16))
    assert status == 400 and answer["error"] == "blank image: no digit found"


# -- one decode per core; the rest wait briefly, then 503 -------------------------------------


def test_decodes_over_the_cap_wait_then_get_503_with_retry_after():
    slow = png(6300, 6300, 8)  # about 0.1 s to decode, far longer than the 0.02 s wait
    application, limits = app(decodes=1, queue_seconds=0.02)
    answers = []

    def upload():
        connection = http_connection(port)
        connection.request("POST", "/api/predict", body=slow)
        response = connection.getresponse()
        answers.append((response.status, response.getheader("Retry-After"), response.read()))
        connection.close()

    with serving(application, limits) as port:
        threads = [threading.Thread(target=upload) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        busy = [a for a in answers if a[0] == 503]
        assert busy, [a[0] for a in answers]
        assert all(a[1] == "2" for a in busy)
        assert "busy" in json.loads(busy[0][2])["error"]
        assert any(a[0] == 400 for a in answers)  # one decoded: a blank image
        files, _ = sample_files()  # and once the load is gone, the page answers again
        status, answer = call(port, "POST", "/api/predict", files["7.jpg"])
    assert status == 200 and answer["digit"] == 7


def http_connection(port: int):
    import http.client

    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


# -- slow and idle clients ---------------------------------------------------------------------


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_deadline():
    application, limits = app()
    headers = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    with serving(application, limits) as port, connect(port) as sock:
        seconds, answer = closed_after(sock, headers)
    assert answer == b"" and seconds < limits.header_seconds + 2


def test_a_body_sent_a_byte_at_a_time_gets_408_at_the_body_deadline():
    application, limits = app()
    with serving(application, limits) as port, connect(port) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        seconds, answer = closed_after(sock, b"x" * 5000)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"the upload took longer than 1.5 s" in answer
    assert seconds < limits.body_seconds + 2


def test_idle_connections_are_closed_before_and_after_a_request():
    application, limits = app()
    with serving(application, limits) as port:
        with connect(port) as sock:  # never says anything
            seconds, answer = closed_after(sock)
        assert answer == b"" and seconds < limits.header_seconds + 2
        with connect(port) as sock:  # one request, then keeps the connection open
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            seconds, answer = closed_after(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and seconds < limits.idle_seconds + 2
        with connect(port) as sock:  # a GET that declares a body and trickles it
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n")
            seconds, answer = closed_after(sock, b"x" * 900)
        assert answer.startswith(b"HTTP/1.1 200 ") and seconds < limits.header_seconds + 2


def test_connections_over_the_cap_get_503_and_are_closed():
    application, limits = app(connections=3)
    with serving(application, limits) as port:
        held = [connect(port) for _ in range(3)]
        time.sleep(0.2)
        with connect(port) as extra:
            _, answer = closed_after(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 2" in answer
        assert b"too many open connections" in answer
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert call(port, "GET", "/healthz")[0] == 200  # room again


def test_a_client_holding_its_share_of_connections_does_not_stop_another():
    application, limits = app(connections=4, connections_per_client=2)
    with serving(application, limits) as port:
        hog = [connect(port) for _ in range(2)]
        time.sleep(0.2)
        with connect(port) as extra:  # the hog's third
            _, answer = closed_after(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 2" in answer
        assert b"too many open connections from your address" in answer
        with connect(port, source="127.0.0.2") as other:  # another client (Linux loopback)
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            _, answer = closed_after(other)
        assert answer.startswith(b"HTTP/1.1 200 ")
        for sock in hog:
            sock.close()


def test_a_keep_alive_connection_closes_after_its_requests_or_its_lifetime():
    application, limits = app(requests_per_connection=3)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with serving(application, limits) as port, connect(port) as sock:
        sock.sendall(request * 5)  # pipelined: the last two are not answered
        _, answer = closed_after(sock)
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer
    assert answer.rsplit(b"HTTP/1.1 200 ", 1)[1].lower().count(b"connection: close") == 1
    assert answer.lower().count(b"connection: close") == 1  # only the last answer

    application, limits = app(connection_seconds=0.5)
    with serving(application, limits) as port, connect(port) as sock:
        start, answers = time.monotonic(), b""
        sock.settimeout(5)
        while time.monotonic() - start < 5:  # a client that is never idle
            try:
                sock.sendall(request)
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answers += data
            time.sleep(0.2)
    assert time.monotonic() - start < 2, "the connection outlived its lifetime"
    assert b"connection: close" in answers.lower()


def server_side(port: int, client: socket.socket) -> str | None:
    """The TCP state ('01': established) of the server's end of `client`'s connection, from
    /proc/net/tcp; None once the server has let it go (the client may never see a reset that
    arrives while its receive window is full)."""
    ends = {f":{port:04X}", f":{client.getsockname()[1]:04X}"}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if local.endswith(f":{port:04X}") and {local[-5:], remote[-5:]} == ends:
            return state
    return None


def test_a_client_that_never_reads_its_answers_is_cut_off_at_the_send_deadline():
    application, limits = app(send_seconds=1.0, requests_per_connection=1000)
    with serving(application, limits) as port:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 400)  # and never reads
            start = time.monotonic()
            while server_side(port, sock) == "01" and time.monotonic() - start < 15:
                time.sleep(0.1)
            seconds = time.monotonic() - start
            assert server_side(port, sock) != "01", "still connected after 15 s"
        assert seconds < limits.send_seconds + 3
        assert call(port, "GET", "/healthz")[0] == 200  # the server answers others


# -- a client that leaves mid-upload -----------------------------------------------------------


def test_a_client_leaving_mid_upload_leaves_no_traceback_in_the_log(tmp_path):
    """The real command, its log captured: `ui --serving-url` (TF Serving down: no model)."""
    port = servers.free_port()
    log = (tmp_path / "ui.log").open("w")
    command = [sys.executable, "-m", "pipeline.cli", "ui", "--no-check", "--port", str(port)]
    command += ["--serving-url", f"http://127.0.0.1:{servers.free_port()}"]
    server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server)
        for _ in range(3):
            with connect(port) as sock:
                sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n")
                sock.sendall(b"\r\n" + b"x" * 20000)
                time.sleep(0.2)
        files, _ = sample_files()  # and the server still answers
        status, answer = call(port, "POST", "/api/predict", files["7.jpg"])
        assert status == 503 and "cannot be reached" in answer["error"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    text = (tmp_path / "ui.log").read_text()
    assert "Traceback" not in text and "Exception" not in text, text
    assert len(text.strip().splitlines()) <= 4, text  # the start line, a short line or two


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the ui command exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("the ui command did not listen")


# -- security headers --------------------------------------------------------------------------


def test_the_page_and_the_api_carry_a_content_security_policy_and_nosniff():
    import http.client

    application, _ = app()
    with serving(application) as port:
        answers = {}
        for method, path, body in (
            ("GET", "/", None),
            ("GET", "/api/model", None),
            ("POST", "/api/predict", b"not an image"),
            ("GET", "/nowhere", None),
        ):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(method, path, body=body)
            response = connection.getresponse()
            answers[path] = (response.status, dict(response.getheaders()), response.read())
            connection.close()
    for path, (_, headers, _) in answers.items():
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert "default-src 'none'" in headers["content-security-policy"], path
    page = answers["/"][1]["content-security-policy"]
    assert "'unsafe-inline'" not in page and "'unsafe-eval'" not in page
    assert "script-src 'sha256-" in page and "style-src 'sha256-" in page
    assert "img-src 'self' data:" in page and "connect-src 'self'" in page
    assert "frame-ancestors 'self'" in page
    api = answers["/api/model"][1]["content-security-policy"]
    assert "frame-ancestors 'none'" in api and "script-src" not in api
    assert answers["/api/predict"][0] == 400
