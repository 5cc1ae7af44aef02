"""The unpack-and-upload step: validate every IDX file, then upload the four under a prefix.

Nothing reaches the store until all four files are found, decompressed within limits, parsed and
validated, so a bad download never becomes a published dataset. Objects already in the store with
the same size and sha256 are skipped, so a re-run after a crash finishes the job without
duplicates; the manifest is written last, so a reader never takes a partial upload for a whole.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from components.common import spec
from components.common.log import Progress, get_logger
from components.dataset import archive, mnist
from components.dataset.manifest import dataset_digest, write_manifest
from components.store import Store, join, sha256_file

log = get_logger("unpack_upload")


@dataclass(frozen=True)
class Checked:
    """One validated raw IDX file, ready to upload."""

    name: str
    path: Path
    size: int
    count: int
    sha256: str


def stage(src: Path, workdir: Path, limits: archive.Limits | None = None) -> dict[str, Path]:
    """The four raw IDX files from `src`, extracting an archive and gunzipping into `workdir`.

    `src` is a folder holding the four files (raw or .gz) or one archive, or an archive itself.
    """
    limits = limits or archive.Limits()
    if not src.exists():
        raise archive.ArchiveError(f"{src}: no such file or folder")
    found = _find(src, workdir / "extracted", limits)
    raw_dir = workdir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    paths, left = {}, limits.max_total_bytes  # one budget for all four files together
    for name, path in found.items():
        if path.name.lower().endswith(".gz"):
            left -= archive.gunzip(path, raw_dir / name, replace(limits, max_total_bytes=left))
            path = raw_dir / name
        elif path.stat().st_size > left:
            raise archive.ArchiveError(
                f"{path.name}: larger than the {left} bytes left under "
                f"the limit of {limits.max_total_bytes} bytes"
            )
        else:
            left -= path.stat().st_size
        paths[name] = path
    return paths


def _find(src: Path, extract_to: Path, limits: archive.Limits) -> dict[str, Path]:
    """Locate the IDX files in `src`, extracting it first when it is (or holds) one archive."""
    if src.is_file():
        return _from_archive(src, extract_to, limits)
    visible = [p for p in src.iterdir() if not p.name.startswith(".")]
    archives = [p for p in visible if p.is_file() and archive.is_archive(p)]
    if not archives:
        return archive.find_idx_files(src)
    if len(visible) > 1:
        names = ", ".join(sorted(p.name for p in visible))
        raise archive.ArchiveError(f"{src}: expected one archive or the IDX files, found {names}")
    return _from_archive(archives[0], extract_to, limits)


def _from_archive(path: Path, extract_to: Path, limits: archive.Limits) -> dict[str, Path]:
    if not archive.is_archive(path):
        raise archive.ArchiveError(f"{path.name}: not a .zip, .tar.gz, .tgz or .tar archive")
    log.info("extracting %s", path.name)
    archive.safe_extract(path, extract_to, limits)
    return archive.find_idx_files(extract_to, label=path.name)


def validate(paths: dict[str, Path], canonical: bool = True) -> dict[str, Checked]:
    """Parse and check every file, and that images and labels agree per split.

    `canonical` also requires the record counts of the original release (60000 and 10000).
    """
    checked = {}
    for idx in mnist.FILES:
        parsed = mnist.read_idx(paths[idx.name])
        mnist.check(parsed, idx, canonical=canonical)
        path = paths[idx.name]
        checked[idx.name] = Checked(
            idx.name, path, path.stat().st_size, parsed.count, sha256_file(path)
        )
    log.info("valid: %s", ", ".join(f"{c.name} ({c.count} records)" for c in checked.values()))
    for split, (images, labels) in mnist.SPLITS.items():
        n_images, n_labels = checked[images.name].count, checked[labels.name].count
        if n_images != n_labels:
            raise mnist.IdxError(
                f"{split}: {images.name} holds {n_images} images but "
                f"{labels.name} holds {n_labels} labels"
            )
    return checked


def upload(files: list[Checked], store: Store, prefix: str) -> tuple[list[str], list[str]]:
    """Upload each file unless the same content is there already; (uploaded, skipped).

    Before the first file that changes, the old manifest is deleted: until the new one is
    written, readers see no dataset rather than a mix of old and new files.
    """
    uploaded, skipped = [], []
    progress = Progress(log, "upload", sum(f.size for f in files), unit="bytes")
    for f in files:
        key = join(prefix, f.name)
        there = store.stat(key)
        if there is not None and there.size == f.size and there.sha256 == f.sha256:
            skipped.append(f.name)
        else:
            if not uploaded:
                store.delete(join(prefix, spec.MANIFEST))
            store.put_file(key, f.path, sha256=f.sha256)
            uploaded.append(f.name)
        progress.update(f.size)
    if skipped:
        log.info("already in the store with the same sha256, not uploaded: %s", ", ".join(skipped))
    return uploaded, skipped


def unpack_and_upload(
    src: Path,
    store: Store,
    prefix: str = spec.DATASET_PREFIX,
    canonical: bool = True,
    workdir: Path | None = None,
    source: str = "",
    limits: archive.Limits | None = None,
) -> dict:
    """Validate the MNIST files in `src`, upload them under `prefix`, then write the manifest.

    Returns the artifact metadata: dataset_uri, manifest_uri, counts ({'train', 'test'}),
    sha256 and sizes ({file name: value}), uploaded and skipped (file names).
    """
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="unpack-")) if own else workdir
    try:
        checked = validate(stage(src, work, limits), canonical=canonical)
        uploaded, skipped = upload(list(checked.values()), store, prefix)
        entries = {
            f.name: {"sha256": f.sha256, "size": f.size, "count": f.count} for f in checked.values()
        }
        write_manifest(store, prefix, entries, source)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    log.info(
        "dataset complete at %s (%d uploaded, %d skipped)",
        store.uri(prefix),
        len(uploaded),
        len(skipped),
    )
    return {
        "dataset_uri": store.uri(prefix),
        "manifest_uri": store.uri(join(prefix, spec.MANIFEST)),
        "counts": {split: checked[im.name].count for split, (im, _) in mnist.SPLITS.items()},
        "sha256": {f.name: f.sha256 for f in checked.values()},
        "dataset_digest": dataset_digest(entries),
        "sizes": {f.name: f.size for f in checked.values()},
        "uploaded": uploaded,
        "skipped": skipped,
    }
