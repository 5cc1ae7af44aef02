"""`python -m components.tune.trial`: one Katib trial, the train step's code with the trial's
hyper-parameters. It prints `test_accuracy=<value>` after every epoch and at the end: the
`name=value` lines Katib's StdOut metrics collector reads."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from components.train.config import TrainConfig, add_flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.tune.trial")
    parser.add_argument("--dataset-uri", required=True)
    parser.add_argument("--s3-endpoint", default="")
    add_flags(parser, required=("learning_rate", "batch_size", "epochs"))  # Katib's choices
    args = parser.parse_args(argv)

    from components.dataset import mnist
    from components.dataset.manifest import fetch_dataset
    from components.store import open_store
    from components.train.trainer import train

    cfg = TrainConfig.from_values(vars(args))
    with tempfile.TemporaryDirectory(prefix="trial-") as work:
        data = Path(work) / "data"
        fetch_dataset(open_store(args.dataset_uri, args.s3_endpoint), "", data)

        def report(row: dict) -> None:
            print(f"epoch={row['epoch']}", flush=True)
            print(f"test_accuracy={row['test_accuracy']:.6f}", flush=True)

        result = train(
            mnist.load_split(data, "train"), mnist.load_split(data, "test"), cfg, on_epoch=report
        )
    print(f"test_accuracy={result.test_accuracy:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
