"""Scale-out: sharded batch-predict (components/batch_predict/shards.py) with 1, 2 and 4 shards
as parallel processes, each a pod's work, against a real S3 store (SeaweedFS, `weed mini`, on
127.0.0.1), and the plan's memory as the listing grows.

1. Throughput. N small images (28x28 MNIST digits, JPEG and PNG) are uploaded once. For each
   shard count S, the plan lists them once and writes S manifests; S processes then each load
   the model and run their shard (its own parallel GETs, decoder processes and batches), all at
   once, as ParallelFor's pods do; then the merge joins the parts into predictions.csv. The
   figure is images per second over the shards' wall time (plan and merge printed apart), the
   reference one shard measured in the same run; target: 2 shards >= 1.7x one where the work is
   store-bound. A bare loop of parallel GETs from the same server is printed beside it, to show
   whether the work was store-bound.
   On this 2-core machine the store, the decoders and the model share the same two cores, so
   the loop above is CPU-bound. The store-bound case, where a pod waits on the store's latency
   as it does across a network, is measured again with --latency-ms (default 50) added to
   every request by a proxy in front of the same server, on --latency-images images.
2. Memory. The plan of a listing of 10,000, 100,000 and 1,000,000 keys, each in a fresh
   process, its peak RSS (ru_maxrss). The listing is a stream of synthetic keys (a page at a
   time, as S3Store.walk gives them; no server holds a million objects here), so the figure is
   the plan's own memory: flat means the listing is never held whole.

    python benchmarks/bench_scale.py [--images 100000] [--shards 1,2,4] [--listing 10000,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_predict import BENCH_KEYS, build_model, digits, encoded  # noqa: E402
from benchmarks.common import machine, report  # noqa: E402
from components.batch_predict import shards  # noqa: E402
from components.batch_predict.merge import merge  # noqa: E402
from components.store import open_store  # noqa: E402
from tests import servers  # noqa: E402

WORKER = "--shard-worker"
LISTING = "--listing-worker"


def shard_worker(model: str, plan_uri: str, index: int, endpoint: str) -> None:
    """One pod's work: load the model, run the shard; prints its seconds after the load."""
    from benchmarks.bench_predict import quiet_logs
    from components.batch_predict.model import load_classifier

    classify = load_classifier(Path(model))
    quiet_logs()
    start = time.perf_counter()
    done = shards.run_shard(plan_uri, index, classify, endpoint)
    print(json.dumps({"rows": done["rows"], "seconds": time.perf_counter() - start}))


def run_shards(model: Path, plan_uri: str, count: int, endpoint: str) -> tuple[float, float]:
    """All shards at once, each its own process; (wall seconds, slowest shard's own seconds)."""
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, WORKER, str(model), plan_uri, str(i), endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=3600)
        if worker.returncode:
            raise SystemExit(f"bench_scale: a shard process failed ({worker.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return time.perf_counter() - start, max(r["seconds"] for r in results)


@contextlib.contextmanager
def delayed(url: str, seconds: float) -> Iterator[str]:
    """A TCP proxy to `url` (http://127.0.0.1:PORT) that holds each chunk a client sends for
    `seconds` before passing it on: every request waits a network's round trip. Yields its
    URL."""
    import socket
    import threading

    port = int(url.rsplit(":", 1)[1])
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(src, dst, delay):
        try:
            while chunk := src.recv(1 << 16):
                if delay:
                    time.sleep(delay)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def accept():
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", port))
            for src, dst, delay in ((client, server, seconds), (server, client, 0)):
                threading.Thread(target=pipe, args=(src, dst, delay), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def bare_gets(store, keys: list[str], workers: int) -> float:
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        sum(len(b) for b in pool.map(store.get_bytes, keys))
    return len(keys) / (time.perf_counter() - start)


def bench_throughput(args, work: Path) -> None:
    images, _ = digits(args.images)
    data = encoded(images)
    _, classify = build_model(work, args.train_examples)
    model = work / "saved_model"
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = BENCH_KEYS
    with servers.seaweed_s3(*BENCH_KEYS) as endpoint:
        store = open_store("s3://bench/images", endpoint)
        store.ensure_bucket()
        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda item: store.put_bytes(*item), data))
        print(f"uploaded {len(data)} images in {time.perf_counter() - start:.0f} s")
        keys = [o.key for o in store.list("")]
        rates, steady = scale(args.shards, model, endpoint, "")
        bare = bare_gets(store, keys, 8)
        bare_wide = bare_gets(store, keys, 8 * max(args.shards))
        print(
            f"bare GET loop, same server and client: {bare:.0f}/s with 8 threads, "
            f"{bare_wide:.0f}/s with {8 * max(args.shards)}"
        )
        scaled(args.shards, rates, steady, "")
        if args.latency_ms:
            label = f"with {args.latency_ms} ms per request"
            with delayed(endpoint, args.latency_ms / 1000) as slow:
                subset = "s3://bench/subset"
                copy = open_store(subset, slow)
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda item: copy.put_bytes(*item), data[: args.latency_images]))
                rates, steady = scale(args.shards, model, slow, subset)
                bare = bare_gets(copy, keys[: args.latency_images], 8)
            print(f"{label}: bare GET loop {bare:.0f}/s with 8 threads")
            scaled(args.shards, rates, steady, label)


