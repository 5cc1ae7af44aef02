"""The download step: fetch MNIST from HTTP(S), S3 or a local path, and verify it.

A source is either a base (URL, `s3://` prefix or folder) holding the four `.gz` files, or one
archive (`.zip`, `.tar.gz`, `.tgz`, `.tar`). Files are fetched as-is into a destination folder,
each under a hidden temporary name that is renamed only once every file has arrived and passed
its checks, so a failed run never leaves a file that looks complete.

Transient faults (5xx, resets, timeouts, a body cut short) are retried with exponential backoff,
bounded in count and in time, resuming with a byte range where the server honours one. A 404 or
403 is final. Checksums are the sha256 of the decompressed IDX content, which the original
release and every mirror share even where their gzip wrappers differ.

The pieces: transport.py and s3_source.py open a source once, transfer.py retries and bounds
one file's transfer, verify.py checks the digests; this module plans what to fetch for a
source and publishes the files only once all of them have arrived and passed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from components.common.failure import one_line
from components.common.log import get_logger
from components.common.provenance import digest_of
from components.common.redact import malformed
from components.common.redact import redact_url as redact
from components.common.units import human_bytes
from components.dataset import archive, mnist
from components.download.transfer import RetryPolicy, _Fetcher
from components.download.transport import DownloadError
from components.download.verify import verify_file
from components.store import join, parse_s3_uri

DEFAULT_MAX_BYTES = 200 << 20  # the four MNIST .gz files are about 11 MB
log = get_logger("download")


def _plan(source: str) -> tuple[str, list[tuple[str, str]]]:
    """The shape of `source` ('archive' or 'files') and the (file name, location) to fetch."""
    try:
        parts = urlsplit(source)
    except ValueError:  # a '[' with no ']' where the host would be: malformed says so
        problem = malformed(source)
        raise DownloadError(f"source {redact(source)!r} is not a valid URL: {problem}") from None
    if parts.scheme in ("http", "https", "s3") and (problem := malformed(source)):
        raise DownloadError(f"source {redact(source)!r} is not a valid URL: {problem}")
    if parts.scheme in ("http", "https", "s3"):
        if parts.scheme == "s3":
            parse_s3_uri(source)  # a ValueError naming a malformed URI
        path, is_dir = parts.path, not archive.is_archive(parts.path)
    elif parts.scheme in ("", "file"):
        path = unquote(parts.path) if parts.scheme == "file" else source
        path = str(Path(path).expanduser())
        is_dir = Path(path).is_dir()
        if not is_dir and not archive.is_archive(path):
            raise DownloadError(
                f"source {path}: no such folder, or not a .zip/.tar.gz/.tar archive"
            )
        source = path
    else:
        raise DownloadError(
            f"source {redact(source)!r}: unsupported scheme {parts.scheme!r} "
            "(use http(s)://, s3://, file:// or a local path)"
        )
    if is_dir:
        if parts.scheme in ("", "file"):
            _check_folder(Path(source))
        return "files", [(f.gz_name, join(source, f.gz_name)) for f in mnist.FILES]
    return "archive", [(Path(path).name, source)]


def _check_folder(folder: Path) -> None:
    """A clear error for a folder that holds MNIST in another shape than the four .gz files."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError as e:  # a folder this user may not list
        why = e.strerror or type(e).__name__
        raise DownloadError(f"source folder {folder}: cannot be read: {why}") from None
    missing = [f.gz_name for f in mnist.FILES if f.gz_name not in names]
    if not missing:
        return
    raw = [f.name for f in mnist.FILES if f.name in names]
    archives = sorted(n for n in names if archive.is_archive(n))
    if raw:
        hint = f"it holds raw IDX files ({', '.join(raw)}): gzip them, or pack them in a .zip"
    elif len(archives) == 1:
        hint = f"it holds one archive: give --source {folder / archives[0]}"
    else:
        hint = "it should hold the four MNIST .gz files, or give an archive as the source"
    raise DownloadError(f"source folder {folder} has no {missing[0]}: {hint}")


def download(
    source: str,
    dest: Path,
    verify_checksums: bool = True,
    s3_endpoint: str = "",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retry: RetryPolicy | None = None,
) -> dict:
    """Fetch MNIST from `source` into the folder `dest`; returns the Dataset artifact metadata.

    Keys: source (redacted), shape ('files' or 'archive'), files (names in `dest`), bytes,
    checksums_verified, sha256 ({IDX name: digest of the decompressed content}, when verified).
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    shape, plan = _plan(source)
    log.info("downloading %s (%s)", redact(source), shape)
    fetcher = _Fetcher(max_bytes, retry or RetryPolicy.from_env(), s3_endpoint)
    parts = {name: dest / f".part-{name}" for name, _ in plan}
    digests: dict[str, str] = {}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for name, location in plan:
                fetcher.fetch(location, parts[name])
                if verify_checksums:
                    digests.update(verify_file(parts[name], name))
            for name, part in parts.items():  # only now, when every file has passed
                os.replace(part, dest / name)
        finally:
            for part in parts.values():
                part.unlink(missing_ok=True)
    except OSError as e:  # the sources' own failures are DownloadErrors: this is `dest`
        raise DownloadError(f"download into {dest} failed: {one_line(e)}") from None
    checked = f"; sha256 of all {len(digests)} IDX files match MNIST's" if verify_checksums else ""
    log.info("fetched %d file(s), %s%s", len(parts), human_bytes(fetcher.used), checked)
    return {
        "source": redact(source),
        "shape": shape,
        "files": sorted(parts),
        "bytes": fetcher.used,
        "checksums_verified": verify_checksums,
        "sha256": digests,
        # the digest of the set (components/common/provenance.py); unpack-and-upload records
        # it whether or not the checksums are verified here
        **({"dataset_digest": digest_of(digests)} if digests else {}),
    }
