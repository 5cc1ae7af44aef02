"""What `clean` may delete: only what the pipeline itself writes, never outside the store.

Ours: under `datasets/mnist`, the manifest and the files it lists (or the four MNIST names);
under `models/mnist`, numbered version folders; under `predictions`, the files batch-predict
writes; anywhere under those, the `.part-*` files of an interrupted write, and on S3 the
multipart uploads never completed. Everything else found there is listed as "not ours, kept".
Symbolic links are never followed (the folder store does not follow them, and checks each file
and folder just before it removes it), so a linked prefix cannot lead `clean` outside the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from components.common import spec
from components.dataset import mnist
from components.store import LocalStore, ObjectInfo, S3Store, Store, StoreError, join

PREDICTION_FILES = (spec.PREDICTIONS_CSV, spec.PREDICTIONS_PARTS, "provenance.json")
_NUMBERED = r"\d{5}"  # spec.SHARD_MANIFEST's and spec.SHARD_FOLDER's "{:05d}"
_SHARD_FILE = re.compile(
    "|".join(
        [re.escape(spec.SHARD_PLAN), re.escape(spec.SHARD_MERGED)]
        + [re.escape(spec.SHARD_MANIFEST).replace(re.escape("{:05d}"), _NUMBERED)]
        + [f"{_NUMBERED}/{re.escape(name)}" for name in (spec.SHARD_DONE, spec.PREDICTIONS_CSV)]
    )
)
_DATASET_NAMES = {spec.MANIFEST} | {f.name for f in mnist.FILES} | {f.gz_name for f in mnist.FILES}


@dataclass
class Plan:
    delete: list[ObjectInfo] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (key, upload id) to abort
    prefixes: tuple[str, ...] = ()


def _dataset_names(store: Store) -> set[str]:
    """The dataset's own file names: the fixed MNIST names, and whatever its manifest lists."""
    try:
        listed = json.loads(store.get_bytes(join(spec.DATASET_PREFIX, spec.MANIFEST)))["files"]
        return _DATASET_NAMES | {str(name) for name in listed}
    except (StoreError, ValueError, KeyError, TypeError):
        return _DATASET_NAMES


def _is_ours(prefix: str, rel: str, dataset_names: set[str]) -> bool:
    """Whether `rel` (a key relative to `prefix`) is something the pipeline writes there."""
    if prefix == spec.DATASET_PREFIX:
        return rel in dataset_names
    if prefix == spec.MODELS_PREFIX:
        return spec.version_number(rel.split("/", 1)[0]) is not None
    if prefix == spec.PREDICTIONS_PREFIX:
        return rel.rsplit("/", 1)[-1] in PREDICTION_FILES or _is_shard_file(rel)
    if prefix == spec.CHECKPOINTS_PREFIX:
        return True  # a run's training checkpoints, left by a run that never exported
    return True  # images, and only with --include-images


def _is_shard_file(rel: str) -> bool:
    """A sharded batch-predict's file: `<version>/shards/` then its plan, its manifests, a
    shard's part and marker (components/batch_predict/shards.py)."""
    # the last "/shards/": a results folder of the user's may be called "shards" too
    _, found, inside = rel.rpartition(f"/{spec.SHARDS_FOLDER}/")
    return bool(found) and _SHARD_FILE.fullmatch(inside) is not None


def plan(store: Store, include_images: bool) -> Plan:
    """Sort what lies under the pipeline's prefixes into what to delete and what to keep."""
    prefixes = (
        spec.DATASET_PREFIX,
        spec.MODELS_PREFIX,
        spec.PREDICTIONS_PREFIX,
        spec.CHECKPOINTS_PREFIX,
    )
    result = Plan(prefixes=prefixes + ((spec.IMAGES_PREFIX,) if include_images else ()))
    dataset_names = _dataset_names(store)
    for prefix in result.prefixes:
        objects, skipped = store.scan(prefix)
        for info in objects:
            rel = info.key[len(prefix) + 1 :]
            if _is_ours(prefix, rel, dataset_names):
                result.delete.append(info)
            else:
                result.kept.append((info.key, "not ours"))
        for key, why in skipped:
            if key.rsplit("/", 1)[-1].startswith(".part-"):
                result.delete.append(ObjectInfo(key, 0))
            else:
                result.kept.append((key, why))
        if isinstance(store, S3Store):
            result.uploads += store.incomplete_uploads(prefix)
    return result


def execute(store: Store, todo: Plan) -> None:
    """Delete what `todo` lists; on a folder, then remove the folders it left empty."""
    for info in todo.delete:
        store.delete(info.key)
    for key, upload_id in todo.uploads:
        store.abort_upload(key, upload_id)
    if isinstance(store, LocalStore):
        for prefix in todo.prefixes:
            store.remove_empty_folders(prefix)
