"""Finding the four MNIST IDX files in a folder or an archive, and extracting archives safely.

MNIST arrives as four `.gz` files, as raw IDX files, or as one archive (`.zip`, `.tar.gz`, `.tgz`,
`.tar`) holding either, possibly under a top folder (the tutorial's `Mnist-Data-Set.zip`). An
archive comes from outside, so nothing in it is trusted: an entry may not escape the destination
(`../`, absolute paths, links, devices), and the bytes it expands to are bounded in total and in
ratio to the archive's size, so a zip bomb fails fast instead of filling the disk.

The entries' safety checks live in archive_entries.py, the limits and bounded reading in
bounded.py; this module finds the MNIST files by name, extracts an archive whole or not at
all, streams its IDX members and decompresses a single `.gz` file within the limits.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from components.common.redact import printable
from components.dataset import mnist
from components.dataset.archive_entries import _check_name, entries
from components.dataset.bounded import ArchiveError, Limits, _reading, copy_limited

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_IDX_NAMES = {f.name for f in mnist.FILES}
_LOOKS_LIKE_IDX = re.compile(r"idx\d-ubyte$")


def is_archive(path: str | Path) -> bool:
    """True when the file name ends in one of ARCHIVE_SUFFIXES (any case)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def idx_name(filename: str) -> str | None:
    """The MNIST file name (uncompressed) that `filename` stands for, or None.

    Accepts `.gz` and the dotted spelling some mirrors use (`train-images.idx3-ubyte`).
    """
    base = PurePosixPath(filename.replace("\\", "/")).name.lower()
    base = base.removesuffix(".gz").replace(".idx", "-idx")
    return base if base in _IDX_NAMES else None


def _is_junk(rel: PurePosixPath) -> bool:
    """macOS resource forks and hidden files that zips made on a Mac carry along."""
    return "__MACOSX" in rel.parts or any(p.startswith(".") for p in rel.parts)


def find_idx_files(folder: Path, label: str = "") -> dict[str, Path]:
    """Map each MNIST file name to its path under `folder` (raw IDX or .gz, any depth).

    A raw file is preferred over its `.gz` beside it. Missing files, one file found in two
    places, and IDX files that are not MNIST's are errors naming `label` (default: the folder).
    """
    label = label or str(folder)
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if not path.is_file() or _is_junk(rel):
            continue
        name = idx_name(path.name)
        if name:
            found.setdefault(name, []).append(path)
        elif _LOOKS_LIKE_IDX.search(path.name.lower().removesuffix(".gz")):
            raise ArchiveError(
                f"{label}: unexpected IDX file {printable(str(rel))} "
                "(not one of the four MNIST files)"
            )
    missing = sorted(_IDX_NAMES - found.keys())
    if missing:
        raise ArchiveError(f"{label}: missing MNIST file(s) {', '.join(missing)} (raw or .gz)")
    return {name: _pick(paths, folder, label) for name, paths in sorted(found.items())}


def _pick(paths: list[Path], folder: Path, label: str) -> Path:
    """One file per name: a raw file and its .gz in one folder are fine, anything else is not."""
    raw = [p for p in paths if not p.name.lower().endswith(".gz")]
    gz = [p for p in paths if p.name.lower().endswith(".gz")]
    if len(raw) > 1 or len(gz) > 1 or len({p.parent for p in paths}) > 1:
        where = ", ".join(printable(p.relative_to(folder).as_posix()) for p in paths)
        raise ArchiveError(f"{label}: duplicate IDX files: {where}")
    return (raw or gz)[0]


def safe_extract(archive: Path, dest: Path, limits: Limits | None = None) -> Path:
    """Extract the regular files of `archive` into `dest` (created), refusing anything unsafe.

    The files are extracted into a hidden folder beside `dest` and moved in only when the whole
    archive has passed, so a refused archive leaves nothing in `dest` to be taken as complete.
    """
    limits = limits or Limits()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _extract_into(archive, work, limits)
        dest.mkdir(exist_ok=True)
        clashes = sorted(p.name for p in work.iterdir() if os.path.lexists(dest / p.name))
        if clashes:
            raise ArchiveError(
                f"{archive.name}: {printable(', '.join(clashes))} already in {printable(str(dest))}"
            )
        for item in work.iterdir():
            item.rename(dest / item.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _extract_into(archive: Path, root: Path, limits: Limits) -> None:
    root, left = root.resolve(), limits.max_total_bytes
    for entry in entries(archive, limits):
        where = f"{archive.name}: entry {entry.name!r}"
        target = root.joinpath(*_check_name(archive, entry.name).parts)
        if root not in target.resolve().parents:
            raise ArchiveError(f"{where} escapes the extraction folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with _reading(where):
                src = entry.open()  # a zip checks the entry's local header here
            with src, open(target, "xb") as dst:
                left -= copy_limited(src, dst, left, where)
        except OSError as e:  # a name the file system refuses, or a full disk
            raise ArchiveError(f"{where} cannot be written: {e.strerror or e}") from e


def iter_idx_members(
    archive: Path, limits: Limits | None = None
) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield (MNIST name, stream of the raw IDX bytes) for each IDX member, raw or `.gz`."""
    for entry in entries(archive, limits):
        rel = PurePosixPath(entry.name)
        name = idx_name(entry.name)
        if name is None or _is_junk(rel):
            continue
        with _reading(f"{archive.name}: entry {entry.name!r}"):
            stream = entry.open()
        with stream:
            if entry.name.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=stream) as unzipped:
                    yield name, unzipped
            else:
                yield name, stream


def gunzip(src: Path, dest: Path, limits: Limits | None = None) -> int:
    """Decompress `src` into `dest` within the size and ratio limits; returns the bytes written.

    On failure `dest` is removed, so no partial file is left behind.
    """
    limits = limits or Limits()
    cap = min(limits.max_total_bytes, int(limits.max_ratio * max(src.stat().st_size, 1)))
    why = f" (max {limits.max_total_bytes} bytes, ratio {limits.max_ratio:g}:1: a gzip bomb?)"
    try:
        with gzip.open(src, "rb") as f, open(dest, "wb") as out:
            return copy_limited(f, out, cap, src.name, "gzip file", why)
    except OSError as e:  # `dest`'s: a full disk (a corrupt `src` is an ArchiveError already)
        dest.unlink(missing_ok=True)
        raise ArchiveError(f"{src.name} cannot be written to {dest}: {e.strerror or e}") from e
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
