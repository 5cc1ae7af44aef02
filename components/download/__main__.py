"""`python -m components.download SOURCE DEST`: run the download step by hand, for debugging."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from components.download.fetch import DEFAULT_MAX_BYTES, download


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.download", description=__doc__)
    parser.add_argument("source", help="http(s):// or s3:// base or archive, or a local path")
    parser.add_argument("dest", type=Path, help="folder to write the fetched files into")
    parser.add_argument("--no-verify", action="store_true", help="skip the MNIST checksums")
    parser.add_argument("--s3-endpoint", default="", help="host:port or http(s)://host:port")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    args = parser.parse_args(argv)
    meta = download(
        args.source,
        args.dest,
        verify_checksums=not args.no_verify,
        s3_endpoint=args.s3_endpoint,
        max_bytes=args.max_bytes,
    )
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