def scale(counts: list[int], model: Path, endpoint: str, images: str) -> tuple[dict, dict]:
    """Plan, shards (all at once) and merge for each shard count: the rates per count."""
    images = images or "s3://bench/images"
    rates, steady = {}, {}
    for count in counts:
        results = f"{images}-results-{count}"
        plan_uri = f"{results}/{shards.SHARDS_FOLDER}"
        start = time.perf_counter()
        plan = shards.plan(images, plan_uri, count, endpoint)
        planned = time.perf_counter() - start
        wall, slowest = run_shards(model, plan_uri, plan["shards"], endpoint)
        start = time.perf_counter()
        merged = merge(plan_uri, results, endpoint)
        merging = time.perf_counter() - start
        rates[count] = merged["total"] / wall
        steady[count] = merged["total"] / slowest
        print(
            f"{count} shard(s): {rates[count]:.0f} images/s over {wall:.1f} s of shards, "
            f"start-up included; {steady[count]:.0f} images/s after the model loads (slowest "
            f"shard {slowest:.1f} s); plan {planned:.1f} s "
            f"({plan['total'] / planned:.0f} keys/s listed), merge {merging:.1f} s",
            flush=True,
        )
    return rates, steady


def scaled(counts: list[int], rates: dict, steady: dict, label: str) -> None:
    one = min(counts)
    for count in counts:
        if count != one:
            target = ">= 1.7 where store-bound" if count == 2 else "(no target)"
            goal = f"scale{', ' + label if label else ''}, {count} shards vs {one}"
            report(goal, rates[count], rates[one], "images/s", target)
            report(f"{goal}, after the model loads", steady[count], steady[one], "images/s", target)


class SyntheticListing:
    """A store whose walk yields `total` image keys a page (1,000) at a time, as S3 lists."""

    def __init__(self, total: int):
        self.total = total

    def walk(self, prefix: str = ""):
        from components.store import ObjectInfo

        for page in range(0, self.total, 1000):
            yield from (ObjectInfo(f"day/{i:09d}.jpg", 700) for i in range(page, page + 1000))


def listing_worker(total: int, out: str) -> None:
    from unittest import mock

    fake = SyntheticListing(total)
    real = shards.open_store
    with mock.patch.object(
        shards, "open_store", lambda uri, e="": fake if uri == "s3://x" else real(uri, e)
    ):
        start = time.perf_counter()
        plan = shards.plan("s3://x", out, 64)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"keys": plan["total"], "seconds": time.perf_counter() - start, "rss": peak_mb})
    )


def bench_listing(args) -> None:
    rows = []
    for total in args.listing:
        with tempfile.TemporaryDirectory(prefix="bench-plan-") as out:
            result = subprocess.run(
                [sys.executable, __file__, LISTING, str(total), out],
                capture_output=True, text=True, timeout=3600, check=True,
            )  # fmt: skip
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(
            f"plan of {row['keys']:,} keys: peak RSS {row['rss']:.0f} MB, {row['seconds']:.1f} s "
            f"({row['keys'] / row['seconds']:,.0f} keys/s)",
            flush=True,
        )
    report(
        f"plan memory, {rows[-1]['keys']:,} keys vs {rows[0]['keys']:,}",
        rows[-1]["rss"],
        rows[0]["rss"],
        "MB peak RSS",
        "flat (about 1)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--shards", default="1,2,4", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument(
        "--listing", default="10000,100000,1000000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--train-examples", type=int, default=20_000, help="0: untrained model")
    parser.add_argument("--latency-ms", type=float, default=50, help="0: no store-bound run")
    parser.add_argument("--latency-images", type=int, default=20_000)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-listing", action="store_true")
    args = parser.parse_args(argv)
    print(f"bench_scale: {args.images} images, shards {args.shards}, {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews rates)")
    if not args.skip_listing:
        bench_listing(args)
    if not args.skip_throughput:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            bench_throughput(args, Path(tmp))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        shard_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == LISTING:
        listing_worker(int(sys.argv[2]), sys.argv[3])
    else:
        main()
