"""All the GPUs of a node: MirroredStrategy when more than one device is visible, with the
batch and learning rate scaled; on the CPU or one GPU nothing changes. Two-replica training
really runs here, on the CPU split into two logical devices (in a fresh process: TensorFlow
takes the split only before it starts)."""

from __future__ import annotations

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


def test_no_mixed_precision_on_the_cpu():
    import keras

    from components.train.devices import use_mixed_precision

    assert use_mixed_precision() is False
    assert keras.mixed_precision.global_policy().name == "float32"
