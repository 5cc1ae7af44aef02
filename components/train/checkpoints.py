"""Training that survives preemption: Keras' BackupAndRestore, mirrored into the store.

At the end of each epoch Keras writes the training state (the weights, the optimizer's
variables, including its step count, which drives the learning-rate schedule, and the epoch
number) into a local folder; `StoreCheckpoints` then copies it to the store under
`checkpoints/<run id>/epoch-<n>/`, with the epoch history, and only then points
`checkpoints/<run id>/LATEST.json` at it. A half-copied epoch is therefore never taken for a
complete one, and the previous epoch's folder is removed only after LATEST points past it.

A retried pod of the same run (the same run id) finds LATEST.json, copies that epoch back into
the local folder, and Keras resumes with the next epoch. Export removes the run's checkpoints;
`clean` removes those of runs that never exported.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common import spec
from components.common.log import get_logger
from components.common.store import Store, StoreError, join

LATEST = "LATEST.json"
HISTORY = "history.json"
log = get_logger("train")


def run_prefix(run_id: str) -> str:
    """`checkpoints/<run id>`: a run id is an opaque token, kept to safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id.strip())
    if not safe.strip("._"):
        raise ValueError(f"run id {run_id!r} cannot name a checkpoint folder")
    return join(spec.CHECKPOINTS_PREFIX, safe)


class StoreCheckpoints:
    """The per-run checkpoint folder in the store, and its local copy for Keras."""

    def __init__(self, store: Store, prefix: str, local: Path):
        self.store, self.prefix, self.local = store, prefix.strip("/"), Path(local)
        self.local.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return self.store.uri(self.prefix)

    def restore(self) -> tuple[int, list[dict]]:
        """Copy the latest complete epoch into the local folder: (epochs done, their history);
        (0, []) when the run has no checkpoint yet."""
        try:
            latest = json.loads(self.store.get_bytes(join(self.prefix, LATEST)))
        except StoreError:
            return 0, []
        folder = join(self.prefix, latest["folder"])
        for info in self.store.list(folder):
            target = self.local / info.key[len(folder) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.get_file(info.key, target)
        history = json.loads((self.local / HISTORY).read_text())
        log.info(
            "resuming after epoch %d from the checkpoint at %s",
            latest["epoch"],
            self.store.uri(folder),
        )
        return int(latest["epoch"]), history

    def publish(self, epoch: int, history: list[dict]) -> None:
        """Copy the local folder (as Keras left it after `epoch`) to the store, then point
        LATEST.json at it, then drop the previous epoch's folder."""
        (self.local / HISTORY).write_text(json.dumps(history))
        folder = f"epoch-{epoch:04d}"
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            self.store.put_file(
                join(self.prefix, folder, path.relative_to(self.local).as_posix()), path
            )
        previous = self._latest_folder()
        self.store.put_bytes(
            join(self.prefix, LATEST), json.dumps({"epoch": epoch, "folder": folder}).encode()
        )
        if previous and previous != folder:
            delete_all(self.store, join(self.prefix, previous))

    def _latest_folder(self) -> str | None:
        try:
            return json.loads(self.store.get_bytes(join(self.prefix, LATEST)))["folder"]
        except StoreError:
            return None


def delete_all(store: Store, prefix: str) -> int:
    """Delete every object under `prefix`; the count deleted."""
    keys = [info.key for info in store.list(prefix)]
    for key in keys:
        store.delete(key)
    return len(keys)


def remove_checkpoints(uri: str, s3_endpoint: str = "") -> None:
    """A run's checkpoints (`checkpoints/<run id>`) once its model is published (export)."""
    from components.common.store import open_store

    count = delete_all(open_store(uri, s3_endpoint), "")
    log.info("removed the run's %d checkpoint file(s) at %s", count, uri)
