"""The web page (`mnist-pipeline ui`): its JSON API over loopback, both back ends, bad input,
and the page itself in Debian's Chromium: draw a 7, upload a 7, upload a text file.

The model is tests/unit/digit_images.py's template classifier saved as a SavedModel with the
exported model's signature, so the page runs the real load and preprocessing code.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests import servers
from tests.conftest import REPO
from tests.unit.digit_images import classify, sample_files, save_model

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO / "out" / "screenshots"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store holding model versions 1 (incomplete: no saved_model.pb yet) and 2."""
    root = tmp_path_factory.mktemp("store")
    save_model(root / "models" / "mnist" / "2")
    (root / "models" / "mnist" / "3").mkdir()  # being published: not complete
    (root / "models" / "mnist" / "3" / "CLAIM.json").write_text("{}")
    return root


@contextlib.contextmanager
def serving(app, limits=None):
    """`app` on a free port, served as `mnist-pipeline ui` serves it (pipeline/ui/server.py)."""
    from pipeline.ui.server import make_server

    port = servers.free_port()
    server = make_server(app, "127.0.0.1", port, limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def app_port(store):
    from pipeline.ui.app import create_app
    from pipeline.ui.backends import Embedded

    with serving(create_app(Embedded(str(store)))) as port:
        yield port


def call(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    kind = answer.getheader("content-type", "")
    return answer.status, (json.loads(data) if "json" in kind else data.decode())


def test_the_newest_complete_version_answers(app_port):
    status, model = call(app_port, "GET", "/api/model")
    assert status == 200 and model["version"] == "2"  # 3 has no saved_model.pb yet
    status, health = call(app_port, "GET", "/healthz")
    assert status == 200 and health["ok"] is True


def test_a_tutorial_7_is_a_7_with_what_the_model_saw(app_port):
    files, labels = sample_files()
    status, answer = call(app_port, "POST", "/api/predict", files["7.jpg"])
    assert status == 200, answer
    assert answer["digit"] == 7 and len(answer["probabilities"]) == 10
    assert abs(sum(answer["probabilities"]) - 1) < 1e-3
    assert answer["seen"].startswith("data:image/png;base64,")
    assert answer["version"] == "2" and answer["model"].startswith("version 2 at ")


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        (b"just some text", 400, "not a JPEG, PNG"),
        (b"", 400, "the request was empty"),
    ],
)
def test_bad_uploads_get_a_clear_message(app_port, body, status, phrase):
    got, answer = call(app_port, "POST", "/api/predict", body)
    assert got == status and phrase in answer["error"]


def test_a_blank_canvas_says_so(app_port):
    from PIL import Image

    from tests.photos import png

    got, answer = call(app_port, "POST", "/api/predict", png(Image.new("L", (280, 280), 0)))
    assert got == 400 and "blank" in answer["error"]


