"""Training that survives preemption: Keras' BackupAndRestore, mirrored into the store.

At the end of each epoch Keras writes the training state (the weights, the optimizer's
variables, including its step count, which drives the learning-rate schedule, and the epoch
number) into a local folder; `StoreCheckpoints` then copies it to the store under
`checkpoints/<run id>/epoch-NNNN/` with the epoch history, writes the folder's MANIFEST.json
(each file's path, size and sha256), and only then points `checkpoints/<run id>/LATEST.json`
at it. The last two complete epochs are kept, so that a broken one has a predecessor.

A retried pod of the same run (the same run id) reads LATEST.json, copies that epoch back
into the local folder, checks every file against the manifest and has Keras load it; only
then does it say it resumes. A checkpoint that fails any check (or a LATEST.json that is not
a pointer this module wrote) is a reason to fall back to the previous epoch, or to start
fresh, in one line that says why; a store that cannot be read is still a StoreError. Export
removes the run's checkpoints; `clean` removes those of runs that never exported.

The record formats and their strict parsing live in checkpoint_records.py; this module is
the store side (publish, rotate, restore with fallback, remove) and the Keras loader.
"""

from __future__ import annotations

import json
import posixpath
import shutil
from collections.abc import Callable
from pathlib import Path

from components.common import spec
from components.common.errors import InputError
from components.common.log import get_logger
from components.common.records import MAX_RECORD
from components.store import Store, join, sha256_file
from components.train.checkpoint_records import (
    HISTORY,
    LATEST,
    LATEST_MAX_BYTES,
    MANIFEST,
    METADATA,
    WEIGHTS,
    CheckpointError,
    Entry,
    _history,
    _record,
    folder_epoch,
    folder_name,
    parse_latest,
    parse_manifest,
)

KEEP = 2  # complete epochs kept: the latest and the one to fall back to
log = get_logger("train")


