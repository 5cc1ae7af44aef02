"""The last task of a sharded batch-predict: join the finished shards (shards.py) into one
predictions.csv, the same bytes one batch-predict task writes, and the same reports, with
max_failed_fraction applied to the whole run. Nothing is published unless all of it is good.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from components.batch_predict import predictor
from components.batch_predict.model import BatchPredictError
from components.batch_predict.report import Tally, merged_tally
from components.batch_predict.shards import MERGED_FILE, finished, read_plan, shard_folder
from components.batch_predict.stream import _decode_chunk
from components.common import provenance, spec
from components.common.log import get_logger
from components.common.parameters import DEFAULTS
from components.store import Skipped, Store, StoreError, open_store

log = get_logger("batch_predict")
_HEADER = (",".join(spec.PREDICTIONS_HEADER) + "\r\n").encode()  # as csv.writer writes it


def merge(
    plan_uri: str,
    results_uri: str,
    s3_endpoint: str = "",
    max_failed_fraction: float = DEFAULTS["max_failed_fraction"],
    model_label: str = "",
    lineage: dict | None = None,
    parts: bool = False,
) -> dict:
    """Join the finished shards into `<results_uri>/predictions.csv` and the reports; the same
    summary as `predictor.batch_predict`. Refused, with nothing published (and an earlier
    result withdrawn), when a shard is not finished or too many images failed.

    `parts` (for runs too large for one file): publish `predictions.parts.json`, the shards'
    CSVs in order (each with the header, its rows and its URI), and keep them, instead of
    joining them; an earlier predictions.csv is withdrawn. The reports are the same."""
    plan_store = open_store(plan_uri, s3_endpoint)
    results = open_store(results_uri, s3_endpoint)
    record = read_plan(plan_store)
    images_uri = record["images_uri"]
    before = None if parts else _merged_before(plan_store, results, record)
    name = spec.PREDICTIONS_PARTS if parts else spec.PREDICTIONS_CSV
    try:
        records = []
        for index in range(record["shards"]):
            done = finished(plan_store, record, index, part=before is None)
            if done is None:
                raise BatchPredictError(f"shard {index} of {record['shards']} is not finished")
            records.append(done)
        tally = merged_tally(records)
        predictor._check_outcome(tally, images_uri, max_failed_fraction)
        if before is not None:  # a retried merge: published, and the parts are gone
            log.info("the plan was merged already into %s", results.uri(spec.PREDICTIONS_CSV))
            return _summary(tally, before["predictions_uri"], record, model_label,
                            before["made_from"], s3_endpoint)  # fmt: skip
        made_from = None
        if lineage is not None:
            made_from = {
                **lineage,
                "images_uri": images_uri,
                "predictions_uri": results.uri(name),
                "images": tally.total,
                "predicted": tally.predicted,
                "failed": tally.failed,
                "predicted_at": provenance.now(),
                "shards": record["shards"],
            }
        with tempfile.TemporaryDirectory(prefix="merge-") as work:
            result = Path(work) / name
            if parts:
                result.write_bytes(_parts_manifest(plan_store, records))
            else:
                _join_parts(plan_store, record["shards"], result)
            if made_from is not None:  # before the result: it is the last file written
                results.put_bytes(provenance.PROVENANCE_FILE, provenance.dumps(made_from).encode())
            results.put_file(name, result)
            size = result.stat().st_size
        # an earlier run's result of the other kind is not this one's
        predictor.withdraw(results, spec.PREDICTIONS_CSV if parts else spec.PREDICTIONS_PARTS)
    except BatchPredictError:
        _withdraw(results)
        raise
    uri = results.uri(name)
    if not parts:
        _remove_parts(plan_store, record, uri, size, made_from)
    log.info("%d classified, %d failed in %d shards; predictions at %s",
             tally.predicted, tally.failed, record["shards"], uri)  # fmt: skip
    return _summary(tally, uri, record, model_label, made_from, s3_endpoint)


def _parts_manifest(plan_store: Store, records: list[dict]) -> bytes:
    """predictions.parts.json: the shards' CSVs in order; read one after the other, each
    without its header line, they are the rows one predictions.csv would hold."""
    listed = [
        {"uri": plan_store.uri(f"{shard_folder(i)}/{spec.PREDICTIONS_CSV}"), "rows": done["rows"]}
        for i, done in enumerate(records)
    ]
    rows = sum(part["rows"] for part in listed)
    return json.dumps(
        {"header": list(spec.PREDICTIONS_HEADER), "rows": rows, "parts": listed}, indent=1
    ).encode()


def _withdraw(results: Store) -> None:
    """Neither an earlier predictions.csv nor an earlier parts manifest stays for a failed run."""
    predictor.withdraw(results, spec.PREDICTIONS_CSV)
    predictor.withdraw(results, spec.PREDICTIONS_PARTS)


def _join_parts(plan_store: Store, shards: int, merged: Path) -> None:
    """The shards' CSVs, one header, rows in shard order, streamed (never whole in memory)."""
    part = merged.with_name("part.csv")
    with open(merged, "wb") as out:
        out.write(_HEADER)
        for index in range(shards):
            plan_store.get_file(f"{shard_folder(index)}/{spec.PREDICTIONS_CSV}", part)
            with open(part, "rb") as f:
                if f.read(len(_HEADER)) != _HEADER:
                    raise BatchPredictError(f"shard {index}'s {spec.PREDICTIONS_CSV} has no header")
                shutil.copyfileobj(f, out, 1 << 20)
            part.unlink()


