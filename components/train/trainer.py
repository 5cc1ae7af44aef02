"""Train the digit classifier: a small batch-normalised CNN that takes raw uint8 pixels.

The model scales its own input (0..255 -> 0..1), so the exported serving signature feeds it
exactly what an image file holds and training and serving cannot disagree. A one-cycle schedule
(warm-up, then cosine decay) and light shift augmentation reach high accuracy in few epochs,
which is what a CPU laptop and a paid GPU node both want.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from components.common import spec
from components.common.log import get_logger
from components.common.units import human_seconds
from components.dataset.mnist import NUM_CLASSES
from components.train.config import TrainConfig

log = get_logger("train")


@dataclass
class TrainResult:
    model: object  # keras.Model
    test_accuracy: float
    test_loss: float
    confusion: list[list[int]]
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    # per test image: the predicted class and its probability (for the report's mistakes)
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None
    dataset_digest: str = ""  # of the data it was trained on (components/common/provenance.py)


def build_model(seed: int = 42, widths: tuple[int, int, int] = (32, 64, 128)):
    """The CNN: uint8 [N, 28, 28] in, class probabilities [N, 10] out."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def conv_bn_relu(x, filters: int, kernel: int, strides: int, padding: str):
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
        # momentum 0.9: the moving statistics settle within an epoch even on small data sets
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=(28, 28), dtype="uint8", name="images")
    x = layers.Rescaling(1.0 / 255)(layers.Reshape((28, 28, 1))(inputs))
    # Strided convolutions instead of full-resolution ones and pooling: cheaper per epoch on a
    # CPU than the classic conv-pool-conv-pool net, and with batch norm it learns much faster.
    x = conv_bn_relu(x, widths[0], 5, 2, "same")  # 14x14
    x = conv_bn_relu(x, widths[1], 3, 2, "same")  # 7x7
    x = conv_bn_relu(x, widths[2], 3, 1, "valid")  # 5x5
    # Flatten keeps where each feature is; it learns faster than global average pooling here.
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    # float32 probabilities even under mixed precision (a no-op otherwise)
    outputs = layers.Dense(
        NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def _dataset(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, training: bool):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
    if training:
        ds = ds.shuffle(len(images), seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.batch_size)
    if training and cfg.augment:
        ds = ds.map(_shift, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _shift(images, labels):
    """Shift a whole batch by up to 2 pixels (pad, then crop at a random offset)."""
    import tensorflow as tf

    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2]])
    dy, dx = tf.unstack(tf.random.uniform([2], 0, 5, dtype=tf.int32))
    return padded[:, dy : dy + 28, dx : dx + 28], labels


def _optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = max(1, total // 5)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate / 10,
        decay_steps=max(1, total - warmup),
        warmup_target=cfg.learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )
    return keras.optimizers.Adam(learning_rate=schedule)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    return matrix.tolist()


