"""`python -m components.serving_sync`: keep TF Serving's model folder in step with the store.

Runs as the model-sync sidecar (and, with `--once`, as the init container) of the serving
Deployment in `manifests/base/serving/`. Credentials come from the environment
(`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, from the store Secret), never from arguments.
A failed round is logged and retried at the next interval; SIGTERM ends the loop between rounds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from components.common import spec
from components.common.errors import StepError
from components.common.log import get_logger
from components.serving_sync.sync import ModelStore, sync_once
from components.store import open_store

log = get_logger("serving_sync")


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.serving_sync",
        description="Copy each complete model version published under the store's models prefix"
        " to DEST/<version> (atomically, for TensorFlow Serving), keep the newest ones, repeat.",
    )
    parser.add_argument(
        "--store",
        required=True,
        help="s3://bucket/prefix or a local folder (the pipeline's store URI)",
    )
    parser.add_argument(
        "--s3-endpoint",
        default="",
        help="S3 endpoint, host:port or http(s)://host:port (default: AWS_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument(
        "--prefix",
        default=spec.MODELS_PREFIX,
        help="models prefix under the store (default: %(default)s)",
    )
    parser.add_argument(
        "--dest",
        required=True,
        type=Path,
        help="TF Serving's --model_base_path, e.g. /models/mnist",
    )
    parser.add_argument(
        "--interval",
        type=_positive(float),
        default=30.0,
        help="seconds between rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--keep",
        type=_positive(int),
        default=2,
        help="versions kept on the volume (default: %(default)s)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="sync once and exit: 0 on success, 1 if the round failed",
    )
    return parser


def run_round(store: ModelStore, args: argparse.Namespace) -> bool:
    """One sync round; log what failed instead of raising, so the loop can retry."""
    try:
        placed = sync_once(store, args.prefix, args.dest, args.keep)
    except StepError as e:  # StoreError, SyncError: messages carry no secrets
        log.error("sync of %s failed: %s", store.uri(args.prefix), e)
        return False
    if placed:
        log.info("placed version(s) %s; TF Serving picks them up from %s", placed, args.dest)
    return True


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        store = open_store(args.store, args.s3_endpoint)
    except ValueError as e:
        parser.error(str(e))
    log.info(
        "syncing %s to %s every %ss, keeping %d version(s)%s",
        store.uri(args.prefix),
        args.dest,
        args.interval,
        args.keep,
        " (once)" if args.once else "",
    )
    if args.once:
        return 0 if run_round(store, args) else 1
    stop = _stop_on_signals()
    while not stop.is_set():
        run_round(store, args)
        stop.wait(args.interval)
    log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
