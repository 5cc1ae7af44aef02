"""The web page to try the model: draw or upload a digit, see what the model says and saw.

FastAPI (on Starlette) and uvicorn: a well-kept, typed ASGI stack whose streaming request body
lets an upload be refused at its size limit before it is read whole, and which serves the page,
the JSON API and the probes from one small process. The page (page.html) is one
self-contained file; every URL it uses is relative, so it works behind a path prefix.

API:
    GET  /            the page
    GET  /healthz     liveness and readiness: {"ok": true, "model": ...}
    GET  /api/model   {"model": "version 3 at ...", "version": "3"}
    POST /api/predict the image file as the request body (at most MAX_UPLOAD bytes) ->
                      {"digit", "confidence", "low_confidence", "probabilities" (10),
                       "seen" (the 28x28 as a PNG data URI), "model", "version", "ms"}
Errors are JSON {"error": "..."}: 400 not an image or no digit, 413 too large, 503 the model
cannot answer, 500 anything else (the details go to the server's log, never to the browser).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from components.common.parameters import DEFAULTS

MAX_UPLOAD = 10 * 1024 * 1024  # bytes: a 12 MP phone JPEG fits; the body is never read past it
PAGE = Path(__file__).with_name("page.html")
log = logging.getLogger("mnist.ui")


def create_app(backend, min_confidence: float = DEFAULTS["min_confidence"]) -> FastAPI:
    from components.common.image_decode import ImageError
    from components.common.images import to_mnist
    from components.common.report import png_data_uri
    from pipeline.ui.backends import BackendError

    app = FastAPI(title="MNIST digits", docs_url=None, redoc_url=None, openapi_url=None)
    page = PAGE.read_text()

    def error(status: int, text: str) -> JSONResponse:
        return JSONResponse({"error": text}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(500, "internal error; the server's log has the details")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True, "model": backend.label}

    @app.get("/api/model")
    async def model() -> dict:
        return {"model": backend.label, "version": str(backend.version)}

    @app.post("/api/predict")
    async def predict(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD:
            return error(413, f"the file is larger than the limit of {MAX_UPLOAD // 2**20} MB")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPLOAD:
                return error(413, f"the file is larger than the limit of {MAX_UPLOAD // 2**20} MB")
        if not body:
            return error(400, "no image: the request was empty")
        start = time.perf_counter()
        try:
            pixels = await run_in_threadpool(to_mnist, bytes(body))
        except ImageError as e:
            return error(400, str(e))
        try:
            probabilities = await run_in_threadpool(backend.predict, pixels)
        except BackendError as e:
            return error(503, str(e))
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

    return app
