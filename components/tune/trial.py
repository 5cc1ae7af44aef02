"""`python -m components.tune.trial`: one Katib trial, the train step's code with the trial's
hyper-parameters. After every epoch it prints `validation_accuracy=<value>` and
`validation_loss=<value>`: the `name=value` lines Katib's StdOut metrics collector reads. The
Experiment counts the last one reported (metricStrategies `latest`), the final epoch's.

A trial is scored on the share of its training images that `--validation-split` holds out,
never on the test set, which stays for the pipeline's accuracy gate: a trial neither loads
nor evaluates it. A trial with no validation split is refused in one line before anything is
fetched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from components.common.errors import InputError
from components.train.config import TrainConfig, add_flags

METRIC = "validation_accuracy"  # the Experiment's objective
LOSS = "validation_loss"  # reported beside it, for the trials report
STEP = "trial"


def parser() -> argparse.ArgumentParser:
    """The trial's flags: where the data set is, and every training parameter
    (components/train/config.py), the searched ones required."""
    parser = argparse.ArgumentParser(prog="python -m components.tune.trial")
    parser.add_argument("--dataset-uri", required=True)
    parser.add_argument("--s3-endpoint", default="")
    add_flags(parser, required=("learning_rate", "batch_size", "epochs"))  # Katib's choices
    return parser


def require_validation_split(cfg: TrainConfig) -> None:
    """A trial needs held-out training images to be scored on: refuse a config with none."""
    if cfg.validation_split <= 0:
        raise InputError(
            f"validation_split={cfg.validation_split}: a Katib trial is scored on its "
            "validation split and this one holds out nothing; set validation_split above 0 "
            "(mnist-tune's default is 0.1), the test set is kept for the accuracy gate"
        )


def report(row: dict) -> None:
    """An epoch's row (components/train/trainer.py on_epoch) as the collector's lines."""
    print(f"epoch={row['epoch']}", flush=True)
    print(f"{METRIC}={row[METRIC]:.6f}", flush=True)
    print(f"{LOSS}={row[LOSS]:.6f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from components.common.failure import reported

    args = parser().parse_args(argv)
    with reported(STEP):
        cfg = TrainConfig.from_values(vars(args))
        require_validation_split(cfg)

        from components.dataset import mnist
        from components.dataset.manifest import fetch_dataset
        from components.store import open_store
        from components.train.trainer import train

        with tempfile.TemporaryDirectory(prefix="trial-") as work:
            data = Path(work) / "data"
            fetch_dataset(open_store(args.dataset_uri, args.s3_endpoint), "", data)
            # no test data: no test set evaluated after each epoch nor at the end
            train(mnist.load_split(data, "train"), None, cfg, on_epoch=report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