def test_an_upload_over_the_limit_is_refused_before_it_is_read(app_port):
    from pipeline.ui.app import MAX_UPLOAD

    connection = http.client.HTTPConnection("127.0.0.1", app_port, timeout=30)
    connection.putrequest("POST", "/api/predict")
    connection.putheader("Content-Length", str(MAX_UPLOAD + 1))
    connection.endheaders()
    connection.send(b"x" * 1024)  # the rest never comes: the answer must not wait for it
    answer = connection.getresponse()
    assert answer.status == 413 and "larger than the limit" in json.loads(answer.read())["error"]
    connection.close()
    # without a declared length (chunked), reading stops at the limit
    chunks = (b"x" * 2**20 for _ in range(MAX_UPLOAD // 2**20 + 2))
    connection = http.client.HTTPConnection("127.0.0.1", app_port, timeout=30)
    # the server may answer at the limit and close while the rest is still being sent
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request("POST", "/api/predict", body=chunks, encode_chunked=True)
    assert connection.getresponse().status == 413


def test_no_file_is_written_for_an_upload(app_port, tmp_path, monkeypatch):
    """Uploads are read in memory. The app runs in this process, so its temporary files would
    go to tempfile's folder: a private one here, as the machine's /tmp also holds whatever
    other processes write meanwhile (a second test run's batch-predict folder failed this)."""
    files, _ = sample_files()
    call(app_port, "POST", "/api/predict", files["7.jpg"])  # the model is loaded before
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    for _ in range(3):
        call(app_port, "POST", "/api/predict", files["7.jpg"])
        call(app_port, "POST", "/api/predict", b"not an image")
    assert list(private.iterdir()) == []


def test_an_unexpected_failure_shows_no_stack_trace():
    from pipeline.ui.app import create_app

    class Broken:
        label, version = "broken", "0"

        def predict(self, pixels):
            raise ZeroDivisionError("secret internals")

    files, _ = sample_files()
    with serving(create_app(Broken())) as port:
        status, answer = call(port, "POST", "/api/predict", files["7.jpg"])
    assert status == 500 and answer == {"error": "internal error; the server's log has the details"}


class FakeServingRest(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST API for model `mnist`, version 4, answering with the template model."""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models/mnist":
            self._json(200, {"model_version_status": [{"version": "4", "state": "AVAILABLE"}]})
        else:
            self._json(404, {"error": "Servable not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        images = np.asarray(body["instances"], dtype=np.uint8)
        probabilities, classes = classify(images)
        rows = [
            {"probabilities": p.tolist(), "classes": int(c)}
            for p, c in zip(probabilities, classes, strict=True)
        ]
        self._json(200, {"predictions": rows})


def test_the_tf_serving_back_end_and_a_serving_that_is_down():
    from pipeline.ui.app import create_app
    from pipeline.ui.backends import ServingRest

    files, _ = sample_files()
    with servers.serve(FakeServingRest) as url:
        backend = ServingRest(url)
        assert backend.status() == "4"
        with serving(create_app(backend)) as port:
            status, answer = call(port, "POST", "/api/predict", files["7.jpg"])
    assert status == 200 and answer["digit"] == 7
    assert answer["model"] == f"version 4 via TF Serving at {url.rstrip('/')}"
    down = ServingRest(f"http://127.0.0.1:{servers.free_port()}", timeout=2)
    with serving(create_app(down)) as port:
        status, answer = call(port, "POST", "/api/predict", files["7.jpg"])
    assert status == 503 and "cannot be reached" in answer["error"]


@pytest.mark.parametrize(
    "status_answer",
    [b"[1, 2]", b"not json", b'{"model_version_status": 7}',
     b'{"model_version_status": [{"version": "x\u001b[2J", "state": "AVAILABLE"}]}',
     b'{"model_version_status": [{"state": "AVAILABLE"}, "junk"]}', b"{" + b" " * (5 << 20)],
)  # fmt: skip
def test_a_tf_serving_that_answers_nonsense_is_one_line_never_a_crash(status_answer):
    from pipeline.ui.backends import BackendError, ServingRest

    class Liar(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(status_answer)))
            self.end_headers()
            self.wfile.write(status_answer)

    with servers.serve(Liar) as url:
        backend = ServingRest(url)
        try:
            assert backend.status() == "?"  # no version it can name
        except BackendError as e:
            assert "\n" not in str(e) and len(str(e)) < 300


def test_the_ui_command_says_in_one_line_when_serving_is_down():
    url = f"http://127.0.0.1:{servers.free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "ui", "--serving-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: TF Serving at {url} cannot be reached")


def test_the_ui_command_says_in_one_line_when_the_port_speaks_no_http():
    """An SSH port given for TF Serving's: http.client's BadStatusLine, no OSError."""
    with servers.banner_server(b"SSH-2.0-OpenSSH_9.2\r\n") as where:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "ui", "--serving-url", f"http://{where}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "answered something that is not HTTP" in lines[0], lines


# -- the page, in a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_port):
    page = browser.new_page(viewport={"width": 900, "height": 700})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Security Policy" in m.text else None)
    page.goto(f"http://127.0.0.1:{app_port}/")
    page.locator("#model").filter(has_text="version 2").wait_for()
    yield page
    assert errors == []
    page.close()


def answered(page, before: str = "") -> str:
    """The digit the page shows once a new answer or an error has arrived."""
    page.wait_for_function(
        "(before) => { const m = document.getElementById('message').textContent;"
        " return m && m !== '…' && m !== before; }",
        arg=before,
    )
    return page.locator("#digit").inner_text()


def test_drawing_a_7_with_the_mouse(page):
    page.click("#clear")
    box = page.locator("#pad").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    page.mouse.move(*at(0.25, 0.22))
    page.mouse.down()
    for x in np.linspace(0.25, 0.75, 8):
        page.mouse.move(*at(x, 0.22))
    for t in np.linspace(0, 1, 12):
        page.mouse.move(*at(0.75 - 0.3 * t, 0.22 + 0.6 * t))
    page.mouse.up()  # the page predicts when a stroke ends
    assert answered(page) == "7"
    total, decoded = page.evaluate(
        "() => { const i = document.getElementById('seen');"
        " return [1, i.complete && i.naturalWidth === 28 ? 1 : 0]; }"
    )
    assert decoded == total
    assert page.locator("#bar7").get_attribute("class") == "bar best"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ui-drawn-7.png"))


def test_uploading_a_photo_and_a_text_file(page, tmp_path):
    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    (tmp_path / "notes.txt").write_text("not an image")
    before = page.locator("#message").inner_text()
    page.set_input_files("#file", str(tmp_path / "notes.txt"))
    assert answered(page, before) == "?"
    message = page.locator("#message")
    assert "not a JPEG, PNG" in message.inner_text() and "error" in message.get_attribute("class")
    before = message.inner_text()
    page.set_input_files("#file", str(tmp_path / "7.jpg"))  # and the page keeps working
    assert answered(page, before) == "7"
    page.click("#clear")
    page.click("#predict")
    assert "blank" in page.locator("#message").inner_text()


def test_the_page_works_behind_a_path_prefix(browser, store, tmp_path):
    """As Kubeflow's Istio gateway serves apps: under /mnist-ui/ (here a Starlette Mount)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from pipeline.ui.app import create_app
    from pipeline.ui.backends import Embedded

    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    gateway = Starlette(routes=[Mount("/mnist-ui", app=create_app(Embedded(str(store))))])
    with serving(gateway) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/mnist-ui/")
        page.locator("#model").filter(has_text="version 2").wait_for()
        page.set_input_files("#file", str(tmp_path / "7.jpg"))
        assert answered(page) == "7"
        page.close()


def test_a_serving_url_with_a_password_is_refused_without_showing_it():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "ui",
            "--serving-url",
            "http://u:s3cret@127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "s3cret" not in result.stdout + result.stderr
    assert result.stderr.strip().startswith("Error: --serving-url carries credentials")


# -- the page as a person sees it, at a phone's width and a laptop's -------------------------

LONG_ERROR = (
    "corrupt or truncated image: the decoder stopped at byte 1,048,576 of a file that declares "
    "4032x3024 pixels; an upload cut short by a proxy looks like this: send the file again, or "
    "a copy saved as PNG or JPEG — " + "x" * 80  # one unbroken word, as a URL or a path is
)
NOT_SHOWN_RIGHT = """() => {
  const visible = (e) => { const s = getComputedStyle(e);
    return s.display !== 'none' && s.visibility !== 'hidden' && e.getClientRects().length; };
  return [...document.images].filter(visible)
    .filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.id || i.alt);
}"""
BOXES = """() => Object.fromEntries(['pad', 'answer', 'digit', 'seen', 'bars'].map((id) => {
  const r = document.getElementById(id).getBoundingClientRect();  // a glyph's width may change
  return [id, [Math.round(r.x), Math.round(r.y), id === 'digit' ? 0 : Math.round(r.width)]];
}))"""


@pytest.mark.parametrize("width", [390, 1280])
def test_the_page_at_a_phones_width_and_a_laptops(browser, app_port, tmp_path, width):
    """First load: no broken image, no request that fails (the favicon), nothing wider than the
    screen. An answer, a long error (which moves nothing), Clear (which takes the answer away),
    an uploaded file (shown beside its answer). Screenshots in out/screenshots/ to look at."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"http://127.0.0.1:{app_port}/")
    page.locator("#model").filter(has_text="version 2").wait_for()
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"page-{width}-first-load.png"), full_page=True)
    assert page.evaluate(NOT_SHOWN_RIGHT) == [] and failed == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width

    files, _ = sample_files()
    (tmp_path / "7.jpg").write_bytes(files["7.jpg"])
    page.set_input_files("#file", str(tmp_path / "7.jpg"))
    assert answered(page) == "7"
    assert page.locator("#uploaded").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert page.locator("#uploaded-name").inner_text() == "7.jpg"
    assert page.evaluate(NOT_SHOWN_RIGHT) == []
    page.screenshot(path=str(SCREENSHOTS / f"page-{width}-answer.png"), full_page=True)
    before = page.evaluate(BOXES)

    refusal = {"status": 400, "content_type": "application/json"}
    refusal["body"] = json.dumps({"error": LONG_ERROR})
    page.route("**/api/predict", lambda route: route.fulfill(**refusal))
    shown = page.locator("#message").inner_text()  # read before: the refusal comes at once
    page.set_input_files("#file", str(tmp_path / "7.jpg"))
    assert answered(page, shown) == "?"
    assert page.locator("#message").inner_text() == LONG_ERROR
    assert page.evaluate(BOXES) == before, "a long error moved the page"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert page.locator("#seen").get_attribute("src") is None  # the last answer is gone
    assert page.locator("#p7").inner_text() == "–"
    page.screenshot(path=str(SCREENSHOTS / f"page-{width}-long-error.png"), full_page=True)
    page.unroute("**/api/predict")
    failed.clear()  # the refusal made above

    shown = page.locator("#message").inner_text()
    page.set_input_files("#file", str(tmp_path / "7.jpg"))
    assert answered(page, shown) == "7"
    page.click("#clear")
    assert page.locator("#digit").inner_text() == "?"
    assert page.locator("#message").inner_text() == "" and page.locator("#p7").inner_text() == "–"
    assert page.locator("#seen").get_attribute("src") is None
    assert page.locator("#uploaded").get_attribute("src") is None
    assert page.evaluate(NOT_SHOWN_RIGHT) == [] and failed == []
    page.close()


def test_the_favicon_is_served(app_port):
    status, body = call(app_port, "GET", "/favicon.ico")
    assert status == 200 and body.startswith("<svg") and ">7</text>" in body