def _merged_before(plan_store: Store, results: Store, record: dict) -> dict | None:
    """MERGED.json, when this plan's result is published already and still there (a retried
    merge task, after the parts were removed), else None."""
    try:
        merged = json.loads(plan_store.get_bytes(MERGED_FILE))
    except (StoreError, ValueError):
        return None
    published = results.stat(spec.PREDICTIONS_CSV)
    if merged.get("manifests") != record["manifests"] or published is None:
        return None
    return merged if published.size == merged.get("bytes") else None


def _remove_parts(plan_store: Store, record: dict, uri: str, size: int, made_from) -> None:
    """Record the merge (MERGED.json), then remove the shards' CSVs: predictions.csv holds
    them now. Their DONE.json stay, small, for a retried merge's reports. A part that cannot
    be removed is a warning: the result is published."""
    merged = {"manifests": record["manifests"], "predictions_uri": uri, "bytes": size,
              "made_from": made_from}  # fmt: skip
    try:
        plan_store.put_bytes(MERGED_FILE, json.dumps(merged).encode())
        for index in range(record["shards"]):
            plan_store.delete(f"{shard_folder(index)}/{spec.PREDICTIONS_CSV}")
    except StoreError as e:
        log.warning("the shards' parts under %s stay: %s", plan_store.uri(), e)


def _pixels(blob: bytes | str):
    """The 28x28 the model saw, as batch-predict made it, or None."""
    (pixels,) = _decode_chunk([blob])
    return None if isinstance(pixels, str) else pixels


def _summary(
    tally: Tally, uri: str, record: dict, model_label: str, lineage: dict | None, endpoint: str
) -> dict:
    """predictor.batch_predict's summary, the gallery's 28x28s decoded again (a few dozen)."""
    from components.batch_predict.report import gallery, summary

    store = open_store(record["images_uri"], endpoint)
    blobs = predictor.pictured(store, [row[0] for row, _ in gallery(tally)])  # each GET once
    for kind in (tally.failures, tally.unsure, tally.sure):  # only the gallery's are pictured
        kind[:] = [(row, _pixels(blobs[row[0]]) if row[0] in blobs else None) for row, _ in kind]
    thumbnails = predictor.thumbnails(blobs)
    skipped = [Skipped(*pair) for pair in record["skipped_examples"]]
    return {
        **summary(tally, uri, skipped, thumbnails, model_label, lineage, record["skipped"]),
        "shards": record["shards"],
    }
