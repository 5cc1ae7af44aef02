"""Held-back reading: digit images of kinds the preprocessing was never tuned on, read by the model.

On seeded images made in this run (tests/reading_families.py: thirteen families of photos, scans
and drawings, ten clean MNIST-style renderings, scikit-learn's 8x8 digits at four sizes, three
handwriting-style fonts of Debian's font packages when installed; and the six photo kinds of
tests/photos.py), three preprocessings side by side (scikit-learn's digits all 1797 in each
rendering unless --sklearn N says how many, so a rendering's figure is not a 50-digit draw):

- plain: the preprocessing before the photo work (benchmarks/legacy_preprocess.py);
- before: `components.reading.images.to_mnist` at a fixed revision (--before, default f0fc6c9),
  run from a temporary `git worktree` in a subprocess;
- after: the working tree's `to_mnist`.

Each 28x28 result is classified by the exported model (--model, default the newest version
`make demo` exported under mnist-store/; without one, the k-nearest-neighbour reader of
tests/photos.py); an ImageError counts as wrong. It prints accuracy per family, the mean over
them, and how well the low-confidence flag (min_confidence) separates the wrong answers from the
right ones; then (--timing N images per size):

- milliseconds per image for a 640x480 photo, after vs plain (target <= 3x plain);
- milliseconds per image for a 12 MP photo, after vs before (target <= 1x before);
- clean 28x28 PNGs through `after`, images per second (target >= 5000/s).

    python benchmarks/bench_reading.py [--per-family 50] [--sklearn 0] [--seed 0] [--before f0fc6c9]
                                       [--model PATH] [--timing 8]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, REPO, machine, report  # noqa: E402
from benchmarks.legacy_preprocess import legacy_to_mnist  # noqa: E402
from components.common.parameters import DEFAULTS  # noqa: E402
from components.reading.image_decode import ImageError  # noqa: E402
from components.reading.images import to_mnist  # noqa: E402
from tests import photos, reading_families  # noqa: E402

DEMO_MODELS = REPO / "mnist-store" / "models" / "mnist"  # where `make demo` exports
MIN_CONFIDENCE = DEFAULTS["min_confidence"]
OTHER_THRESHOLDS = (0.7, 0.9, 0.95, 0.98)  # the flag's trade-off is printed at these too
METHODS = ("plain", "before", "after")
OK, IMAGE_ERROR, CRASH = 0, 1, 2  # per image: read, refused with an ImageError, other exception

# Run with cwd = the worktree: reads the encoded images, writes the 28x28 results, the outcome
# of each (OK, IMAGE_ERROR, CRASH) and the seconds each took.
BEFORE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from components.reading import images
    from components.reading.image_decode import ImageError
    assert images.__file__.startswith(sys.argv[1]), images.__file__
    blobs = np.load(sys.argv[2])
    data, offsets = blobs["data"], blobs["offsets"]
    n = len(offsets) - 1
    out = np.zeros((n, 28, 28), np.uint8)
    outcome = np.zeros(n, np.uint8)
    seconds = np.zeros(n)
    for i in range(n):
        blob = data[offsets[i] : offsets[i + 1]].tobytes()
        start = time.perf_counter()
        try:
            out[i] = images.to_mnist(blob)
        except ImageError:
            outcome[i] = 1
        except Exception as e:
            outcome[i] = 2
            print(f"image {i}: {type(e).__name__}: {e}", file=sys.stderr)
        seconds[i] = time.perf_counter() - start
    np.savez(sys.argv[3], out=out, outcome=outcome, seconds=seconds)
    """
)


class Results:
    """28x28 outputs, the outcome of each image and the seconds each took, for one method."""

    def __init__(self, out: np.ndarray, outcome: np.ndarray, seconds: np.ndarray):
        self.out, self.outcome, self.seconds = out, outcome, seconds


def run_here(method, blobs: list[bytes]) -> Results:
    out = np.zeros((len(blobs), 28, 28), np.uint8)
    outcome = np.zeros(len(blobs), np.uint8)
    seconds = np.zeros(len(blobs))
    for i, data in enumerate(blobs):
        start = time.perf_counter()
        try:
            out[i] = method(data)
        except ImageError:
            outcome[i] = IMAGE_ERROR
        except Exception as e:  # noqa: BLE001 - counted as wrong, and said
            outcome[i] = CRASH
            print(f"  image {i}: {type(e).__name__}: {e}", file=sys.stderr)
        seconds[i] = time.perf_counter() - start
    return Results(out, outcome, seconds)


