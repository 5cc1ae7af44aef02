"""Training-time augmentation (the `augment` parameter, components/train/model.py): what each
setting does to a batch, that it is a function of the seed, and the parameter's check."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.common.parameters import ParameterError
from components.train import model as train_model
from components.train.config import TrainConfig


def rings(n: int) -> np.ndarray:
    """n MNIST-like digits: a ring 2 pixels wide in the 20x20 box at the centre, on black."""
    canvas = Image.new("L", (28, 28))
    ImageDraw.Draw(canvas).ellipse((6, 4, 21, 23), outline=255, width=2)
    return np.repeat(np.asarray(canvas)[None], n, axis=0)


@pytest.fixture(scope="module")
def batch():
    import tensorflow as tf

    images = rings(256)
    out = train_model._robust(tf.constant(images), tf.constant([5, 6], tf.int64)).numpy()
    return images, out


def test_robust_is_a_function_of_the_seed(batch):
    import tensorflow as tf

    images, out = batch
    again = train_model._robust(tf.constant(images), tf.constant([5, 6], tf.int64)).numpy()
    other = train_model._robust(tf.constant(images), tf.constant([5, 7], tf.int64)).numpy()
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out, again)
    assert (out != other).any()


def test_robust_shifts_about_half_and_changes_the_rest_as_photos_do(batch):
    """Half the batch (ROBUST_SHARE) only shifted, by at most 2 pixels; in the other half some
    digits reach the edge, some strokes are thicker or thinner than any shift makes them, and
    some backgrounds are lifted off black."""
    images, out = batch
    shifts = {
        (dy, dx): np.pad(images[0], 2)[dy : dy + 28, dx : dx + 28]
        for dy in range(5)
        for dx in range(5)
    }
    shifted = np.array([any((o == s).all() for s in shifts.values()) for o in out])
    assert 0.35 <= shifted.mean() <= 0.65
    changed = out[~shifted]
    ink = int((images[0] > 127).sum())
    edge = np.concatenate(
        [changed[:, 0], changed[:, -1], changed[:, :, 0], changed[:, :, -1]], axis=1
    )
    assert (edge.max(axis=1) > 64).mean() > 0.05  # the digit touches the frame
    assert (np.median(changed, axis=(1, 2)) > 8).mean() > 0.4  # a lifted background
    area = (changed > 127).sum(axis=(1, 2))
    assert (area > 1.4 * ink).mean() > 0.1 and (area < 0.7 * ink).mean() > 0.1


def test_shift_and_none_as_before():
    """augment=shift moves each batch as one by up to 2 pixels; none leaves it as it is."""
    few_images = rings(64)
    for augment, most_moved in (("shift", 2), ("none", 0)):
        cfg = TrainConfig(batch_size=64, seed=1, augment=augment, train_limit=64)
        labels = np.zeros(64, np.int64)
        ((x, _),) = list(train_model.dataset(few_images, labels, cfg, training=True))
        x = x.numpy()
        rows = np.flatnonzero(x[0].max(axis=1))
        moved = abs(int(rows[0]) - int(np.flatnonzero(few_images[0].max(axis=1))[0]))
        assert moved <= most_moved and (x == x[0]).all()


def test_an_unknown_augmentation_is_refused_by_name():
    with pytest.raises(ParameterError, match=r"augment=.*must be one of none, shift, robust"):
        TrainConfig(augment="sideways")


def test_each_change_of_robust_does_what_it_says():
    """The parts _robust draws its values for, each with values given."""
    import tensorflow as tf

    ring = tf.constant(rings(3)[..., None], tf.float32) / 255.0
    area = float(tf.reduce_sum(tf.cast(ring[0] > 0.5, tf.float32)))

    def areas(x):
        return tf.reduce_sum(tf.cast(x > 0.5, tf.float32), axis=(1, 2, 3)).numpy()

    thicker, same, thinner = areas(
        train_model._stroke(ring, tf.constant([1.0, 0.0, -1.0])[:, None, None, None])
    )
    assert thicker > 1.4 * area and same == area and thinner < 0.7 * area
    blurred = train_model._blur(ring, tf.constant([0.0, 1.0, 0.5])[:, None, None, None]).numpy()
    np.testing.assert_array_equal(blurred[0], ring[0].numpy())
    assert blurred[1].max() < 0.95 and (blurred[1] > 0).sum() > (ring[0].numpy() > 0).sum()
    np.testing.assert_allclose(blurred[2], (ring[0].numpy() + blurred[1]) / 2, atol=1e-6)
    dimmed = train_model._dim(ring, 0.1, 0.6).numpy()
    assert dimmed.min() == pytest.approx(0.1) and dimmed.max() == pytest.approx(0.6)
    big, moved = train_model._warp(
        ring[:2], tf.constant([1.35, 1.0]), tf.constant([[0.0, 0.0], [3.0, -2.0]])
    ).numpy()
    rows, cols = (
        np.flatnonzero(big[..., 0].max(axis=1) > 0.5),
        np.flatnonzero(moved[..., 0].max(axis=0) > 0.5),
    )
    assert rows[0] <= 1 and rows[-1] >= 26  # 20 rows of ring scaled by 1.35: 27 rows
    original = np.flatnonzero(ring[0, ..., 0].numpy().max(axis=0) > 0.5)
    assert cols[0] == original[0] + 3


def whole_batch_robust(images, seed):
    """_robust as it was written first: every image of the batch transformed, then half of them
    kept. The trained models (and the reading figures measured with them) come from these
    pixels; _robust transforms only the kept half and must give them bit for bit."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 9)

    def uniform(i, low, high, shape=None):
        shape = shape if shape is not None else [n, 1, 1, 1]
        return tf.random.stateless_uniform(shape, seed=seeds[i], minval=low, maxval=high)

    x = tf.cast(images, tf.float32)[..., None] / 255.0
    scale = tf.exp(uniform(0, tf.math.log(0.8), tf.math.log(1.35), [n]))
    x = train_model._warp(x, scale, uniform(1, -3.0, 3.0, [n, 2]))
    x = train_model._stroke(x, tf.floor(uniform(2, 0.0, 3.0)) - 1.0)
    x = train_model._blur(x, uniform(3, 0.0, 1.0))
    x = train_model._dim(x, uniform(4, 0.0, 0.15), uniform(5, 0.55, 1.0))
    x = x + uniform(6, 0.0, 0.08) * tf.random.stateless_normal(tf.shape(x), seed=seeds[7])
    robust = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)[..., 0]
    shifted = train_model._shift(images, tf.random.experimental.stateless_fold_in(seed, 1))
    chosen = tf.random.stateless_uniform([n], seed=seeds[8]) < train_model.ROBUST_SHARE
    return tf.where(chosen[:, None, None], robust, shifted)


