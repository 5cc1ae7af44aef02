"""Goal 8: the web page's latency. One prediction over loopback, p50 and p95, for a drawn canvas
(a 280x280 PNG as the page sends it) and for a 640x480 photo, with the embedded back end; and
requests per second with 8 concurrent clients. The reference, in the same run, is a bare call of
the loaded model on one 28x28 image. Target: p95 under 50 ms for the canvas.

    python benchmarks/bench_ui.py [--model mnist-store] [--requests 200]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, machine  # noqa: E402
from tests import photos, servers  # noqa: E402


def canvas_png() -> bytes:
    """A 7 as the page's canvas draws it: white round strokes, 20 px wide, on black."""
    image = Image.new("L", (280, 280), 0)
    draw = ImageDraw.Draw(image)
    draw.line([(70, 62), (210, 62), (126, 230)], fill=255, width=20, joint="curve")
    return photos.png(image)


def timed(port: int, body: bytes, n: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        connection.request("POST", "/api/predict", body=body)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
        times.append(1000 * (time.perf_counter() - start))
    connection.close()
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-store", help="a store or a model version")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from pipeline.ui.app import create_app
    from pipeline.ui.backends import BackendError, Embedded
    from pipeline.ui.server import make_server

    try:
        backend = Embedded(args.model)
    except BackendError as e:
        print(f"bench_ui: skipped: {e}")
        return
    print(f"bench_ui on {machine()}, {backend.label}")
    images, _ = photos.load_mnist(MNIST_DIR, "test")
    photo = photos.shadow(images[0], np.random.default_rng(5), (640, 480))
    one = images[:1]
    for _ in range(20):
        backend.predict(one[0])
    bare = []
    for _ in range(args.requests):
        start = time.perf_counter()
        backend.predict(one[0])
        bare.append(1000 * (time.perf_counter() - start))

    port = servers.free_port()
    server = make_server(create_app(backend), "127.0.0.1", port)  # as `mnist-pipeline ui`
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        ref = f"bare model call on one 28x28: p50 {statistics.median(bare):.2f} ms"
        for label, body in (("drawn canvas (280x280 PNG)", canvas_png()), ("640x480 photo", photo)):
            timed(port, body, 10)  # warm up
            t = timed(port, body, args.requests)
            p50, p95 = percentile(t, 50), percentile(t, 95)
            target = " target p95 < 50 ms: " + ("met" if p95 < 50 else "NOT met")
            print(
                f"goal 8: {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms vs {ref} -> ratio "
                f"{p50 / statistics.median(bare):.1f} at p50;"
                + (target if "canvas" in label else "")
            )
        per_client = args.requests // 8
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: timed(port, canvas_png(), per_client), range(8)))
        rate = 8 * per_client / (time.perf_counter() - start)
        print(
            f"goal 8: 8 concurrent clients, drawn canvas: {rate:.0f} requests/s vs the bare "
            f"model alone: {1000 / statistics.median(bare):.0f} calls/s"
        )
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
