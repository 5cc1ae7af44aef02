"""The web page under hostile load: memory and the time slow clients are given.

Starts `mnist-pipeline ui` as a subprocess on 127.0.0.1 (a store from `make demo` when there is
one, else the template model of tests/unit/digit_images.py), measures its idle RSS, then sends
the worst-case uploads of tests/unit/test_image_decode_fuzz.py from 8 concurrent clients while
a ninth sends drawn canvases (the normal request) and slow clients hold connections: one
trickles its headers, one its body, one stays idle, one pipelines 400 `GET /` and never reads
them, and a hog keeps 16 keep-alive connections polling /healthz. Each client has its own
loopback address (127.0.x.y), as the server caps connections per client address. Prints the
cases tried, the answers by status, the peak RSS and its growth over idle, the RSS after, the
p95 latency of the normal requests under the load, the seconds until each slow client was
cut off, and how many of the hog's connections were refused.

Goals (the pod's limit is 1 GiB): growth <= 300 MB over idle, back within 50 MB of idle after;
slow clients cut off within 30 s. Exits 1 when a memory goal is missed (the figures are
printed either way); timings are printed, not asserted.

    python benchmarks/bench_ui_load.py [--model mnist-store] [--rounds 2]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_ui import canvas_png  # noqa: E402
from benchmarks.common import REPO, machine  # noqa: E402
from tests import servers  # noqa: E402
from tests.unit.test_image_decode_fuzz import worst_cases  # noqa: E402

CLIENTS = 8
GROWTH_GOAL, AFTER_GOAL, CUT_GOAL = 300, 50, 30  # MB, MB, s


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1]) / 1024


def post(port: int, body: bytes, source: str = "127.0.0.1") -> tuple[int, float]:
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, 120, (source, 0))
    try:
        connection.request("POST", "/api/predict", body=body)
        answer = connection.getresponse()
        answer.read()
        status = answer.status
    except OSError:
        status = 0  # the server closed the connection (an upload over the size limit)
    finally:
        connection.close()
    return status, 1000 * (time.perf_counter() - start)


def server_side_open(port: int, client: socket.socket) -> bool:
    """Whether the server still holds its end of `client`'s connection (/proc/net/tcp)."""
    ends = {f":{port:04X}", f":{client.getsockname()[1]:04X}"}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if local.endswith(f":{port:04X}") and {local[-5:], remote[-5:]} == ends:
            return state == "01"
    return False


