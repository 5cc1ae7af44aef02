"""Train the digit classifier: a small batch-normalised CNN that takes raw uint8 pixels.

The model scales its own input (0..255 -> 0..1), so the exported serving signature feeds it
exactly what an image file holds and training and serving cannot disagree. A one-cycle schedule
(warm-up, then cosine decay) and light shift augmentation reach high accuracy in few epochs,
which is what a CPU laptop and a paid GPU node both want.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from components.common import spec
from components.common.log import get_logger
from components.train import calibration
from components.train import callbacks as callbacks_
from components.train import devices as devices_
from components.train import model as model_
from components.train.config import TrainConfig

log = get_logger("train")


@dataclass
class TrainResult:
    model: object  # keras.Model
    # None, the three of them, when trained with no test set (a Katib trial: train's test_data)
    test_accuracy: float | None
    test_loss: float | None
    confusion: list[list[int]] | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    # per test image: the predicted class and its probability (for the report's mistakes)
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None
    dataset_digest: str = ""  # of the data it was trained on (components/common/provenance.py)
    # the probabilities' temperature, fitted on the validation split (calibration.py); 1.0: none
    temperature: float = 1.0


def train(
    train_data, test_data, cfg: TrainConfig, on_epoch=None, checkpoints=None, devices=None
) -> TrainResult:
    """Fit on `train_data` (images, labels), evaluate on `test_data`; log each epoch.

    `test_data` None (a Katib trial, scored on its validation split): no test set is evaluated,
    after an epoch nor at the end; the rows have no test columns, the result no test figures.

    The seeds are set once, here, and TensorFlow's ops made deterministic (cfg.deterministic):
    the same data and config give the same weights. With `cfg.validation_split`, the last
    share of the training examples is held out and each epoch's row gains its
    validation_accuracy and validation_loss. With `checkpoints` (a StoreCheckpoints:
    components/train/checkpoints.py), the training state is saved after every epoch, and a run
    that finds one resumes after it. With more than one GPU (or `devices`), the replicas train
    in step (choose_strategy, scaled), their batch normalisation synchronized. The validation
    split also calibrates the model's probabilities (calibration.py), after the last epoch.
    """
    model_.seed_everything(cfg.seed, cfg.deterministic)
    (images, labels), validation = model_.split(train_data, cfg)
    log.info(
        "training on %d examples, validating on %d, testing on %d, %s; %s",
        len(images),
        len(validation[0]) if validation else 0,
        len(test_data[0]) if test_data is not None else 0,
        devices_.describe_devices(),
        asdict(cfg),
    )
    strategy = devices_.choose_strategy(devices)
    replicas = strategy.num_replicas_in_sync
    cfg = devices_.scaled(cfg, replicas)
    if replicas > 1:
        log.info(
            "%d replicas (MirroredStrategy): global batch %d, peak learning rate %g",
            replicas,
            cfg.batch_size,
            cfg.learning_rate,
        )
    steps = -(-len(images) // cfg.batch_size)
    if devices_.use_mixed_precision():
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision (float16 compute): every GPU has compute capability >= 7.0")
    epoch = model_.epoch_variable()  # which epoch's order and shifts train_ds yields
    train_ds = model_.dataset(images, labels, cfg, training=True, epoch=epoch)
    feed = devices_.input_rate(train_ds)
    with strategy.scope():
        model = model_.build_model(dropout=cfg.dropout, synchronized=replicas > 1)
        model.compile(
            optimizer=model_.optimizer(cfg, steps),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    test_ds = model_.dataset(*test_data, cfg=cfg, training=False) if test_data is not None else None
    validation_ds = model_.dataset(*validation, cfg=cfg, training=False) if validation else None
    callback = callbacks_.epoch_logger(test_ds, on_epoch, cfg.epochs, steps, len(images), feed)
    callbacks = [callback]
    if checkpoints is not None:
        callbacks = _resumed(model, strategy, checkpoints, callback)
    callbacks.insert(0, callbacks_.epoch_setter(epoch))
    start = time.monotonic()
    model.fit(
        train_ds,
        validation_data=validation_ds,  # Keras adds val_loss and val_accuracy to the epoch's logs
        epochs=cfg.epochs,
        verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=callbacks,
    )
    # one measure of the training time, everywhere: the last epoch line's (which counts the
    # epochs a resumed run trained before, too), else fit's own
    seconds = callback.history[-1]["seconds"] if callback.history else time.monotonic() - start
    temperature = 1.0
    if validation_ds is not None:
        held = model.predict(validation_ds, verbose=0)
        temperature = calibration.calibrate(model, held, validation[1], log)
    if test_ds is None:
        return TrainResult(model, None, None, None, callback.history, seconds,
                           temperature=temperature)  # fmt: skip
    return _evaluated(model, test_ds, test_data[1], callback.history, seconds, temperature)


def _resumed(model, strategy, checkpoints, callback) -> list:
    """Restore the last checkpoint into `model` (and the epoch lines' history and clock); the
    callbacks that save each epoch's state and publish it to the store."""
    from components.train.checkpoints import keras_loader

    with strategy.scope():  # the optimizer's variables are built, and loaded, here
        _, callback.history = checkpoints.restore(keras_loader(model))
    seconds = callback.history[-1].get("seconds") if callback.history else None
    if isinstance(seconds, float | int):  # times and estimates go on from where they stopped
        callback._start -= seconds
    backup = callbacks_.timed_backup(checkpoints)
    return [
        backup,  # first: it restores the state at the start and saves it before the others
        callback,
        callbacks_.publisher(checkpoints, callback, backup),
    ]


def _evaluated(
    model, test_ds, labels, history: list, seconds: float, temperature: float
) -> TrainResult:
    """The trained model's test accuracy and loss, confusion matrix and per-image answers."""
    probabilities = model.predict(test_ds, verbose=0)
    loss, accuracy = model.evaluate(test_ds, verbose=0)
    predicted = probabilities.argmax(axis=1)
    matrix = model_.confusion_matrix(labels, predicted)
    log.info("final: test accuracy %.4f, test loss %.4f", accuracy, loss)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    return TrainResult(
        model, float(accuracy), float(loss), matrix, history, seconds, predicted, confidence,
        temperature=temperature,
    )  # fmt: skip


def train_from_store(
    store, dataset_prefix: str, cfg: TrainConfig, model_dir, work, report_path=None,
    checkpoints=None,
) -> TrainResult:  # fmt: skip
    """Fetch the dataset the manifest lists, train, and save `model.keras` into `model_dir`;
    with `report_path`, write the HTML report there (components/train/report.py); with
    `checkpoints`, resume from and save to them (components/train/checkpoints.py)."""
    from pathlib import Path

    from components.dataset import mnist
    from components.dataset.manifest import dataset_digest, fetch_dataset

    data = Path(work) / "data"
    manifest = fetch_dataset(store, dataset_prefix, data)
    test = mnist.load_split(data, "test")
    result = train(mnist.load_split(data, "train"), test, cfg, checkpoints=checkpoints)
    result.dataset_digest = dataset_digest(manifest["files"])
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    result.model.save(Path(model_dir) / spec.MODEL_FILE)
    if report_path is not None:
        from components.train.report import training_report

        Path(report_path).write_text(training_report(result, *test, cfg))
    return result
