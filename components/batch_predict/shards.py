"""Batch-predict spread over pods: plan the shards, classify each, merge them into one result.

The pipeline compiled with `--shards N` runs these three in place of the one batch-predict task:

1. `plan`: lists the images once, a listing page at a time (keys go to a local file, not to
   memory), and writes N shard manifests (`keys-00000.txt`, contiguous runs of the sorted keys,
   each starting at a multiple of the batch size, so that every batch holds the images it would
   hold in one task and the model's floating-point results are the same to the last bit) and
   `plan.json` to `<results>/<version>/shards/`. KFP's ParallelFor then starts one task per
   shard, at most `parallelism` at a time.
2. `run_shard`: classifies its manifest's images as batch-predict does (the same stream, batch
   loop and CSV) into `<i>/predictions.csv`, then writes `<i>/DONE.json`: its counts, its
   first rows and failures (what the reports show), and the digest of the manifest it did. A
   shard whose DONE.json matches its manifest is skipped: a retried or resumed run does not
   classify a finished shard again.
3. `merge` (merge.py): checks every shard is done, joins the parts in order into one
   predictions.csv (the same bytes as one task would have written), applies
   max_failed_fraction to the whole run, and makes the same reports from the shards'
   records. Nothing is published unless all of it is good. Then it writes MERGED.json and
   removes the shards' CSVs (predictions.csv holds them); a retried merge finds MERGED.json,
   and a new plan removes it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import tempfile
from pathlib import Path

from components.batch_predict import predictor
from components.batch_predict.batches import _classify_batch
from components.batch_predict.model import BatchPredictError, Classifier
from components.batch_predict.report import tally_record
from components.batch_predict.stream import preprocess_stream
from components.common import provenance, spec
from components.common.errors import InputError
from components.common.log import get_logger
from components.common.parameters import DEFAULTS
from components.store import Skipped, Store, StoreError, open_store

log = get_logger("batch_predict")
PLAN_FILE, DONE_FILE, MERGED_FILE = spec.SHARD_PLAN, spec.SHARD_DONE, spec.SHARD_MERGED
SHARDS_FOLDER = spec.SHARDS_FOLDER
MAX_SHARDS = spec.MAX_SHARDS
BATCH_SIZE = inspect.signature(predictor.batch_predict).parameters["batch_size"].default
# Skipped files named in the plan (and so in the reports); more are counted, not named.
MAX_SKIPPED_NAMED = 1_000


def manifest_name(index: int) -> str:
    return spec.SHARD_MANIFEST.format(index)


_MANIFEST = re.compile(re.escape(spec.SHARD_MANIFEST).replace(re.escape("{:05d}"), r"(\d{5})"))


def manifest_uris(plan_store: Store, record: dict) -> list[str]:
    """The URIs of the plan's manifests: what ParallelFor hands each predict-shard task."""
    return [plan_store.uri(manifest_name(i)) for i in range(record["shards"])]


def parse_manifest_uri(uri: str) -> tuple[str, int]:
    """(the plan's URI, the shard's index) from a manifest's URI, or InputError."""
    plan_uri, _, name = uri.rpartition("/")
    match = _MANIFEST.fullmatch(name)
    if not plan_uri or not match:
        raise InputError(f"{uri!r} is not a shard manifest (<plan>/keys-NNNNN.txt)")
    return plan_uri, int(match.group(1))


def shard_folder(index: int) -> str:
    return spec.SHARD_FOLDER.format(index)


