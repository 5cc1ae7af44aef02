"""The batch loop: classify a stream of decoded images in batches, one CSV row per image.

Each row is written as soon as it is known (with a cell a spreadsheet would run as a formula
neutralised), the first RESULT_LINES images also get a log line in the tutorial's words, and a
model that fails on a batch fails the step rather than a row. Publishing the CSV, and deciding
whether the run is good enough to publish, is predictor.py's.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from components.batch_predict.model import BatchPredictError, Classifier
from components.batch_predict.report import Row, Tally
from components.batch_predict.stream import Item
from components.common import spec
from components.common.log import Progress, get_logger
from components.common.redact import printable

log = get_logger("batch_predict")
RESULT_LINES = 20  # images logged one line each; the CSV and the reports have every one


def write_predictions(
    stream: Iterable[Item],
    classify_rows: Callable[[list[Item]], list[Row]],
    csv_path: Path,
    batch_size: int,
    total: int,
) -> Tally:
    """Classify the stream in batches, writing one CSV row per image. The first RESULT_LINES
    images also get a log line each, in the tutorial's words (one record per batch, so the hot
    loop pays no handler flush per image); then a count says how many more the CSV holds."""
    tally = Tally()
    progress = Progress(log, "batch-predict", total)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(spec.PREDICTIONS_HEADER)
        for batch in _batches(stream, batch_size):
            lines = []
            for item, row in zip(batch, classify_rows(batch), strict=True):
                writer.writerow([spreadsheet_safe(cell) for cell in row])
                if tally.total < RESULT_LINES:
                    lines.append(result_line(row))
                tally.add(row, item.pixels)
            if lines:
                log.info("\n".join(lines))  # ours: one line per image, keys made printable
            progress.update(len(batch))
    if tally.total > RESULT_LINES:
        log.info("... and %d more results in %s", tally.total - RESULT_LINES, spec.PREDICTIONS_CSV)
    return tally


def spreadsheet_safe(cell: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula (`=cmd|...`), as OWASP advises:
    a leading `= + - @`, tab or carriage return gets a `'` before it."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _batches(stream: Iterable[Item], size: int) -> Iterable[list[Item]]:
    batch: list[Item] = []
    for item in stream:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _classify_batch(batch: list[Item], classify: Classifier, low: float) -> list[Row]:
    """Rows for a batch, in order (images that failed to load keep their error)."""
    good = [item for item in batch if item.pixels is not None]
    results = iter(())
    if good:
        try:
            probabilities, classes = classify(np.stack([item.pixels for item in good]))
        except Exception as e:  # a broken model fails the step, not a row
            raise BatchPredictError(f"the model failed on a batch: {e}") from e
        confidences = probabilities[np.arange(len(good)), classes]
        results = iter(zip(classes.tolist(), confidences.tolist(), strict=True))
    rows = []
    for item in batch:
        if item.pixels is None:
            rows.append((item.key, "", "", item.error, ""))
            continue
        digit, confidence = next(results)
        unsure = confidence < low
        rows.append((item.key, str(digit), f"{confidence:.4f}", "", "yes" if unsure else ""))
    return rows


def result_line(row: Row) -> str:
    """One image in the tutorial's words: `7.jpg: The result: [7]`. The key is shown on one
    line (a newline in a file name cannot forge a line of the log)."""
    key, digit, confidence, error, low = row
    key = printable(key)
    if error:
        return f"{key}: error: {error}"
    note = f"  (low confidence {float(confidence):.2f})" if low else ""
    return f"{key}: The result: [{digit}]{note}"
