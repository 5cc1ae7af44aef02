"""Where training runs: one device, several GPUs in step (MirroredStrategy), mixed precision
where the GPUs have tensor cores, and how fast the input pipeline alone can feed them."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from components.train.config import TrainConfig


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


def describe_devices() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else f"CPU only ({os.cpu_count()} cores)"
