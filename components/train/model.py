"""The digit classifier and what feeds it: a small batch-normalised CNN on raw uint8 pixels,
its tf.data input pipeline with shift augmentation, and its one-cycle optimizer.

The model scales its own input (0..255 -> 0..1), so the exported serving signature feeds it
exactly what an image file holds and training and serving cannot disagree. Shared by the train
step (trainer.py) and the TFJob replicas (distributed.py).
"""

from __future__ import annotations

import numpy as np

from components.dataset.mnist import NUM_CLASSES
from components.train.config import TrainConfig


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


def dataset(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, training: bool):
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


def optimizer(cfg: TrainConfig, steps_per_epoch: int):
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
