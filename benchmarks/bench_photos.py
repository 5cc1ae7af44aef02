"""Goal 6: photos of handwritten digits, read as well as clean ones, at a bounded cost.

On the same seeded synthetic photos (tests/photos.py: MNIST test digits drawn on ruled, squared,
shadowed, boxed, plain and sticky-note paper), in the same run, against the previous stage's
preprocessing (benchmarks/legacy_preprocess.py):

- accuracy per kind of photo, and on clean MNIST images, both read by a k-nearest-neighbour
  classifier over MNIST training digits (about 0.955 on clean MNIST: the ceiling here);
- milliseconds per image (decode and preprocess) for a 640x480 and a 12 MP JPEG.
  Targets: no slower than before on 12 MP, at most 3x before on 640x480;
- batch-predict images per second on a folder of 12 MP photos.

    python benchmarks/bench_photos.py [--per-kind 20] [--timing 15]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, machine, report  # noqa: E402
from benchmarks.legacy_preprocess import legacy_to_mnist  # noqa: E402
from components.reading.image_decode import ImageError  # noqa: E402
from components.reading.images import to_mnist  # noqa: E402
from tests import photos  # noqa: E402


def read(method, knn, data: bytes, label: int) -> bool:
    try:
        return int(knn(method(data)[None])[0]) == label
    except ImageError:
        return False


def accuracy_by_kind(args, images, labels, knn) -> None:
    scores = collections.defaultdict(lambda: collections.defaultdict(list))
    for kind, data, label in photos.photos(images, labels, args.per_kind, seed=11):
        for name, method in (("before", legacy_to_mnist), ("after", to_mnist)):
            scores[kind][name].append(read(method, knn, data, label))
    clean = []
    for i in np.random.default_rng(12).choice(len(images), args.per_kind * 5, replace=False):
        for img in (Image.fromarray(images[i]), Image.fromarray(255 - images[i])):
            clean.append((photos.png(img), int(labels[i])))
    for name, method in (("before", legacy_to_mnist), ("after", to_mnist)):
        scores["clean MNIST"][name] = [read(method, knn, d, y) for d, y in clean]
    reader = f"the model at {args.model}" if args.model else "kNN reader, ceiling about 0.955"
    print(f"accuracy by kind ({args.per_kind} photos each; {reader}):")
    for kind, by in scores.items():
        print(f"  {kind:12s} before {np.mean(by['before']):.2f}  after {np.mean(by['after']):.2f}")


def model_reader(model_uri: str):
    """A reader with the same interface as the kNN one: classes for a batch of 28x28 images."""
    from components.batch_predict.model import load_model_version

    work = tempfile.mkdtemp(prefix="bench-photos-model-")
    classify = load_model_version(model_uri, "", Path(work))
    return lambda batch: classify(batch)[1]


def ms_per_image(method, blobs: list[bytes]) -> float:
    times = []
    for data in blobs:
        start = time.perf_counter()
        with contextlib.suppress(ImageError):
            method(data)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def timing(args, images) -> None:
    rng = np.random.default_rng(13)
    cases = (((640, 480), "<= 3x before", 3.0), (photos.TWELVE_MP, "<= 1x before", 1.0))
    for size, target, limit in cases:
        blobs = [photos.shadow(images[i], rng, size) for i in range(args.timing)]
        before, after = ms_per_image(legacy_to_mnist, blobs), ms_per_image(to_mnist, blobs)
        label = f"{size[0]}x{size[1]} JPEG ({len(blobs[0]) // 1000} kB)"
        report(f"goal 6 preprocess {label}", after, before, "ms/image", target)
        if after > limit * before:
            print(f"  not met: {after:.1f} ms against {limit:g} x {before:.1f} ms")


def batch_rate(args, images, labels, knn) -> None:
    import logging

    from components.batch_predict.predictor import batch_predict

    logging.getLogger("mnist").setLevel(logging.WARNING)  # not one line per image

    def classify(batch: np.ndarray):
        classes = knn(batch)
        return np.eye(10, dtype=np.float32)[classes], classes

    rng = np.random.default_rng(14)
    with tempfile.TemporaryDirectory(prefix="bench-photos-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(args.batch):
            (folder / f"{i:03d}.jpg").write_bytes(photos.shadow(images[i], rng))
        start = time.perf_counter()
        summary = batch_predict(str(folder), str(Path(tmp) / "out"), classify)
        seconds = time.perf_counter() - start
    print(
        f"goal 6 batch-predict, folder of {args.batch} 12 MP photos: "
        f"{summary['total'] / seconds:.1f} images/s ({summary['predicted']} read) [{machine()}]"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--timing", type=int, default=15, help="images per size for the timing")
    parser.add_argument("--batch", type=int, default=40, help="12 MP photos in the batch folder")
    parser.add_argument(
        "--model",
        default="",
        help="read the digits with this exported model version (e.g. mnist-store/models/mnist/1 "
        "after make demo) instead of the kNN reader",
    )
    args = parser.parse_args(argv)
    print(f"bench_photos: {machine()}")
    images, labels = photos.load_mnist(MNIST_DIR, "test")
    knn = photos.knn(str(MNIST_DIR))
    if args.model:
        accuracy_by_kind(args, images, labels, model_reader(args.model))
    else:
        accuracy_by_kind(args, images, labels, knn)
    timing(args, images)
    batch_rate(args, images, labels, knn)


if __name__ == "__main__":
    main()
