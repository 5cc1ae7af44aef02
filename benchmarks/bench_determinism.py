"""What determinism costs: the same training with TensorFlow's op determinism on and off.

The train step enables `tf.config.experimental.enable_op_determinism()` (components/train/model.py
seed_everything). It cannot be turned off again in a process by a public API, and a warm
process would favour whichever run comes second, so each measurement is a fresh interpreter,
the two settings alternating. Both train the same workload with the same seed (the first
`--examples` MNIST training images, the pipeline's model and batch size, `--epochs` epochs);
the figures are the median and the fastest of the training seconds (Keras fit, without
start-up or data loading); the fastest is the least disturbed by whatever else the machine runs.
The seeds and the stateless data pipeline are the same in both: only the op setting differs.

    python benchmarks/bench_determinism.py [--examples 12000] [--epochs 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MNIST_DIR, REPO, machine, report  # noqa: E402

ONE_RUN = """
import json, sys
from components.dataset import mnist
from components.train.config import TrainConfig
from components.train.trainer import train
data, examples, epochs, deterministic = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = TrainConfig(epochs=epochs, train_limit=examples, deterministic=deterministic == "on")
result = train(mnist.load_split(data, "train"), mnist.load_split(data, "test"), cfg)
print("RESULT", json.dumps({"seconds": result.seconds, "accuracy": result.test_accuracy}))
"""


def one_run(examples: int, epochs: int, deterministic: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ONE_RUN, str(MNIST_DIR), str(examples), str(epochs), deterministic],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"bench_determinism on {machine()}: {args.examples} examples, {args.epochs} epoch(s)")
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for n in range(args.repeat):
        for setting in ("off", "on") if n % 2 == 0 else ("on", "off"):
            run = one_run(args.examples, args.epochs, setting)
            seconds[setting].append(run["seconds"])
            print(
                f"  op determinism {setting}: {run['seconds']:.2f} s of training, "
                f"test accuracy {run['accuracy']:.4f}",
                flush=True,
            )
    for name, pick in (("median", statistics.median), ("fastest", min)):
        report(
            f"determinism: training seconds with op determinism vs without ({name})",
            pick(seconds["on"]),
            pick(seconds["off"]),
            "s",
            "informational",
        )


if __name__ == "__main__":
    main()
