"""Copy complete model versions from the object store onto TF Serving's local volume.

TF Serving watches `--model_base_path` and loads every sub-folder whose name is an integer as a
version of the model. Two rules keep it from ever seeing half a model:

- only *complete* published versions are copied: the export step writes `saved_model.pb` last,
  so a version without it in the store is still being written and is skipped;
- a version is downloaded into a hidden temporary folder on the same volume (a name that is not
  an integer, which TF Serving ignores) and renamed into place in one `rename`, which is atomic
  on one filesystem. Old versions leave the same way: renamed out of sight, then deleted.

The newest `keep` versions (of those published and those already local) stay on the volume; the
rest are removed, so the volume does not fill up over months of scheduled runs. A version that is
on the volume but no longer in the store stays until newer versions push it out: restarting the
pod (its volume is an emptyDir) rebuilds the volume from the store alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from components.common import spec
from components.common.errors import InputError, StepError
from components.common.failure import one_line
from components.common.log import get_logger
from components.common.units import human_bytes
from components.store import ObjectInfo

COMPLETE_MARKER = spec.SAVED_MODEL_PB  # written last by the export step
TEMP_PREFIX = ".sync-"  # hidden, and not an integer: TF Serving never loads it

log = get_logger("serving_sync")


class ModelStore(Protocol):
    """The part of `components.store` the sync needs (LocalStore and S3Store have it)."""

    def uri(self, key: str = "") -> str: ...

    def list(self, prefix: str = "") -> Iterable[ObjectInfo]: ...

    def get_file(self, key: str, dest: str | os.PathLike) -> None: ...


class SyncError(StepError, RuntimeError):
    """One or more versions could not be copied; the message names each version and why."""


def parse_version(name: str) -> int | None:
    """The version number a folder name stands for, or None if TF Serving would not load it."""
    return spec.version_number(name)


def _relative(key: str, base: str) -> str:
    return key[len(base) + 1 :] if base else key


def published_versions(store: ModelStore, prefix: str) -> list[int]:
    """Versions under `prefix` in the store whose `saved_model.pb` exists, oldest first."""
    base = prefix.strip("/")
    versions = set()
    for info in store.list(base):
        parts = _relative(info.key, base).split("/")
        if len(parts) == 2 and parts[1] == COMPLETE_MARKER:
            version = parse_version(parts[0])
            if version is not None:
                versions.add(version)
    return sorted(versions)


def local_versions(dest: Path) -> list[int]:
    """Versions already placed under `dest`, oldest first (hidden and other names ignored)."""
    if not dest.is_dir():
        return []
    found = (parse_version(p.name) for p in dest.iterdir() if p.is_dir())
    return sorted(v for v in found if v is not None)


def remove_stale_temp(dest: Path) -> None:
    """Delete temporary folders a killed sync left behind (they are never taken for versions)."""
    for path in dest.glob(f"{TEMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def _target(root: Path, rel: str) -> Path:
    """`root / rel`, refusing keys that would land outside `root` (e.g. `../x` in an S3 key)."""
    target = (root / rel).resolve()
    if not rel or root.resolve() not in target.parents:
        raise SyncError(f"refusing object key {rel!r}: it escapes the version folder")
    return target


def download_version(store: ModelStore, prefix: str, version: int, dest: Path) -> Path:
    """Copy one version into `dest/<version>` atomically; return that folder."""
    key_prefix = "/".join(p for p in (prefix.strip("/"), str(version)) if p)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{version}-", dir=dest))
    try:
        count = size = 0
        for info in store.list(key_prefix):
            if info.key.endswith("/"):  # a "folder" marker some S3 tools create: no content
                continue
            target = _target(tmp, _relative(info.key, key_prefix))
            target.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(info.key, target)
            if target.stat().st_size != info.size:
                raise SyncError(
                    f"{store.uri(info.key)}: got {target.stat().st_size} bytes, listed {info.size}"
                )
            count, size = count + 1, size + info.size
        if not (tmp / COMPLETE_MARKER).is_file():
            raise SyncError(f"{store.uri(key_prefix)} lost its {COMPLETE_MARKER} while copying")
        tmp.chmod(0o755)  # mkdtemp makes it 0700; TF Serving may run as another user
        final = dest / str(version)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("new version %d at %s (%d files, %s)", version, final, count, human_bytes(size))
    return final


def remove_version(dest: Path, version: int) -> None:
    """Take a version off the volume: rename it out of TF Serving's sight, then delete it."""
    hidden = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old-{version}-", dir=dest))
    os.rename(dest / str(version), hidden / "model")
    shutil.rmtree(hidden, ignore_errors=True)
    log.info("removed old version %d from %s", version, dest)


def _volume_problem(e: OSError) -> str:
    """An OSError on the local volume, in one line naming the path."""
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        return f"{e.filename}: a file is where a folder should be"
    return one_line(e)


def sync_once(store: ModelStore, prefix: str, dest: Path, keep: int) -> list[int]:
    """Bring `dest` up to date with the store once; return the versions newly placed, oldest first.

    Downloads only versions that will be kept (the newest `keep` of published and local ones),
    newest first so TF Serving switches to a new model as soon as possible, then prunes. A version
    that fails does not stop the others: the rest are placed and pruned, then SyncError names it.
    """
    if keep < 1:
        raise InputError(f"keep must be at least 1, got {keep}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(dest)
        present = set(local_versions(dest))
    except OSError as e:  # a file where the folder should be, a volume it may not read
        raise SyncError(f"model folder {dest} cannot be used: {_volume_problem(e)}") from None
    wanted = sorted(present | set(published_versions(store, prefix)))[-keep:]
    placed, errors = [], []
    for version in sorted(set(wanted) - present, reverse=True):
        try:
            download_version(store, prefix, version, dest)
            placed.append(version)
        except (StepError, OSError) as e:  # the store, or writing the local volume (disk full)
            errors.append(f"version {version}: {e}")
    for version in local_versions(dest)[:-keep]:
        try:
            remove_version(dest, version)
        except OSError as e:  # a volume it may not write: the next round tries again
            errors.append(f"removing version {version}: {_volume_problem(e)}")
    if errors:
        raise SyncError("; ".join(errors))
    return sorted(placed)
