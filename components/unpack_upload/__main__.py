"""`python -m components.unpack_upload SRC STORE`: run unpack-and-upload by hand, for debugging."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from components.common import spec
from components.store import open_store
from components.unpack_upload.unpack import unpack_and_upload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.unpack_upload", description=__doc__)
    parser.add_argument("src", type=Path, help="the download folder (or one archive)")
    parser.add_argument("store", help="s3://bucket/prefix or a local folder")
    parser.add_argument("--prefix", default=spec.DATASET_PREFIX, help="dataset prefix in the store")
    parser.add_argument("--s3-endpoint", default="", help="host:port or http(s)://host:port")
    parser.add_argument(
        "--not-canonical", action="store_true", help="accept any record counts (a custom IDX set)"
    )
    args = parser.parse_args(argv)
    store = open_store(args.store, args.s3_endpoint)
    meta = unpack_and_upload(
        args.src, store, args.prefix, canonical=not args.not_canonical, source=str(args.src)
    )
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