@contextlib.contextmanager
def worktree(rev: str):
    """A detached `git worktree` of `rev` in a temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-reading-before-"))
    try:
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(folder), rev],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)


def run_before(tree: Path, blobs: list[bytes]) -> Results:
    """`to_mnist` of the worktree, over `blobs`, in a subprocess whose sys.path[0] is the tree."""
    with tempfile.TemporaryDirectory(prefix="bench-reading-") as tmp:
        sizes = np.array([len(b) for b in blobs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        data = np.frombuffer(b"".join(blobs), np.uint8)
        inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, data=data, offsets=offsets)
        subprocess.run(
            [sys.executable, "-c", BEFORE_SCRIPT, str(tree), str(inp), str(outp)],
            cwd=tree,
            check=True,
        )
        with np.load(outp) as got:
            return Results(got["out"], got["outcome"], got["seconds"])


def demo_model() -> str:
    """The newest complete version `make demo` exported (saved_model.pb is written last)."""
    versions = [p for p in DEMO_MODELS.glob("*") if p.name.isdigit()]
    done = [p for p in versions if (p / "saved_model.pb").exists()]
    return str(max(done, key=lambda p: int(p.name))) if done else ""


@contextlib.contextmanager
def reader(args):
    """(classes and confidences of a batch of 28x28 images, what reads them): the model
    loaded from a copy, or the kNN reader (its confidence: the share of votes won)."""
    model = args.model or demo_model()
    if not model:
        print(f"no --model and no model under {DEMO_MODELS} (make demo): the kNN reader")
        knn = photos.knn(str(MNIST_DIR))
        yield knn.votes, "kNN reader of tests/photos.py, ceiling about 0.955"
        return
    from components.batch_predict.model import load_model_version

    with tempfile.TemporaryDirectory(prefix="bench-reading-model-") as work:
        classify = load_model_version(model, "", Path(work))

        def read(batch):
            probabilities, predicted = classify(batch)
            return predicted, probabilities[np.arange(len(predicted)), predicted]

        yield read, f"the model at {model}"


def classes(read, out: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(the classes, their confidences) of every 28x28 image in `out`."""
    parts = [read(out[i : i + batch]) for i in range(0, len(out), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cases(args, images, labels) -> list[tuple[str, bytes, int]]:
    per, seed = args.per_family, args.seed
    made = list(reading_families.families(images, labels, per, seed=seed))
    made += reading_families.clean(images, labels, per, seed=seed + 1)
    made += reading_families.sklearn_renderings(seed=seed + 2, per=args.sklearn or None)
    made += photos.photos(images, labels, per, seed=seed + 3)
    made += reading_families.font_renderings(seed=seed + 4, per=per)
    missing = reading_families.missing_fonts()
    if missing:
        print(f"no font families for {', '.join(missing)}: apt-get install {' '.join(missing)}")
    return made


def accuracy(args, images, labels, read, what: str, tree: Path) -> None:
    start = time.perf_counter()
    made = cases(args, images, labels)
    names = [name for name, _, _ in made]
    blobs = [data for _, data, _ in made]
    truth = np.array([label for _, _, label in made])
    print(f"{len(blobs)} images made in {time.perf_counter() - start:.0f} s", flush=True)
    results = {
        "plain": run_here(legacy_to_mnist, blobs),
        "before": run_before(tree, blobs),
        "after": run_here(to_mnist, blobs),
    }
    right, confident = {}, {}
    for method, got in results.items():
        predicted, confidence = classes(read, got.out)
        right[method] = (predicted == truth) & (got.outcome == OK)
        confident[method] = confidence
        crashed = int((got.outcome == CRASH).sum())
        if crashed:
            print(f"  {method}: {crashed} images raised something other than an ImageError")
    rows = collections.OrderedDict((name, []) for name in names)
    for i, name in enumerate(names):
        rows[name].append(i)
    print(f"accuracy by family ({what}; an ImageError counts as wrong):")
    print(f"  {'family':26s} {'n':>4s} {'plain':>6s} {'before':>6s} {'after':>6s}")
    means = {method: [] for method in METHODS}
    for name, index in rows.items():
        scores = [float(right[m][index].mean()) for m in METHODS]
        for method, score in zip(METHODS, scores, strict=True):
            means[method].append(score)
        cells = " ".join(f"{s:6.3f}" for s in scores)
        print(f"  {name:26s} {len(index):4d} {cells}")
    cells = " ".join(f"{np.mean(means[m]):6.2f}" for m in METHODS)
    print(f"  {f'mean of {len(rows)} families':26s} {len(blobs):4d} {cells}", flush=True)
    answered = results["after"].outcome == OK  # an error row is not a prediction to flag
    sklearn = np.array([name in reading_families.SKLEARN for name in names])
    for which, among in (("all images", answered), ("without scikit-learn's", ~sklearn)):
        flag(confident["after"], right["after"], answered & among, which)


def flag(confidence: np.ndarray, right: np.ndarray, among: np.ndarray, which: str) -> None:
    """How well the low-confidence flag separates the wrong answers from the right ones among
    the images `among` marks: at min_confidence, at OTHER_THRESHOLDS, and at the threshold
    under which a tenth of the right answers fall (what the goal allows)."""
    wrong, good = among & ~right, among & right
    low = confidence < MIN_CONFIDENCE
    print(
        f"low-confidence flag ({which}, after, min_confidence {MIN_CONFIDENCE}): catches "
        f"{low[wrong].mean():.2f} of the {wrong.sum()} wrong answers (goal >= 0.70), flags "
        f"{low[good].mean():.2f} of the {good.sum()} right ones (goal <= 0.10)",
        flush=True,
    )
    tenth = float(np.quantile(confidence[good], 0.10))
    for threshold in sorted({*OTHER_THRESHOLDS, round(tenth, 4)} - {MIN_CONFIDENCE}):
        low = confidence < threshold
        print(
            f"  at min_confidence {threshold}: catches {low[wrong].mean():.2f}, flags "
            f"{low[good].mean():.2f}",
            flush=True,
        )


def timing(args, images, tree: Path) -> None:
    rng = np.random.default_rng(args.seed + 13)
    small = [photos.shadow(images[i], rng, (640, 480)) for i in range(args.timing)]
    plain, after = run_here(legacy_to_mnist, small), run_here(to_mnist, small)
    ms = {name: 1000 * statistics.median(r.seconds) for name, r in (("p", plain), ("a", after))}
    label = f"640x480 JPEG ({len(small[0]) // 1000} kB)"
    report(f"reading preprocess {label}, after vs plain", ms["a"], ms["p"], "ms/image", "<= 3x")
    large = [photos.shadow(images[i], rng, photos.TWELVE_MP) for i in range(args.timing)]
    before, after = run_before(tree, large), run_here(to_mnist, large)
    ms = {
        "b": 1000 * statistics.median(before.seconds),
        "a": 1000 * statistics.median(after.seconds),
    }
    label = f"12 MP JPEG ({len(large[0]) // 1000} kB)"
    report(f"reading preprocess {label}, after vs before", ms["a"], ms["b"], "ms/image", "<= 1x")
    clean_png = reading_families.CLEAN["png"]
    pngs = [clean_png(images[i], rng) for i in range(args.batch)]
    rates = {}
    for name, method in (("plain", legacy_to_mnist), ("after", to_mnist)):
        start = time.perf_counter()
        for data in pngs:
            method(data)
        rates[name] = len(pngs) / (time.perf_counter() - start)
    report(
        f"reading preprocess, {len(pngs)} clean 28x28 PNGs, after vs plain",
        rates["after"],
        rates["plain"],
        "images/s",
        ">= 5000 images/s",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-family", type=int, default=50, help="images of each family (0: only the timing)"
    )
    parser.add_argument(
        "--sklearn",
        type=int,
        default=0,
        help="images of each scikit-learn rendering, taken label by label in a seeded order "
        "(0, the default: all 1797 of load_digits in each)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default="f0fc6c9", help="the revision 'before' reads with")
    parser.add_argument(
        "--model",
        default=None,
        help=f"an exported model version folder (default: the newest under {DEMO_MODELS}; "
        "the kNN reader of tests/photos.py when there is none)",
    )
    parser.add_argument("--timing", type=int, default=8, help="photos per size for the timing")
    parser.add_argument("--batch", type=int, default=3000, help="28x28 PNGs for the throughput")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"bench_reading: {machine()}", flush=True)
    images, labels = photos.load_mnist(MNIST_DIR, "test")
    with worktree(args.before) as tree, reader(args) as (read, what):
        if args.per_family:  # 0: the timing alone
            accuracy(args, images, labels, read, what, tree)
        if args.timing:
            timing(args, images, tree)
    print(f"bench_reading: {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
