"""`python -m components.train.distributed`: one replica of a multi-worker training (a TFJob).

The Training Operator starts this in every replica with TF_CONFIG set; the replicas train in
step with MultiWorkerMirroredStrategy. The model, the data pipeline, the optimizer and its
schedule, and the batch and learning-rate scaling are the train step's own
(components/train/trainer.py). The loop is a custom one (`strategy.run`): Keras 3's `fit`
fails under MultiWorkerMirroredStrategy with more than one worker ("Attempt to convert a value
(PerReplica...)"), with TensorFlow 2.21 and Keras 3.15.

Only the chief's outputs are kept: it writes `model.keras` and `report.html` under --out in the
store, then `result.json` last (its presence means the outputs are complete). The other
replicas save into a temporary folder that is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from components.train.callbacks import validation_text
from components.train.config import FIELDS, TrainConfig, add_flags

RESULT = "result.json"


def task() -> tuple[str, int, dict]:
    """(task type, index, cluster) from TF_CONFIG; a single chief when there is none."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    t = config.get("task", {})
    return t.get("type", "chief"), int(t.get("index", 0)), config.get("cluster", {})


def is_chief(kind: str, index: int, cluster: dict) -> bool:
    """The chief replica, or worker 0 when the cluster has no chief."""
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def predict(model, images):
    """Probabilities from this replica alone (a direct call, no collective operation): each
    replica may do it on its own, and the chief after the others have gone."""
    import numpy as np

    return np.concatenate(
        [np.asarray(model(images[i : i + 512], training=False)) for i in range(0, len(images), 512)]
    )


def scores(model, images, labels) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` on these examples, from this replica alone."""
    import numpy as np

    probabilities = predict(model, images)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    loss = float(np.mean(-np.log(probabilities[np.arange(len(labels)), labels] + 1e-7)))
    return accuracy, loss


def train_step(strategy, model, optimizer, global_batch: int):
    """One step in step on every replica: each one's gradient of its share of the loss summed
    over replicas is the gradient of the global batch's mean loss, which the step returns."""
    import tensorflow as tf

    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(reduction="none")

    @tf.function
    def step(batch):
        def one(x, y):
            with tf.GradientTape() as tape:
                per_example = loss_fn(y, model(x, training=True))
                # divided by the GLOBAL batch: the replicas' sum is then the global mean
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(one, args=batch), None)

    return step


def fit(strategy, train_data, test_data, cfg, log):
    """Train with `strategy` (a custom loop); returns (model, history, temperature). Seeded,
    split and calibrated as the train step does (components/train/trainer.py): the same seed,
    the same model."""
    from components.train import calibration, devices
    from components.train import model as model_

    model_.seed_everything(cfg.seed, cfg.deterministic)
    (images, labels), validation = model_.split(train_data, cfg)
    replicas = strategy.num_replicas_in_sync
    cfg = devices.scaled(cfg, replicas)
    steps = -(-len(images) // cfg.batch_size)
    log.info("%d replicas (MultiWorkerMirroredStrategy): global batch %d", replicas, cfg.batch_size)
    with strategy.scope():
        model = model_.build_model(dropout=cfg.dropout, synchronized=True)
        optimizer = model_.optimizer(cfg, steps)
    step = train_step(strategy, model, optimizer, cfg.batch_size)
    data_epoch = model_.epoch_variable()
    batches = strategy.experimental_distribute_dataset(
        model_.dataset(images, labels, cfg, training=True, epoch=data_epoch)
    )
    history, start = [], time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        data_epoch.assign(epoch - 1)  # Keras' numbering, as the train step's
        total, n = 0.0, 0
        for batch in batches:
            total, n = total + float(step(batch)), n + 1
        row = {"epoch": epoch, "train_loss": total / n}
        if validation:
            row["validation_accuracy"], row["validation_loss"] = scores(model, *validation)
        row["test_accuracy"], row["test_loss"] = scores(model, *test_data)
        row["seconds"] = time.monotonic() - start
        history.append(row)
        log.info("epoch %d/%d: train loss %.4f, %stest accuracy %.4f", epoch, cfg.epochs,
                 row["train_loss"], validation_text(row), row["test_accuracy"])  # fmt: skip
    temperature = 1.0
    if validation:
        held = predict(model, validation[0])
        temperature = calibration.calibrate(model, held, validation[1], log)
    return model, history, temperature


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.train.distributed")
    parser.add_argument("--dataset-uri", required=True)
    parser.add_argument("--out", required=True, help="where the chief writes its outputs")
    parser.add_argument("--s3-endpoint", default="")
    add_flags(parser, required=FIELDS)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from components.common import spec
    from components.common.log import get_logger
    from components.dataset import mnist
    from components.dataset.manifest import dataset_digest, fetch_dataset
    from components.store import open_store
    from components.train.model import confusion_matrix
    from components.train.report import training_report
    from components.train.trainer import TrainResult

    log = get_logger("train")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    kind, index, cluster = task()
    cfg = TrainConfig.from_values(vars(args))
    with tempfile.TemporaryDirectory(prefix=f"train-{kind}-{index}-") as work:
        data = Path(work) / "data"
        manifest = fetch_dataset(open_store(args.dataset_uri, args.s3_endpoint), "", data)
        test = mnist.load_split(data, "test")
        model, history, temperature = fit(strategy, mnist.load_split(data, "train"), test, cfg, log)
        out = Path(work) / "out"
        out.mkdir()
        model.save(out / spec.MODEL_FILE)
        if not is_chief(kind, index, cluster):
            return 0  # its copy goes with the temporary folder
        probabilities = predict(model, test[0])
        predicted = probabilities.argmax(axis=1)
        result = TrainResult(
            model,
            history[-1]["test_accuracy"],
            history[-1]["test_loss"],
            confusion_matrix(test[1], predicted),
            history,
            history[-1]["seconds"],
            predicted,
            probabilities[np.arange(len(predicted)), predicted],
            temperature=temperature,
        )
        (out / "report.html").write_text(training_report(result, *test, cfg))
        store = open_store(args.out, args.s3_endpoint)
        for name in (spec.MODEL_FILE, "report.html"):
            store.put_file(name, out / name)
        summary = {
            "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss,
            "confusion": result.confusion,
            "history": history,
            "seconds": result.seconds,
            "dataset_digest": dataset_digest(manifest["files"]),
            "replicas": strategy.num_replicas_in_sync,
            "temperature": temperature,
        }
        store.put_bytes(RESULT, json.dumps(summary).encode())
        log.info("chief: model and report at %s", store.uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
