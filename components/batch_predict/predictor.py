"""Batch prediction: classify every image under a prefix and publish `predictions.csv`.

The step is a stream, so memory stays flat for any number of images: threads fetch a bounded
window of images ahead of the model (parallel GETs), decoder processes turn them into MNIST
arrays (see stream.py), the model classifies them in batches while the next ones are fetched
and decoded, and each row goes to a local CSV as soon as it is known. The CSV is uploaded only
when every image has a row and the failed share is acceptable, so a reader never takes a
partial or failed run for a result.

Decoder processes import the main module (as with spawn): call `batch_predict` from a module
or under `if __name__ == "__main__":`, as every entry point here does.

The pieces: model.py loads the model, batches.py runs the batch loop and writes the rows, and
this module lists the images, checks the outcome, publishes the CSV (and provenance.json) or
withdraws an earlier one, and sums the run up for the KFP UI.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from components.batch_predict.batches import _classify_batch, write_predictions
from components.batch_predict.model import BatchPredictError, Classifier
from components.batch_predict.report import Row, Tally, gallery, summary
from components.batch_predict.stream import Item, _fetch, available_cpus, preprocess_stream
from components.common import provenance, spec
from components.common.log import get_logger
from components.common.parameters import DEFAULTS, check
from components.store import ObjectInfo, Skipped, Store, StoreError, local_path, open_store

log = get_logger("batch_predict")
AUTO_PROCESSES = 1000  # from this many images, decoding pays for starting processes


def batch_predict(
    images_uri: str,
    results_uri: str,
    classify: Classifier,
    s3_endpoint: str = "",
    batch_size: int = 256,
    max_failed_fraction: float = 0.5,
    workers: int = 8,
    processes: int | None = None,
    min_confidence: float = DEFAULTS["min_confidence"],
    model_label: str = "",
    lineage: dict | None = None,
) -> dict:
    """Classify every image under `images_uri`; publish `<results_uri>/predictions.csv`.

    `workers` parallel GETs; `processes` decoder processes (None: one per core, up to 8, for
    batches of AUTO_PROCESSES images or more; 0: decode in the fetch threads).
    Returns predictions_uri, predicted, failed, total, markdown (a table for the KFP UI) and
    html (the report page; `model_label` says which model it names). With `lineage` (what
    the model was made from: components/common/provenance.py), a provenance.json goes next to
    predictions.csv, written before it: the CSV is the last file of a complete result.
    Raises BatchPredictError when no image could be classified, the failed share exceeds
    `max_failed_fraction` or the model fails; then nothing is published, and an earlier run's
    predictions.csv at `results_uri` is removed so that no one takes it for this run's.
    """
    _check_args(batch_size, max_failed_fraction, workers, processes)
    check("min_confidence", min_confidence)
    store, keys, skipped = open_images(images_uri, s3_endpoint)
    _log_skipped(skipped)
    results = open_store(results_uri, s3_endpoint)
    if processes is None:
        processes = auto_processes(len(keys))
    try:
        if not keys:
            extensions = ", ".join(spec.IMAGE_EXTENSIONS)
            raise BatchPredictError(f"no images ({extensions}) under {images_uri}")
        log.info("classifying %d images under %s", len(keys), images_uri)
        stream = preprocess_stream(store, keys, workers, 2 * batch_size, processes)
        outcome = functools.partial(
            _check_outcome, images_uri=images_uri, limit=max_failed_fraction
        )
        classify_rows = functools.partial(_classify_batch, classify=classify, low=min_confidence)
        record = None
        if lineage is not None:
            record = {
                **lineage,
                "images_uri": images_uri,
                "predictions_uri": results.uri(spec.PREDICTIONS_CSV),
            }
        tally = _classify_and_publish(
            stream, classify_rows, results, batch_size, len(keys), outcome, record
        )
    except BatchPredictError:
        withdraw(results)
        raise
    uri = results.uri(spec.PREDICTIONS_CSV)
    log.info("%d classified, %d failed; predictions at %s", tally.predicted, tally.failed, uri)
    pictures = thumbnails(pictured(store, [row[0] for row, _ in gallery(tally)]))
    return summary(tally, uri, skipped, pictures, model_label, record)


def pictured(store: Store, keys: list[str]) -> dict[str, bytes | str]:
    """The bytes of the images the report pictures (a few dozen at most), read again from the
    store eight at a time, or why one could not be read."""
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(keys, pool.map(functools.partial(_fetch, store), keys), strict=True))


def thumbnails(blobs: dict[str, bytes | str]) -> dict:
    """Small copies of the pictured images that can be read."""
    from components.reading.images import thumbnail

    pictures = {}
    for key, blob in blobs.items():
        picture = thumbnail(blob) if isinstance(blob, bytes) else None
        if picture is not None:
            pictures[key] = picture
    return pictures


def _classify_and_publish(
    stream: Iterator[Item],
    classify_rows: Callable[[list[Item]], list[Row]],
    results: Store,
    batch_size: int,
    total: int,
    check: Callable[[Tally], None],
    record: dict | None = None,
) -> Tally:
    """Write the rows to a local CSV and, if `check` accepts the run, upload it whole (after
    `record`, completed with the counts, as provenance.json)."""
    with tempfile.TemporaryDirectory(prefix="batch-predict-") as work:
        csv_path = Path(work) / spec.PREDICTIONS_CSV
        with contextlib.closing(stream):  # on failure, stop the fetch threads at once
            try:
                tally = write_predictions(stream, classify_rows, csv_path, batch_size, total)
            except BrokenProcessPool as e:
                raise BatchPredictError(f"an image decoder process died: {e}") from e
        check(tally)
        if record is not None:
            record.update(
                images=tally.total,
                predicted=tally.predicted,
                failed=tally.failed,
                predicted_at=provenance.now(),
            )
            results.put_bytes(provenance.PROVENANCE_FILE, provenance.dumps(record).encode())
        results.put_file(spec.PREDICTIONS_CSV, csv_path)
    return tally


def withdraw(results: Store, key: str = spec.PREDICTIONS_CSV) -> None:
    """Remove an earlier run's result (predictions.csv by default), so no one takes it for
    this run's; one that cannot be removed is a warning."""
    try:
        results.delete(key)
    except StoreError as e:
        log.warning("could not remove the earlier %s: %s", key, e)


