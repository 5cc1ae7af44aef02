"""The train step's body: train here or on a TFJob, then write the model's provenance.

component.py is the KFP interface; this is the plain Python it calls, so the step can be run
and tested without kfp.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

from components.common import provenance
from components.store import open_store
from components.train.checkpoints import StoreCheckpoints, run_prefix
from components.train.config import TrainConfig


def run_step(
    cfg: TrainConfig, dataset_uri: str, store_uri: str, s3_endpoint: str, train_workers: int,
    worker_pod: str, run: dict, model_dir: str, report_path: str,
):  # fmt: skip
    """Train with `cfg` (on `train_workers` replicas when more than one); save the model and
    its provenance.json into `model_dir`, the report to `report_path`. `run`: the run's name
    and id and this task's id. (the result, the provenance record)."""
    if train_workers > 1:
        from components.train.multi import train_on_workers

        result, checkpoints_uri = train_on_workers(
            cfg, train_workers, worker_pod, run["id"], store_uri, s3_endpoint, dataset_uri,
            model_dir, report_path,
        )  # fmt: skip
    else:
        result, checkpoints_uri = _train_here(
            cfg, dataset_uri, store_uri, s3_endpoint, run["id"], model_dir, report_path
        )
    record = {
        "dataset_uri": dataset_uri,
        "dataset_digest": result.dataset_digest,
        "parameters": asdict(cfg),
        "versions": provenance.versions(),
        "run": run,
        "checkpoints_uri": checkpoints_uri,
        "test_accuracy": result.test_accuracy,
        "temperature": result.temperature,
        "trained_at": provenance.now(),
    }
    Path(model_dir, provenance.PROVENANCE_FILE).write_text(provenance.dumps(record))
    return result, record


def step_metrics(result) -> dict[str, float]:
    """What the step logs as its metrics (the KFP UI's table): test accuracy and loss, the
    training time, the probabilities' temperature (1: not calibrated), and the last epoch's
    validation accuracy when some examples were held out."""
    metrics = {
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "train_seconds": round(result.seconds, 1),
        "temperature": round(result.temperature, 4),
    }
    last = result.history[-1] if result.history else {}
    if "validation_accuracy" in last:
        metrics["validation_accuracy"] = last["validation_accuracy"]
    return metrics


def _train_here(cfg, dataset_uri, store_uri, s3_endpoint, run_id, model_dir, report_path):
    """Train in this process, each epoch checkpointed under the store's checkpoints/<run id>."""
    from components.train.trainer import train_from_store

    with tempfile.TemporaryDirectory() as work:
        checkpoints = StoreCheckpoints(
            open_store(store_uri, s3_endpoint), run_prefix(run_id), Path(work, "checkpoint")
        )
        result = train_from_store(
            open_store(dataset_uri, s3_endpoint), "", cfg, model_dir, work, report_path,
            checkpoints,
        )  # fmt: skip
    return result, checkpoints.uri