def slow_reader(port: int) -> float:
    """Seconds until the server let go of a connection that pipelines 400 `GET /` and never
    reads the answers (a 2 KB receive buffer)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.bind(("127.0.5.1", 0))
        sock.connect(("127.0.0.1", port))
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
        while server_side_open(port, sock) and time.monotonic() - start < 120:
            time.sleep(0.1)
        return time.monotonic() - start


def hog(port: int, done: threading.Event, connections: int = 16) -> tuple[int, int]:
    """16 keep-alive connections from one address, each asking /healthz every second until
    `done`, reconnecting when closed: (connections refused with 503, requests answered 200)."""
    refused = answered = 0

    def one():
        nonlocal refused, answered
        while not done.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, 10, ("127.0.4.1", 0))
            try:
                while not done.is_set():
                    connection.request("GET", "/healthz")
                    answer = connection.getresponse()
                    answer.read()
                    if answer.status == 503:
                        refused += 1
                        break
                    answered += 1
                    if answer.getheader("Connection", "").lower() == "close":
                        break
                    time.sleep(1)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.2)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return refused, answered


def slow_client(port: int, kind: str) -> float:
    """Seconds until the server cut this client off (trickling a byte every 2 s, or idle)."""
    where = {"headers": "127.0.3.1", "body": "127.0.3.2", "idle": "127.0.3.3"}[kind]
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(where, 0))
    start = time.monotonic()
    if kind == "body":
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    trickle = {"headers": b"POST /api/predict HTTP/1.1\r\nX: " + b"a" * 100, "body": b"x" * 100}
    data, sent = trickle.get(kind, b""), 0
    sock.settimeout(2.0)
    try:
        while time.monotonic() - start < 120:
            if sent < len(data):
                sock.sendall(data[sent : sent + 1])
                sent += 1
            try:
                if not sock.recv(65536):
                    break
            except TimeoutError:
                continue
    except OSError:
        pass
    finally:
        sock.close()
    return time.monotonic() - start


def start_ui(model: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "ui", "--model", model, "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench_ui_load: the ui command exited: {process.stderr.read().strip()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    sys.exit("bench_ui_load: the ui command did not listen within 180 s")


def template_store(folder: Path) -> str:
    from tests.unit.digit_images import save_model

    save_model(folder / "models" / "mnist" / "1")
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-store", help="a store or a model version")
    parser.add_argument("--rounds", type=int, default=5, help="times each client sends each case")
    args = parser.parse_args()
    cases = worst_cases()
    with tempfile.TemporaryDirectory(prefix="bench-ui-load-") as work:
        model = args.model if Path(args.model).exists() else template_store(Path(work))
        port = servers.free_port()
        server = start_ui(model, port)
        try:
            return measure(server, port, cases, args.rounds, model)
        finally:
            server.terminate()
            server.wait(30)


def measure(server: subprocess.Popen, port: int, cases: dict, rounds: int, model: str) -> int:
    canvas = canvas_png()
    for _ in range(5):
        post(port, canvas)  # warm up: the model's first calls
    time.sleep(1)
    idle = rss_mb(server.pid)
    print(f"bench_ui_load on {machine()}, model {model}; idle RSS {idle:.0f} MB", flush=True)
    peak, done = [idle], threading.Event()

    def watch():
        while not done.is_set():
            peak.append(rss_mb(server.pid))
            time.sleep(0.02)

    statuses = collections.Counter()
    normal: list[float] = []
    loaded = threading.Event()  # while the hostile clients send

    def hostile(client: int):
        names = list(cases) * rounds
        for name in names[client:] + names[:client]:  # each client in its own order
            statuses[post(port, cases[name], f"127.0.1.{client + 1}")[0]] += 1

    def polite():
        while not done.is_set():
            under_load = loaded.is_set()
            status, ms = post(port, canvas, "127.0.2.1")
            statuses[status] += 1
            if status == 200 and under_load and loaded.is_set():
                normal.append(ms)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    with ThreadPoolExecutor(CLIENTS + 6) as pool:
        slow = {kind: pool.submit(slow_client, port, kind) for kind in ("headers", "body", "idle")}
        slow["never reads"] = pool.submit(slow_reader, port)
        hogged = pool.submit(hog, port, done)
        pool.submit(polite)
        start = time.perf_counter()
        loaded.set()
        list(pool.map(hostile, range(CLIENTS)))
        loaded.clear()
        load_seconds = time.perf_counter() - start
        cut = {kind: future.result() for kind, future in slow.items()}
        done.set()
        refused, answered = hogged.result()
    time.sleep(3)
    after = rss_mb(server.pid)
    top = max(peak)
    tried = CLIENTS * rounds * len(cases)
    print(
        f"cases tried: {len(cases)} kinds x {CLIENTS} clients x {rounds} = {tried} uploads "
        f"in {load_seconds:.1f} s, while {len(normal)} normal requests were answered 200"
    )
    print(
        "answers by status: "
        + ", ".join(f"{s or 'closed mid-upload (413)'}: {n}" for s, n in sorted(statuses.items()))
    )
    print(f"peak RSS {top:.0f} MB: growth over idle {top - idle:.0f} MB (goal <= {GROWTH_GOAL})")
    print(f"RSS after {after:.0f} MB: {after - idle:+.0f} MB from idle (goal within {AFTER_GOAL})")
    if normal:
        p95 = float(np.percentile(normal, 95))
        print(f"normal requests under the load: p95 {p95:.0f} ms, p50 {np.median(normal):.0f} ms")
    print(
        "slow clients cut off after: "
        + ", ".join(f"{k} {s:.1f} s" for k, s in cut.items())
        + f" (goal <= {CUT_GOAL} s)"
    )
    print(f"hog (16 connections from one address): {refused} refused with 503, {answered} answered")
    missed = top - idle > GROWTH_GOAL or after - idle > AFTER_GOAL
    print("memory goals: " + ("NOT met" if missed else "met"), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