def _check_args(
    batch_size: int, max_failed_fraction: float, workers: int, processes: int | None
) -> None:
    if processes is not None and processes < 0:
        raise ValueError(f"processes must be 0 or more, got {processes}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    check("max_failed_fraction", max_failed_fraction)


def open_images(images_uri: str, s3_endpoint: str = "") -> tuple[Store, list[str], list[Skipped]]:
    """The store holding the images, their keys (relative to `images_uri`) sorted, and what
    else is there and why it is not read.

    `images_uri` is a prefix (s3://bucket/prefix, a folder, file://) or one image file or object.
    Extensions match case-insensitively. Every other file is named as skipped, with the reason,
    by the same rules on S3 and in a folder (see `Store.scan`).
    """
    one_file = images_uri.lower().endswith(spec.IMAGE_EXTENSIONS)
    if one_file and (images_uri.startswith("s3://") or not local_path(images_uri).is_dir()):
        parent, _, name = images_uri.rstrip("/").rpartition("/")
        return open_store(parent or ".", s3_endpoint), [name], []
    store = open_store(images_uri, s3_endpoint)
    keys, skipped = [], []
    for entry in images_in(store.walk("")):
        (skipped if isinstance(entry, Skipped) else keys).append(entry)
    return store, keys, sorted(skipped)


def auto_processes(images: int) -> int:
    """How many processes decode `images` images: up to 8 (and the CPUs there are) from
    AUTO_PROCESSES images, else none (the fetch threads decode)."""
    return min(available_cpus(), 8) if images >= AUTO_PROCESSES else 0


def images_in(entries: Iterable[ObjectInfo | Skipped]) -> Iterator[str | Skipped]:
    """A store's walk as image keys (in its order) and Skipped for everything else."""
    for entry in entries:
        if isinstance(entry, Skipped):
            yield entry
        elif entry.key.lower().endswith(spec.IMAGE_EXTENSIONS):
            yield entry.key
        else:
            yield Skipped(entry.key, "not an image type read here")


def _log_skipped(skipped: list[Skipped], limit: int = 20) -> None:
    if not skipped:
        return
    log.warning("skipped %d file(s) that are not read as images:", len(skipped))
    for key, why in skipped[:limit]:
        log.warning("  skipped %s: %s", key, why)
    if len(skipped) > limit:
        log.warning("  ... and %d more", len(skipped) - limit)


def _check_outcome(tally: Tally, images_uri: str, limit: float) -> None:
    """Refuse a run where nothing was classified, or more than `limit` of the images failed."""
    examples = "; ".join(tally.errors)
    if tally.predicted == 0:
        raise BatchPredictError(
            f"no image under {images_uri} could be classified ({tally.failed} failed): {examples}"
        )
    share = tally.failed / tally.total
    if share > limit:
        raise BatchPredictError(
            f"{tally.failed} of {tally.total} images under {images_uri} failed ({share:.1%}, "
            f"more than max_failed_fraction {limit:.1%}); "
            f"nothing published. First errors: {examples}"
        )
