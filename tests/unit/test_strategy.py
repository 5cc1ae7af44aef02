"""All the GPUs of a node: MirroredStrategy when more than one device is visible, with the
batch and learning rate scaled; on the CPU or one GPU nothing changes. Two-replica training
really runs here, on the CPU split into two logical devices (in a fresh process: TensorFlow
takes the split only before it starts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.train.config import TrainConfig
from tests.conftest import REPO

pytest.importorskip("tensorflow")


def test_one_device_keeps_the_default_strategy_and_the_settings():
    from components.train.devices import choose_strategy, scaled

    assert choose_strategy().num_replicas_in_sync == 1  # no GPU here
    assert choose_strategy(["/cpu:0"]).num_replicas_in_sync == 1
    cfg = TrainConfig(batch_size=128, learning_rate=0.01)
    assert scaled(cfg, 1) is cfg


def test_replicas_scale_the_global_batch_and_the_learning_rate():
    from components.train.devices import scaled

    cfg = scaled(TrainConfig(batch_size=128, learning_rate=0.01), 4)
    assert cfg.batch_size == 512 and cfg.learning_rate == pytest.approx(0.04)
    assert scaled(TrainConfig(learning_rate=0.5), 4).learning_rate == 1.0  # the parameter's bound


SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from components.dataset import mnist
from components.train.config import TrainConfig
from components.train.trainer import train
data = sys.argv[1]
cfg = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, train_limit=1200)
result = train(mnist.load_split(data, "train"), mnist.load_split(data, "test"), cfg,
               devices=["/cpu:0", "/cpu:1"])
print("ACCURACY", result.test_accuracy)
"""


def test_two_replicas_really_train(small_mnist_dir):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(small_mnist_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "2 replicas (MirroredStrategy): global batch 64, peak learning rate 0.02" in result.stdout
    )
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("ACCURACY")]
    assert float(line.split()[1]) > 0.6  # far above chance (0.1) after 2 epochs on 1200 images


EQUIVALENCE = """
import json
import sys
from dataclasses import replace

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
import keras
import numpy as np

from components.dataset import mnist
from components.train import devices, distributed
from components.train import model as model_
from components.train.config import TrainConfig
from components.train.trainer import log, train

train_data = mnist.load_split(sys.argv[1], "train")
test_data = mnist.load_split(sys.argv[1], "test")
# One strategy per device count for the whole process: a second MirroredStrategy over the
# same devices may reuse the first one's collective keys and abort on a shape mismatch.
STRATEGIES = {2: devices.choose_strategy(["/cpu:0", "/cpu:1"]), 1: devices.choose_strategy()}
devices.choose_strategy = lambda names: STRATEGIES[len(names or [None])]
TWO, ONE = ["/cpu:0", "/cpu:1"], None
out = {}


def trainable(model):
    return np.concatenate([np.ravel(w.numpy()) for w in model.trainable_weights])


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# The train step's own path (Keras fit, the data pipeline, the scaling), 4 steps of 64, with
# plain SGD on the one-cycle schedule (why not Adam: the test's docstring).
model_.optimizer = lambda cfg, steps: keras.optimizers.SGD(model_.schedule(cfg, steps))
# no validation split: 4 whole steps, and no calibration after them
cfg = TrainConfig(
    epochs=1, batch_size=32, learning_rate=0.0005, seed=5, train_limit=256, dropout=0.0,
    validation_split=0.0,
)
two = train(train_data, test_data, cfg, devices=TWO)
single = replace(cfg, batch_size=64, learning_rate=0.001)
one = train(train_data, test_data, single)
model_.seed_everything(5)
start = trainable(model_.build_model(dropout=0.0))
out["fit_loss_two"] = two.history[-1]["train_loss"]
out["fit_loss_one"] = one.history[-1]["train_loss"]
out["fit_update"] = relative(trainable(two.model) - start, trainable(one.model) - start)
out["synchronized_two"] = [l.synchronized for l in two.model.layers if "batch_norm" in l.name]
out["synchronized_one"] = [l.synchronized for l in one.model.layers if "batch_norm" in l.name]
# A TFJob replica's loop (distributed.fit), on two replicas and on one
fitted, history_two, _ = distributed.fit(STRATEGIES[2], train_data, test_data, cfg, log)
_, history_one, _ = distributed.fit(STRATEGIES[1], train_data, test_data, single, log)
out["synchronized_fit"] = [l.synchronized for l in fitted.layers if "batch_norm" in l.name]
out["loop_loss_two"] = history_two[-1]["train_loss"]
out["loop_loss_one"] = history_one[-1]["train_loss"]
print("RESULT", json.dumps(out))
"""


def test_two_devices_train_as_one_device_does(small_mnist_dir):
    """Two replicas of a global batch of 64 (32 each) against one device with the same 64,
    the same seed and the same global learning rate, for 4 steps: through the train step's
    Keras fit (MirroredStrategy, the data pipeline, the batch and learning-rate scaling) and
    through a TFJob replica's own loop (distributed.fit). The same maths up to the order of
    floating-point sums (each sum over the batch is two partial sums then added, and
    synchronized batch norm takes the variance as E[x^2] - E[x]^2).

    The tolerances: one step agrees to rounding (tests/unit/test_tfjob.py checks 1e-4 on the
    update; measured 6e-6 to 9e-6). Over four steps the differences grow with the training
    itself, each step's input being the last one's weights (measured: the epoch's mean loss
    under 4e-6 relative, the weight updates 3e-4 to 3e-3), so 1e-4 on the loss and 2e-2 on
    the updates. What a mistake costs is far above: per-replica batch norm statistics 6e-2 to
    9e-2 on the updates and 2e-4 to 1e-3 on the loss, an unscaled learning rate half the
    update.

    Plain SGD, not the product's Adam, in the four-step comparison: Adam divides each
    gradient component by its running RMS, so a rounding-level change in a near-zero
    component moves that weight by up to the learning rate; the comparison would measure
    Adam's sensitivity, not whether the replicas compute the same thing.
    """
    result = subprocess.run(
        [sys.executable, "-c", EQUIVALENCE, str(small_mnist_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("RESULT")]
    out = json.loads(line.split(" ", 1)[1])
    assert out["fit_loss_two"] == pytest.approx(out["fit_loss_one"], rel=1e-4)
    assert out["fit_update"] < 2e-2
    assert out["synchronized_two"] == [True] * 3 and out["synchronized_one"] == [False] * 3
    assert out["synchronized_fit"] == [True] * 3  # a TFJob replica's model
    assert out["loop_loss_two"] == pytest.approx(out["loop_loss_one"], rel=1e-4)


def test_no_mixed_precision_on_the_cpu():
    import keras

    from components.train.devices import use_mixed_precision

    assert use_mixed_precision() is False
    assert keras.mixed_precision.global_policy().name == "float32"
