"""Goals 2 and 3: batch-prediction throughput, each next to its reference from the same run.

Goal 3 (compute): N 28x28 images (JPEG and PNG, from the MNIST test set when it is here) in a
local folder, classified end to end by `batch_predict` (list, read, decode, preprocess, infer,
write the CSV, one log line per image), against the naive way: one `model.predict` call per
image, the Keras model loaded once. Targets: >= 5,000 images/s and >= 100x the naive rate.

Goal 2 (store): the same images as single objects on a real S3 store (SeaweedFS, `weed mini`,
on 127.0.0.1), classified by `batch_predict`, against a bare loop that only GETs the same objects
from the same server with the same parallelism and the same client, in the same run. Target:
>= 80% of the bare loop's rate.

The model is the pipeline's own CNN (components.train.model.build_model), briefly trained and
exported with the pipeline's serving signature. Medians over --repeat runs.

    python benchmarks/bench_predict.py [--images 10000] [--repeat 3] [--skip-s3]
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, machine, report  # noqa: E402
from components.batch_predict.model import load_classifier  # noqa: E402
from components.batch_predict.predictor import batch_predict, open_images  # noqa: E402
from components.batch_predict.stream import available_cpus, preprocess_stream  # noqa: E402
from components.common import spec  # noqa: E402
from components.dataset import mnist
from components.store import open_store  # noqa: E402
from tests import servers  # noqa: E402

BENCH_KEYS = ("AKIABENCHKEY0001", "bench-secret-key")


def digits(n: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """n MNIST digits (repeated if n > the split), or synthetic bars when MNIST is absent."""
    try:
        images, labels = mnist.load_split(MNIST_DIR, split)
    except (mnist.IdxError, OSError):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, 10_000).astype(np.uint8)
        images = np.zeros((len(labels), 28, 28), np.uint8)
        for i, label in enumerate(labels):
            images[i, 4 + label : 8 + label, 6:22] = 255
            images[i, 6:22, 4 + 2 * label : 6 + 2 * label] = 200
    index = np.arange(n) % len(images)
    return images[index], labels[index]


def encoded(images: np.ndarray) -> list[tuple[str, bytes]]:
    """(name, bytes): even ones JPEG (quality 90), odd ones PNG."""
    out = []
    for i, pixels in enumerate(images):
        buf, fmt = io.BytesIO(), "JPEG" if i % 2 == 0 else "PNG"
        Image.fromarray(pixels).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append((f"{i:06d}.{'jpg' if fmt == 'JPEG' else 'png'}", buf.getvalue()))
    return out


def build_model(work: Path, train_examples: int):
    """The pipeline's CNN, trained for one epoch, exported with the serving signature."""
    import keras

    from components.export.exporter import save_serving_model
    from components.train.model import build_model as pipeline_cnn

    model = pipeline_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if train_examples:
        x, y = digits(train_examples, "train")
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    model.save(work / "model.keras")
    save_serving_model(model, work / "saved_model")
    return keras.models.load_model(work / "model.keras"), load_classifier(work / "saved_model")


def quiet_logs() -> None:
    """Keep the per-image log lines (their cost is part of the figure) but off the terminal."""
    for handler in logging.getLogger("mnist").handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def naive_rate(model, files: list[Path]) -> float:
    """The tutorial's way: open, grayscale, resize, one model.predict per image."""

    def one(path: Path) -> int:
        pixels = np.asarray(Image.open(path).convert("L").resize((28, 28)))
        return int(model.predict(pixels[None], verbose=0).argmax())

    for path in files[:3]:
        one(path)  # warm-up
    seconds, _ = timed(lambda: [one(p) for p in files])
    return len(files) / seconds


def accuracy(csv_text: str, labels: np.ndarray) -> float:
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    right = sum(r["prediction"] == str(labels[int(r["image"].split(".")[0])]) for r in rows)
    return right / len(labels)


def bench_local(args, data, labels, model, classify, work: Path) -> None:
    folder = work / "images"
    folder.mkdir()
    for name, blob in data:
        (folder / name).write_bytes(blob)
    rates = []
    for _ in range(args.repeat):
        seconds, summary = timed(
            batch_predict,
            str(folder),
            str(work / "results"),
            classify,
            batch_size=args.batch_size,
            workers=args.workers,
        )
        rates.append(summary["total"] / seconds)
    ours = statistics.median(rates)
    naive = naive_rate(model, sorted(folder.iterdir())[: args.naive])
    text = (work / "results" / spec.PREDICTIONS_CSV).read_text()
    print(
        f"local: runs {[round(r) for r in rates]} images/s; accuracy {accuracy(text, labels):.4f}"
    )
    report("goal 3 compute, local folder", ours, 5000, "images/s", ">= 5,000 images/s")
    report("goal 3 compute vs naive predict", ours, naive, "images/s", ">= 100x")
    where_time_goes(args, folder, classify)


def where_time_goes(args, folder: Path, classify) -> None:
    """The rate of each stage alone: the slowest bounds the end-to-end figure."""
    seconds, (store, keys, _) = timed(open_images, str(folder))
    print(f"  listing only: {len(keys) / seconds:.0f} keys/s")
    processes = min(available_cpus(), 8)
    stream = preprocess_stream(store, keys, args.workers, 2 * args.batch_size, processes)
    seconds, _ = timed(lambda: sum(1 for _ in stream))
    print(f"  read + decode + preprocess only ({processes} processes): {len(keys) / seconds:.0f}/s")
    arrays = np.zeros((len(keys), 28, 28), np.uint8)
    bs = args.batch_size
    seconds, _ = timed(lambda: [classify(arrays[i : i + bs]) for i in range(0, len(arrays), bs)])
    print(f"  inference only (batches of {bs}): {len(keys) / seconds:.0f}/s")
    print(f"  load average now: {os.getloadavg()[0]:.2f}")


def bench_s3(args, data, classify) -> None:
    # the bench's own keys, which the server is configured with and checks on every request
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = BENCH_KEYS
    with servers.seaweed_s3(*BENCH_KEYS) as endpoint:
        images = open_store("s3://bench/images", endpoint)
        images.ensure_bucket()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda item: images.put_bytes(*item), data))
        keys = [o.key for o in images.list("")]
        ours, bare = [], []
        for _ in range(args.repeat):
            with ThreadPoolExecutor(args.workers) as pool:
                seconds, _ = timed(lambda: sum(len(b) for b in pool.map(images.get_bytes, keys)))
            bare.append(len(keys) / seconds)
            seconds, summary = timed(
                batch_predict,
                "s3://bench/images",
                "s3://bench/results",
                classify,
                s3_endpoint=endpoint,
                batch_size=args.batch_size,
                workers=args.workers,
            )
            ours.append(summary["total"] / seconds)
    print(f"s3: ours {[round(r) for r in ours]}, bare GETs {[round(r) for r in bare]} images/s")
    report(
        f"goal 2 store, {args.workers} parallel GETs",
        statistics.median(ours),
        statistics.median(bare),
        "images/s",
        ">= 0.8",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=300, help="images for the naive reference")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-examples", type=int, default=20_000, help="0: untrained model")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args(argv)
    print(f"bench_predict: {args.images} images, {machine()}, os.cpu_count()={os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews rates)")
    images, labels = digits(args.images)
    data = encoded(images)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        model, classify = build_model(work, args.train_examples)
        classify(images[: args.batch_size])  # first call: TensorFlow's one-off set-up
        quiet_logs()
        if not args.skip_local:
            bench_local(args, data, labels, model, classify, work)
        if not args.skip_s3:
            bench_s3(args, data, classify)


if __name__ == "__main__":
    main()