@pytest.mark.parametrize(("seed", "batch_size"), [(42, 128), (1, 96), (7, 33)])
def test_robust_gives_the_pixels_of_the_whole_batch_definition(
    small_mnist_dir, monkeypatch, seed, batch_size
):
    """Two epochs of digits (MNIST's first 1,200 when it is here) through the training
    pipeline (tf.data, so graph mode, a parallel map and a short last batch), with _robust and
    with the whole-batch definition: the same bytes, so the faster code trains the same model."""
    import tensorflow as tf

    from components.dataset import mnist

    images, labels = mnist.load_split(small_mnist_dir, "train")
    cfg = TrainConfig(augment="robust", seed=seed, batch_size=batch_size)

    def epochs(robust):
        monkeypatch.setattr(train_model, "_robust", robust)
        data = []
        for epoch in range(2):
            variable = tf.Variable(epoch, dtype=tf.int64)
            pipeline = train_model.dataset(images, labels, cfg, training=True, epoch=variable)
            data += [x.numpy() for x, _ in pipeline]
        return data

    faster = epochs(train_model._robust)
    reference = epochs(whole_batch_robust)
    assert len(faster) == len(reference) > 2 and len(images) % batch_size
    for ours, theirs in zip(faster, reference, strict=True):
        np.testing.assert_array_equal(ours, theirs)