def plan(
    images_uri: str,
    plan_uri: str,
    shards: int,
    s3_endpoint: str = "",
    images_per_shard: int = 0,
    batch_size: int = BATCH_SIZE,
    model_uri: str = "",
) -> dict:
    """List `images_uri` once and write the shard manifests and plan.json under `plan_uri`.

    `shards` manifests, or with `images_per_shard` as many as that many images per shard
    need (at most `shards` when that is above 1); never more shards than batches. `model_uri`
    is recorded: every shard classifies with the model the plan was made for. Returns the
    plan (as plan.json holds it).
    """
    if not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"shards must be 1 to {MAX_SHARDS}, got {shards}")
    if images_per_shard < 0:
        raise InputError(f"images_per_shard must be 0 or more, got {images_per_shard}")
    store = open_store(images_uri, s3_endpoint)
    out = open_store(plan_uri, s3_endpoint)
    out.delete(MERGED_FILE)  # a new plan is merged anew
    with tempfile.TemporaryDirectory(prefix="plan-") as work:
        listing = Path(work) / "keys.txt"
        total, skipped, examples = 0, 0, []
        with open(listing, "w", encoding="utf-8", newline="\n") as f:
            for entry in predictor.images_in(store.walk("")):
                if isinstance(entry, Skipped):
                    skipped += 1
                    if len(examples) < MAX_SKIPPED_NAMED:
                        examples.append(list(entry))
                    continue
                if "\n" in entry:  # one key a line ("\n") in the manifests
                    skipped += 1
                    if len(examples) < MAX_SKIPPED_NAMED:
                        examples.append([entry, "a key with a line break: not sharded"])
                    continue
                f.write(entry + "\n")
                total += 1
        if total == 0:
            extensions = ", ".join(spec.IMAGE_EXTENSIONS)
            raise BatchPredictError(f"no images ({extensions}) under {images_uri}")
        if images_per_shard:  # at most `shards` when that is above 1
            shards = min(-(-total // images_per_shard), shards if shards > 1 else MAX_SHARDS)
        shards = min(shards, -(-total // batch_size))
        digests = _write_manifests(listing, total, shards, out, Path(work), batch_size)
    record = {
        "images_uri": images_uri,
        "model_uri": model_uri,
        "total": total,
        "shards": shards,
        "batch_size": batch_size,
        "skipped": skipped,
        "skipped_examples": examples,
        "manifests": digests,
    }
    out.put_bytes(PLAN_FILE, json.dumps(record, indent=1).encode())
    log.info("planned %d shard(s) of %d images under %s", shards, total, images_uri)
    return record


def _write_manifests(
    listing: Path, total: int, shards: int, out: Store, work: Path, batch_size: int
) -> list[str]:
    """Shard i gets batches [i*n//shards, (i+1)*n//shards) of the listing's n batches (the
    last one short); the manifests' digests."""
    batches = -(-total // batch_size)
    digests = []
    with open(listing, encoding="utf-8", newline="\n") as keys:
        for index in range(shards):
            start = index * batches // shards * batch_size
            end = min((index + 1) * batches // shards * batch_size, total)
            part = work / manifest_name(index)
            with open(part, "w", encoding="utf-8", newline="\n") as f:
                for _ in range(end - start):
                    f.write(keys.readline())
            digests.append(provenance.sha256_file(part))
            out.put_file(manifest_name(index), part)
            part.unlink()
    return digests


def read_plan(plan_store: Store) -> dict:
    try:
        return json.loads(plan_store.get_bytes(PLAN_FILE))
    except (StoreError, ValueError) as e:
        raise BatchPredictError(f"no readable {PLAN_FILE} at {plan_store.uri()}: {e}") from e


def finished(plan_store: Store, record: dict, index: int, part: bool = True) -> dict | None:
    """The DONE.json of shard `index` when it matches the plan's manifest and (with `part`) its
    CSV is there."""
    folder = shard_folder(index)
    try:
        done = json.loads(plan_store.get_bytes(f"{folder}/{DONE_FILE}"))
    except (StoreError, ValueError):
        return None
    if done.get("manifest_sha256") != record["manifests"][index]:
        return None  # a different plan's shard
    if part and plan_store.stat(f"{folder}/{spec.PREDICTIONS_CSV}") is None:
        return None
    return done


def already_done(plan_store: Store, record: dict, index: int) -> dict | None:
    """Shard `index`'s DONE.json (with resumed=True) when it is finished, else None."""
    if not 0 <= index < record["shards"]:
        raise InputError(f"shard {index} is not one of the plan's {record['shards']}")
    done = finished(plan_store, record, index)
    if done is None:
        return None
    log.info("shard %d is finished already (%d rows): skipped", index, done["rows"])
    return {**done, "resumed": True}


def run_shard(
    plan_uri: str,
    index: int,
    classify: Classifier,
    s3_endpoint: str = "",
    min_confidence: float = DEFAULTS["min_confidence"],
    workers: int = 8,
    processes: int | None = None,
) -> dict:
    """Classify shard `index` of the plan at `plan_uri`, unless it is finished; its DONE.json.
    Batches are the plan's batch size, so they align with one task's."""
    plan_store = open_store(plan_uri, s3_endpoint)
    record = read_plan(plan_store)
    done = already_done(plan_store, record, index)
    if done is not None:
        return done
    manifest = plan_store.get_bytes(manifest_name(index))
    keys = manifest.decode("utf-8").split("\n")[:-1]  # not splitlines: "\x0c" may be in a key
    store = open_store(record["images_uri"], s3_endpoint)
    folder = open_store(plan_store.uri(shard_folder(index)), s3_endpoint)
    if processes is None:
        processes = predictor.auto_processes(len(keys))
    log.info("shard %d: classifying %d images", index, len(keys))
    batch_size = record["batch_size"]
    stream = preprocess_stream(store, keys, workers, 2 * batch_size, processes)
    rows = functools.partial(_classify_batch, classify=classify, low=min_confidence)
    tally = predictor._classify_and_publish(
        stream, rows, folder, batch_size, len(keys), check=lambda tally: None
    )
    done = {
        "shard": index,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "rows": tally.total,
        **tally_record(tally),
    }
    folder.put_bytes(DONE_FILE, json.dumps(done).encode())  # last: the shard is complete
    return {**done, "resumed": False}