def use_mixed_precision() -> bool:
    """Mixed precision (float16 compute) only when every visible GPU has tensor cores (compute
    capability 7.0 or more); never on the CPU, where it is slower."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    capabilities = [
        tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus
    ]
    return all(c is not None and tuple(c) >= (7, 0) for c in capabilities)


def input_rate(dataset, batches: int = 30) -> float:
    """Samples per second the input pipeline alone delivers (read, shuffle, batch, augment)."""
    start, samples = time.perf_counter(), 0
    for images, _ in dataset.take(batches):
        samples += int(images.shape[0])
    return samples / max(time.perf_counter() - start, 1e-9)


def choose_strategy(devices: list[str] | None = None):
    """MirroredStrategy over every visible GPU when there is more than one (or over `devices`,
    when given, e.g. logical CPU devices in tests), else TensorFlow's default strategy: on the
    CPU or one GPU nothing changes."""
    import tensorflow as tf

    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] if len(gpus) > 1 else None
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def scaled(cfg: TrainConfig, replicas: int) -> TrainConfig:
    """The settings for `replicas` replicas: `batch_size` stays the batch of one replica, so the
    global batch is `batch_size` x replicas, and the learning rate grows in proportion (the
    linear scaling rule; the schedule's warm-up keeps the first steps gentle), at most 1."""
    if replicas <= 1:
        return cfg
    return replace(
        cfg,
        batch_size=cfg.batch_size * replicas,
        learning_rate=min(1.0, cfg.learning_rate * replicas),
    )


def train(
    train_data, test_data, cfg: TrainConfig, on_epoch=None, checkpoints=None, devices=None
) -> TrainResult:
    """Fit on `train_data` (images, labels), evaluate on `test_data`; log each epoch.

    With `checkpoints` (a StoreCheckpoints: components/train/checkpoints.py), the training
    state is saved after every epoch, and a run that finds one resumes after it. With more
    than one GPU (or `devices`), the replicas train in step (choose_strategy, scaled).
    """
    images, labels = train_data
    if cfg.train_limit:
        images, labels = images[: cfg.train_limit], labels[: cfg.train_limit]
    log.info(
        "training on %d examples, testing on %d, %s; %s",
        len(images),
        len(test_data[0]),
        _devices(),
        asdict(cfg),
    )
    strategy = choose_strategy(devices)
    replicas = strategy.num_replicas_in_sync
    cfg = scaled(cfg, replicas)
    if replicas > 1:
        log.info(
            "%d replicas (MirroredStrategy): global batch %d, peak learning rate %g",
            replicas,
            cfg.batch_size,
            cfg.learning_rate,
        )
    steps = -(-len(images) // cfg.batch_size)
    if use_mixed_precision():
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision (float16 compute): every GPU has compute capability >= 7.0")
    train_ds = _dataset(images, labels, cfg, training=True)
    feed = input_rate(train_ds)
    with strategy.scope():
        model = build_model(cfg.seed)
        model.compile(
            optimizer=_optimizer(cfg, steps),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    test_ds = _dataset(*test_data, cfg=cfg, training=False)
    callback = _epoch_logger(test_ds, on_epoch, cfg.epochs, steps, len(images), feed)
    callbacks = [callback]
    if checkpoints is not None:
        from components.train.checkpoints import keras_loader

        with strategy.scope():  # the optimizer's variables are built, and loaded, here
            _, callback.history = checkpoints.restore(keras_loader(model))
        seconds = callback.history[-1].get("seconds") if callback.history else None
        if isinstance(seconds, float | int):  # times and estimates go on from where they stopped
            callback._start -= seconds
        backup = _timed_backup(checkpoints)
        callbacks = [
            backup,  # first: it restores the state at the start and saves it before the others
            callback,
            _publisher(checkpoints, callback, backup),
        ]
    start = time.monotonic()
    model.fit(
        train_ds,
        epochs=cfg.epochs,
        verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=callbacks,
    )
    seconds = time.monotonic() - start
    probabilities = model.predict(test_ds, verbose=0)
    loss, accuracy = model.evaluate(test_ds, verbose=0)
    matrix = confusion_matrix(test_data[1], probabilities.argmax(axis=1))
    log.info("final: test accuracy %.4f, test loss %.4f", accuracy, loss)
    predicted = probabilities.argmax(axis=1)
    return TrainResult(
        model,
        float(accuracy),
        float(loss),
        matrix,
        callback.history,
        seconds,
        predicted,
        probabilities[np.arange(len(predicted)), predicted],
    )


def _devices() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else f"CPU only ({os.cpu_count()} cores)"


def _timed_backup(checkpoints):
    """Keras' BackupAndRestore, timing each save (the resume overhead, logged by _publisher)."""
    import keras

    class TimedBackup(keras.callbacks.BackupAndRestore):
        seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            self.seconds = time.perf_counter() - start

    return TimedBackup(str(checkpoints.local), save_freq="epoch", delete_checkpoint=False)


def _publisher(checkpoints, logger, backup):
    """After each epoch (and after BackupAndRestore saved it): copy it to the store, and log
    what the checkpoint cost against the epoch."""
    import keras

    class Publish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            checkpoints.publish(epoch + 1, logger.history)
            copied = time.perf_counter() - start
            log.info(
                "checkpoint of epoch %d: saved in %.2f s, copied to the store in %.2f s "
                "(the epoch's training took %.1f s)",
                epoch + 1,
                backup.seconds,
                copied,
                logger.train_seconds,
            )

    return Publish()


EPOCH_PROGRESS_SECONDS = 10.0  # inside a long epoch, a progress line this often


def _epoch_logger(test_ds, on_epoch, epochs: int, steps: int, samples: int = 0, feed: float = 0.0):
    """A Keras callback that evaluates and logs after each epoch, with the time left, and logs
    progress inside an epoch every EPOCH_PROGRESS_SECONDS (progress in the KFP logs). Each
    epoch's line gives the training rate in samples per second and, against `feed` (what the
    input pipeline alone delivers), the most of its time the model could have waited on input."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history: list[dict] = []
            self._start = self._last = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._epoch_start = epoch + 1, time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self._last < EPOCH_PROGRESS_SECONDS or batch + 1 < max(3, steps // 50):
                return  # on the timer, once a few batches tell the pace
            self._last = now
            done = batch + 1
            left = (now - self._epoch_start) / done * (steps - done)
            log.info(
                "epoch %d/%d: batch %d/%d (%.0f%%), about %s left in this epoch",
                self._epoch,
                epochs,
                done,
                steps,
                100.0 * done / steps,
                human_seconds(left),
            )

        train_seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds = time.monotonic() - self._epoch_start
            loss, accuracy = self.model.evaluate(test_ds, verbose=0)
            row = {
                "epoch": epoch + 1,
                "train_loss": float((logs or {}).get("loss", float("nan"))),
                "test_accuracy": float(accuracy),
                "test_loss": float(loss),
                "seconds": time.monotonic() - self._start,
            }
            self.history.append(row)
            self._last = time.monotonic()
            left = row["seconds"] / row["epoch"] * (epochs - row["epoch"])
            rate = samples / max(self.train_seconds, 1e-9)
            row["samples_per_second"] = rate
            speed = f", {rate:,.0f} samples/s" if samples else ""
            if samples and feed:
                speed += f" (input wait at most {min(100.0, 100 * rate / feed):.0f}%)"
            log.info(
                "epoch %d/%d: train loss %.4f, test accuracy %.4f, %.1f s%s%s",
                row["epoch"],
                epochs,
                row["train_loss"],
                row["test_accuracy"],
                row["seconds"],
                speed,
                f", about {human_seconds(left)} left" if row["epoch"] < epochs else "",
            )
            if on_epoch:
                on_epoch(row)

    return EpochLogger()


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
