"""`python -m components.batch_predict MODEL IMAGES RESULTS`: run batch prediction by hand."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from components.batch_predict.model import load_model_version
from components.batch_predict.predictor import batch_predict
from components.common.parameters import DEFAULTS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.batch_predict", description=__doc__)
    parser.add_argument("model", help="an exported model version: folder or s3://.../<version>")
    parser.add_argument("images", help="s3://bucket/prefix, a folder or one image")
    parser.add_argument("results", help="where predictions.csv goes: s3://bucket/prefix or folder")
    parser.add_argument("--s3-endpoint", default="", help="host:port or http(s)://host:port")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=8, help="parallel fetches")
    parser.add_argument("--max-failed-fraction", type=float, default=0.5)
    parser.add_argument("--min-confidence", type=float, default=DEFAULTS["min_confidence"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        classify = load_model_version(args.model, args.s3_endpoint, Path(work))
    summary = batch_predict(
        args.images,
        args.results,
        classify,
        s3_endpoint=args.s3_endpoint,
        batch_size=args.batch_size,
        max_failed_fraction=args.max_failed_fraction,
        min_confidence=args.min_confidence,
        workers=args.workers,
        model_label=args.model,
    )
    summary.pop("html")
    print(summary.pop("markdown"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
