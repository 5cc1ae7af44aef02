"""The web page to try the model: draw or upload a digit, see what the model says and saw.

FastAPI (on Starlette), served by uvicorn with the guards of pipeline/ui/server.py: a
well-kept, typed ASGI stack whose streaming request body lets an upload be refused at its size
limit before it is read whole, and which serves the page, the JSON API and the probes from one
small process. The page (page.html) is one self-contained file; every URL it uses is relative,
so it works behind a path prefix.

API:
    GET  /            the page
    GET  /healthz     liveness and readiness: {"ok": true, "model": ...}
    GET  /api/model   {"model": "version 3 at ...", "version": "3"}
    POST /api/predict the image file as the request body (at most MAX_UPLOAD bytes) ->
                      {"digit", "confidence", "low_confidence", "probabilities" (10),
                       "seen" (the 28x28 as a PNG data URI), "model", "version", "ms"}
Errors are JSON {"error": "..."}: 400 not an image or no digit, 408 the upload was too slow,
413 too large, 503 busy (with Retry-After) or the model cannot answer, 500 anything else (the
details go to the server's log, never to the browser).

Hostile clients (pipeline/ui/limits.py has the numbers): a body must arrive within
Limits.body_seconds; at most Limits.uploads requests hold a body and at most Limits.decodes
images are decoded at once (one per core), a request waiting longer than Limits.queue_seconds
for either gets 503; every response carries a Content-Security-Policy (the page's allows only
its own inline script and style, by hash, data: images and requests to itself), nosniff and
no referrer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from components.common.errors import StepError
from components.common.parameters import DEFAULTS
from pipeline.ui import memory
from pipeline.ui.limits import Limits
from pipeline.ui.security import PageSecurity, SecurityHeaders

MAX_UPLOAD = 10 * 1024 * 1024  # bytes: a 12 MP phone JPEG fits; the body is never read past it
PAGE = Path(__file__).with_name("page.html")
# the tab's icon: a white 7 on the page's green (browsers ask for /favicon.ico)
FAVICON = (
    b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    b"<rect width='16' height='16' rx='3' fill='#1f883d'/>"
    b"<text x='8' y='12.5' font-size='12' font-family='sans-serif' font-weight='700' "
    b"text-anchor='middle' fill='#fff'>7</text></svg>"
)
log = logging.getLogger("mnist.ui")


class Refusal(StepError):
    """A request answered with an error before its image is looked at: status, text, headers."""

    def __init__(self, status: int, text: str, headers: dict | None = None):
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or {}


def create_app(
    backend,
    min_confidence: float = DEFAULTS["min_confidence"],
    limits: Limits | None = None,
) -> FastAPI:
    from components.reading.image_decode import ImageError
    from components.reading.images import to_mnist
    from pipeline.ui.backends import BackendError

    limits = limits or Limits()
    decoders = ThreadPoolExecutor(limits.decodes, thread_name_prefix="decode")  # the hard cap

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="MNIST digits", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    page = PageSecurity(PAGE.read_text())
    app.add_middleware(SecurityHeaders)
    uploads = asyncio.Semaphore(limits.uploads)
    decodes = asyncio.Semaphore(limits.decodes)  # who may wait for a decoder, and how long

    def decode(body: bytes):
        try:
            return to_mnist(body)
        finally:
            memory.trim()  # the decode's buffers, freed in this thread's heap, go back now

    _answer_errors(app)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page.html, headers={"Cache-Control": "no-cache", **page.headers})

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True, "model": backend.label}

    @app.get("/api/model")
    async def model() -> dict:
        return {"model": backend.label, "version": str(backend.version)}

    @app.post("/api/predict")
    async def predict(request: Request):
        async with _slot(uploads, "too many uploads at once", limits):
            try:
                body = await _read_body(request, limits)
            except ClientDisconnect:
                log.info("a client left during its upload")
                return _error(400, "the upload was interrupted")
            start = time.perf_counter()
            try:
                async with _slot(decodes, "every core is decoding an image", limits):
                    loop = asyncio.get_running_loop()
                    pixels = await loop.run_in_executor(decoders, decode, body)
            except ImageError as e:
                return _error(400, str(e))
            del body
            try:
                probabilities = await run_in_threadpool(backend.predict, pixels)
            except BackendError as e:
                return _error(503, str(e))
        return _answer(probabilities, pixels, backend, min_confidence, start)

    return app


def _error(status: int, text: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=headers)


def _answer_errors(app: FastAPI) -> None:
    """A Refusal is its own status and line; anything else a 500 whose details stay in the log."""

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return _error(exc.status, exc.text, exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error; the server's log has the details")


@contextlib.asynccontextmanager
async def _slot(semaphore: asyncio.Semaphore, what: str, limits: Limits):
    """Hold one of `semaphore`'s places, or refuse with 503 after Limits.queue_seconds."""
    try:  # wait_for, not asyncio.timeout: Python 3.10 too
        await asyncio.wait_for(semaphore.acquire(), limits.queue_seconds)
    except asyncio.TimeoutError:
        busy = f"the server is busy ({what}); try again in a few seconds"
        raise Refusal(503, busy, {"Retry-After": "2"}) from None
    try:
        yield
    finally:
        semaphore.release()


async def _read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, within MAX_UPLOAD bytes and Limits.body_seconds."""
    declared = request.headers.get("content-length")
    too_large = f"the file is larger than the limit of {MAX_UPLOAD // 2**20} MB"
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise Refusal(413, too_large, {"Connection": "close"})
    chunks = []

    async def collect() -> int:
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise Refusal(413, too_large, {"Connection": "close"})
        return size

    try:
        size = await asyncio.wait_for(collect(), limits.body_seconds)
    except asyncio.TimeoutError:
        slow = f"the upload took longer than {limits.body_seconds:g} s"
        raise Refusal(408, slow, {"Connection": "close"}) from None
    if not size:
        raise Refusal(400, "no image: the request was empty")
    return b"".join(chunks)  # bytes: io.BytesIO shares it instead of copying


def _answer(probabilities, pixels, backend, min_confidence: float, start: float) -> dict:
    """The page's answer: the digit, its confidence, every probability, what the model saw."""
    from components.common.report import png_data_uri

    digit = int(probabilities.argmax())
    confidence = float(probabilities[digit])
    return {
        "digit": digit,
        "confidence": confidence,
        "low_confidence": confidence < min_confidence,
        "probabilities": [round(float(p), 6) for p in probabilities],
        "seen": png_data_uri(pixels),
        "model": backend.label,
        "version": str(backend.version),
        "ms": 1000 * (time.perf_counter() - start),
    }
