"""The train step with `workers` > 1: run the TFJob, then take its chief's model and report
into the step's own artifacts, so that export, the gate and the UI see what they always see."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from components.common import spec
from components.common.units import env_number
from components.store import join, open_store

TIMEOUT_ENV = "MNIST_TFJOB_TIMEOUT"  # seconds to wait for the TFJob; default one day


def train_on_workers(
    cfg, workers: int, worker_pod: str, run_id: str, store_uri: str, s3_endpoint: str,
    dataset_uri: str, model_dir: str, report_path: str,
):  # fmt: skip
    """(a TrainResult-like summary, the run's checkpoints URI, which export removes)."""
    from components.common.kube import own_namespace
    from components.train.checkpoints import run_prefix
    from components.train.tfjob import train_with_tfjob

    out, result = train_with_tfjob(
        run_id,
        own_namespace(),
        workers,
        store_uri,
        s3_endpoint,
        dataset_uri,
        cfg,
        json.loads(worker_pod),
        env_number(TIMEOUT_ENV, 24 * 3600),
    )
    chief = open_store(out, s3_endpoint)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    chief.get_file(spec.MODEL_FILE, Path(model_dir) / spec.MODEL_FILE)
    chief.get_file("report.html", Path(report_path))
    summary = SimpleNamespace(**{k: result[k] for k in
                                 ("test_accuracy", "test_loss", "confusion", "history", "seconds",
                                  "dataset_digest", "temperature")})  # fmt: skip
    return summary, open_store(join(store_uri, run_prefix(run_id)), s3_endpoint).uri()
