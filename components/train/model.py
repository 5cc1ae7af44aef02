"""The digit classifier and what feeds it: a small batch-normalised CNN on raw uint8 pixels,
its tf.data input pipeline with shift augmentation, and its one-cycle optimizer.

The model scales its own input (0..255 -> 0..1), so the exported serving signature feeds it
exactly what an image file holds and training and serving cannot disagree. Shared by the train
step (trainer.py) and the TFJob replicas (distributed.py).

The same seed gives the same model: `seed_everything` sets every seed once (the weights,
dropout) and makes TensorFlow's ops deterministic, and the training data of each epoch (its
order, each batch's shift) is a stateless function of the seed, the epoch and the batch.
"""

from __future__ import annotations

import numpy as np

from components.dataset.mnist import NUM_CLASSES
from components.train.config import TrainConfig


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Python's, NumPy's, TensorFlow's and Keras' seeds from `seed` (the weights, dropout and
    the shuffle); with `deterministic`, TensorFlow's ops too (same inputs, same outputs, same
    summation order), for the rest of the process. The cost: benchmarks/bench_determinism.py."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def build_model(
    seed: int | None = None,
    widths: tuple[int, int, int] = (32, 64, 128),
    dropout: float = 0.2,
    synchronized: bool = False,
):
    """The CNN: uint8 [N, 28, 28] in, class probabilities [N, 10] out. `seed`: set the seeds
    first (for a model built on its own; training sets them once, in seed_everything).
    `synchronized`: for replicas training in step, whose batch normalisation then uses the
    statistics of the global batch, not of each replica's share (what one device would do)."""
    import keras
    from keras import layers

    if seed is not None:
        keras.utils.set_random_seed(seed)

    def conv_bn_relu(x, filters: int, kernel: int, strides: int, padding: str):
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
        # momentum 0.9: the moving statistics settle within an epoch even on small data sets
        x = layers.BatchNormalization(momentum=0.9, synchronized=synchronized)(x)
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
    x = layers.Dropout(dropout)(x)
    # float32 probabilities even under mixed precision (a no-op otherwise)
    outputs = layers.Dense(
        NUM_CLASSES, activation="softmax", name="probabilities", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def split(train_data, cfg: TrainConfig):
    """(the examples to train on, the held-out validation examples or None): the first
    `train_limit` examples, the last `validation_split` of them held out (at least one)."""
    images, labels = train_data
    if cfg.train_limit:
        images, labels = images[: cfg.train_limit], labels[: cfg.train_limit]
    if not cfg.validation_split:
        return (images, labels), None
    # the nearest whole number of examples (a half rounds up), at least one, never them all
    held = min(len(images) - 1, max(1, int(len(images) * cfg.validation_split + 0.5)))
    if held < 1:
        return (images, labels), None  # one example: nothing to spare
    keep = len(images) - held
    return (images[:keep], labels[:keep]), (images[keep:], labels[keep:])


def dataset(images: np.ndarray, labels: np.ndarray, cfg: TrainConfig, training: bool, epoch=None):
    """Batches of (uint8 images, int32 labels). For training, the epoch's order and each
    batch's shift (`cfg.augment`) are stateless functions of (cfg.seed, the epoch, the batch):
    `epoch` is the int64 tf.Variable (epoch_variable) the training loop sets to the epoch it
    starts, read when a pass over the data begins. So the data of epoch k is the same on one
    device or several, in a resumed run, and however many passes Keras or a rate measurement
    opened before, and the parallel map may shift batches in any order."""
    import tensorflow as tf

    if not training:
        ds = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
        return ds.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
    epoch = epoch if epoch is not None else epoch_variable()
    images, labels = tf.constant(images), tf.constant(labels.astype("int32"))
    fold = tf.random.experimental.stateless_fold_in
    # two independent streams of seeds: [seed, 0] orders the epochs, [seed, 1] shifts batches
    order_root = tf.constant([cfg.seed, 0], tf.int64)
    shift_root = tf.constant([cfg.seed, 1], tf.int64)

    def one_epoch(_):
        e = epoch.read_value()
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(labels)[0]), fold(order_root, e)
        )
        batches = tf.data.Dataset.from_tensor_slices(order).batch(cfg.batch_size).enumerate()
        shift_seed = fold(shift_root, e)

        def batch(number, indices):
            x, y = tf.gather(images, indices), tf.gather(labels, indices)
            if cfg.augment == "robust":
                x = _robust(x, fold(shift_seed, number))
            elif cfg.augment == "shift":
                x = _shift(x, fold(shift_seed, number))
            return x, y

        return batches.map(batch, num_parallel_calls=tf.data.AUTOTUNE)

    batches = -(-len(labels) // cfg.batch_size)  # what flat_map cannot tell Keras
    ds = tf.data.Dataset.from_tensors(0).flat_map(one_epoch)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def epoch_variable():
    """The epoch a training pass is in (dataset), which the training loop sets."""
    import tensorflow as tf

    return tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")


def _shift(images, seed):
    """Shift a whole batch by up to 2 pixels (pad, then crop at an offset that `seed`, a pair
    of integers, fixes: a stateless random op)."""
    import tensorflow as tf

    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2]])
    offset = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=5, dtype=tf.int32)
    dy, dx = tf.unstack(offset)
    return padded[:, dy : dy + 28, dx : dx + 28]