def run_prefix(run_id: str) -> str:
    """`checkpoints/<run id>`: a run id is an opaque token, kept to safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id.strip())
    if not safe.strip("._"):
        raise InputError(f"run id {run_id!r} cannot name a checkpoint folder")
    return join(spec.CHECKPOINTS_PREFIX, safe)


class StoreCheckpoints:
    """The per-run checkpoint folder in the store, and its local copy for Keras."""

    def __init__(self, store: Store, prefix: str, local: Path):
        self.store, self.prefix, self.local = store, prefix.strip("/"), Path(local)
        self.local.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return self.store.uri(self.prefix)

    def restore(self, load: Callable[[Path], None] | None = None) -> tuple[int, list[dict]]:
        """Copy the latest good epoch into the local folder: (epochs done, their history);
        (0, []) and an empty local folder when there is none.

        `load(local folder)` is how Keras takes the state (keras_loader); it runs once the files
        check out, and a checkpoint it raises on is broken too. A broken LATEST.json or epoch
        falls back to the newest good epoch folder, in one line saying why."""
        tree = self._tree()  # a store that cannot be listed: StoreError, as before
        problems, candidates = self._candidates(tree)
        for folder in candidates:
            try:
                history = self._fetch(folder, tree.get(folder), load)
            except CheckpointError as e:
                problems.append(f"checkpoint {folder} is broken ({e})")
                continue
            epoch, where = folder_epoch(folder), self.store.uri(join(self.prefix, folder))
            line = f"resuming after epoch {epoch} from the checkpoint at {where}"
            if problems:
                log.warning("%s; %s instead", "; ".join(problems), line)
            else:
                log.info(line)
            return epoch, history
        self._clear_local()
        if problems:
            log.warning("%s; starting fresh", "; ".join(problems))
        return 0, []

    def _tree(self) -> dict[str, dict[str, int]]:
        """The run's objects by top-level name: {folder or file: {path inside: size}}."""
        tree: dict[str, dict[str, int]] = {}
        for info in self.store.list(self.prefix):
            head, _, rest = info.key[len(self.prefix) + 1 :].partition("/")
            tree.setdefault(head, {})[rest] = info.size
        return tree

    def _candidates(self, tree: dict) -> tuple[list[str], list[str]]:
        """(what is wrong with LATEST.json, the epoch folders to try, best first): the one it
        points at, then the older ones; every epoch folder, newest first, without a pointer."""
        folders = sorted((f for f in tree if _is_folder(f)), key=folder_epoch, reverse=True)
        if LATEST not in tree:
            return (["no LATEST.json"] if folders else []), folders
        try:
            if "" not in tree[LATEST]:
                raise CheckpointError(f"{LATEST}: a folder, not a file")
            pointer = parse_latest(self._read(LATEST, tree[LATEST][""], LATEST_MAX_BYTES))
        except CheckpointError as e:
            return [f"{self.uri}/{e}"], folders  # the message starts with LATEST.json
        older = [f for f in folders if folder_epoch(f) < pointer.epoch]
        return [], [pointer.folder, *older]

    def _read(self, key: str, size: int, limit: int) -> bytes:
        """A small object under the run's prefix, its listed size checked first."""
        if size > limit:
            raise CheckpointError(f"{posixpath.basename(key)}: larger than {limit} bytes")
        return self.store.get_bytes(join(self.prefix, key))

    def _fetch(self, folder: str, present: dict[str, int] | None, load) -> list[dict]:
        """Copy `folder` into the emptied local folder and check it: the manifest's files with
        their sizes and digests, Keras' metadata, the history, then `load`. Its history."""
        self._clear_local()
        if not present:
            raise CheckpointError("no such folder")
        if MANIFEST not in present:
            raise CheckpointError(f"no {MANIFEST}")
        epoch = folder_epoch(folder)
        data = self._read(join(folder, MANIFEST), present[MANIFEST], MAX_RECORD)
        entries = parse_manifest(data, epoch)
        for entry in entries:  # what the listing already tells, before any download
            if entry.path not in present:
                raise CheckpointError(f"{entry.path}: missing")
            if present[entry.path] != entry.size:
                actual = present[entry.path]
                raise CheckpointError(f"{entry.path}: {actual} bytes, not {entry.size}")
        for entry in entries:
            self._copy_back(folder, entry)
        metadata = _record(self._local_bytes(METADATA), METADATA, {"epoch": int}, exact=False)
        if metadata["epoch"] != epoch:  # Keras resumes after the epoch its metadata names
            raise CheckpointError(f"{METADATA}: epoch {metadata['epoch']}, not {epoch}")
        history = _history(self._local_bytes(HISTORY))
        if len(history) != epoch:
            raise CheckpointError(f"{HISTORY}: {len(history)} epochs, not {epoch}")
        if load is not None:
            _load(load, self.local)
        return history

    def _copy_back(self, folder: str, entry: Entry) -> None:
        target = self.local / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        self.store.get_file(join(self.prefix, folder, entry.path), target)
        if target.stat().st_size != entry.size:
            raise CheckpointError(f"{entry.path}: {target.stat().st_size} bytes, not {entry.size}")
        if sha256_file(target) != entry.sha256:
            raise CheckpointError(f"{entry.path}: sha256 mismatch")

    def _local_bytes(self, name: str) -> bytes:
        path = self.local / name
        if path.stat().st_size > MAX_RECORD:
            raise CheckpointError(f"{name}: larger than {MAX_RECORD} bytes")
        return path.read_bytes()

    def _clear_local(self) -> None:
        """Nothing half-copied or from another epoch for BackupAndRestore to pick up: a folder
        that is gone is made again, one that cannot be emptied fails (FileExistsError)."""
        shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True)

    def publish(self, epoch: int, history: list[dict]) -> None:
        """Copy the local folder (as Keras left it after `epoch`) to the store, write its
        manifest, point LATEST.json at it, then keep only it and the epoch before it."""
        (self.local / HISTORY).write_text(json.dumps(history))
        folder = folder_name(epoch)
        files = []
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            rel, digest = path.relative_to(self.local).as_posix(), sha256_file(path)
            self.store.put_file(join(self.prefix, folder, rel), path, sha256=digest)
            files.append({"path": rel, "size": path.stat().st_size, "sha256": digest})
        manifest = {"epoch": epoch, "files": files}
        self.store.put_bytes(join(self.prefix, folder, MANIFEST), json.dumps(manifest).encode())
        latest = {"epoch": epoch, "folder": folder}
        self.store.put_bytes(join(self.prefix, LATEST), json.dumps(latest).encode())
        self._rotate(epoch)

    def _rotate(self, epoch: int) -> None:
        """Delete the epoch folders but the last KEEP: older ones, and newer ones left by a
        timeline this run fell back from. Nothing else under the run's prefix is touched."""
        keep = {folder_name(e) for e in range(epoch - KEEP + 1, epoch + 1)}
        for head, files in self._tree().items():
            if head not in keep and _is_folder(head):
                # the manifest first: a folder half deleted is then plainly incomplete
                for rest in sorted(files, key=lambda rest: rest != MANIFEST):
                    self.store.delete(join(self.prefix, head, rest))


def _is_folder(name: str) -> bool:
    try:
        folder_epoch(name)
    except CheckpointError:
        return False
    return True


def _load(load: Callable[[Path], None], local: Path) -> None:
    try:
        load(local)
    except Exception as e:  # noqa: BLE001 - h5py, Keras and TF raise many types for one cause
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"Keras cannot load it: {type(e).__name__}: {first}") from None


def keras_loader(model) -> Callable[[Path], None]:
    """Load a local folder's state into the compiled `model` as BackupAndRestore will when fit
    begins (weights and optimizer, its step included), so that a checkpoint Keras cannot take
    is found before anything is claimed. A failed load puts back the state the model had, so
    that a fresh start does not begin from half a checkpoint."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # as BackupAndRestore does
    saved = [(v, v.numpy()) for v in [*model.weights, *model.optimizer.variables]]

    def load(local: Path) -> None:
        try:
            model.load_weights(str(local / WEIGHTS))
        except BaseException:
            for variable, value in saved:
                variable.assign(value)
            raise

    return load