ROBUST_SHARE = 0.5  # of each batch; the rest is only shifted, as with augment="shift"


def _robust(images, seed):
    """Half of a batch (ROBUST_SHARE) made to look like digits the reading path gives the model
    from photos and other people's scans, the other half shifted as `_shift` does. Per image, a
    stateless function of `seed`:

    - scale 0.8 to 1.35 about the centre and shift up to 3 pixels, so some digits reach the
      edges (a tight crop) and some are small;
    - the stroke a pixel thinner or thicker (a 2x2 grey erosion or dilation), or as it was;
    - a blur of random strength, lower contrast on a lifted background, and pixel noise.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 9)

    def uniform(i, low, high, shape=None):
        shape = shape if shape is not None else [n, 1, 1, 1]
        return tf.random.stateless_uniform(shape, seed=seeds[i], minval=low, maxval=high)

    # Only the chosen images are transformed, which halves the work; every value is still drawn
    # for the whole batch and then taken for them, so each image gets the draws it got when
    # the whole batch was transformed, and the same seed gives the same model as before.
    where = tf.where(tf.random.stateless_uniform([n], seed=seeds[8]) < ROBUST_SHARE)

    def kept(values):
        return tf.gather_nd(values, where)

    x = tf.cast(kept(images), tf.float32)[..., None] / 255.0
    # exp on the whole batch too: its last bit can depend on where a value sits in a vector
    scale = kept(tf.exp(uniform(0, tf.math.log(0.8), tf.math.log(1.35), [n])))
    x = _warp(x, scale, kept(uniform(1, -3.0, 3.0, [n, 2])))
    x = _stroke(x, kept(tf.floor(uniform(2, 0.0, 3.0)) - 1.0))  # -1, 0, +1: a third each
    x = _blur(x, kept(uniform(3, 0.0, 1.0)))
    x = _dim(x, kept(uniform(4, 0.0, 0.15)), kept(uniform(5, 0.55, 1.0)))
    noise = kept(tf.random.stateless_normal([n, 28, 28, 1], seed=seeds[7]))
    x = x + kept(uniform(6, 0.0, 0.08)) * noise
    robust = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)[..., 0]
    shifted = _shift(images, tf.random.experimental.stateless_fold_in(seed, 1))
    return tf.tensor_scatter_nd_update(shifted, where, robust)


def _warp(x, scale, shift):
    """Each image [N, 28, 28, 1] scaled by `scale` [N] about the centre, then moved by `shift`
    [N, 2] pixels (x, y); what comes in from outside is black."""
    import tensorflow as tf

    centre, inverse, zeros = 13.5, 1.0 / scale, tf.zeros_like(scale)
    # output pixel p reads input pixel (p - centre) / scale + centre - shift
    transforms = tf.stack(
        [
            inverse, zeros, centre - centre * inverse - shift[:, 0],
            zeros, inverse, centre - centre * inverse - shift[:, 1],
            zeros, zeros,
        ],
        axis=1,
    )  # fmt: skip
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=[28, 28],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _stroke(x, width):
    """Strokes a pixel thicker where `width` [N, 1, 1, 1] is +1 (a 2x2 grey dilation), thinner
    where it is -1 (erosion), as they were where it is 0."""
    import tensorflow as tf

    dilated = tf.nn.max_pool2d(x, 2, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
    return tf.where(width > 0, dilated, tf.where(width < 0, eroded, x))


def _blur(x, strength):
    """The mix, `strength` [N, 1, 1, 1] from 0 to 1, of each image and its 3x3 Gaussian blur."""
    import tensorflow as tf

    kernel = tf.constant([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16.0)[:, :, None, None]
    return x + strength * (tf.nn.conv2d(x, kernel, 1, "SAME") - x)


def _dim(x, ground, ink):
    """Lower contrast: black becomes `ground`, white `ink` (each [N, 1, 1, 1], 0 to 1)."""
    return ground + x * (ink - ground)


def schedule(cfg: TrainConfig, steps_per_epoch: int):
    """The one-cycle learning rate: a linear warm-up over the first fifth of the steps from a
    tenth of `cfg.learning_rate` to it, then a cosine decay to a hundredth of it."""
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = max(1, total // 5)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate / 10,
        decay_steps=max(1, total - warmup),
        warmup_target=cfg.learning_rate,
        warmup_steps=warmup,
        alpha=0.01,
    )


def optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    return keras.optimizers.Adam(learning_rate=schedule(cfg, steps_per_epoch))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    return matrix.tolist()
