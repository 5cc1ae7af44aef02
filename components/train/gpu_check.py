"""`python -m components.train.gpu_check`: can this image train on this node's GPUs?

Run it in the GPU image on a GPU node (the README's Containers section has a `kubectl run`
line for it).

It lists the GPUs TensorFlow sees, loads the cuDNN that TensorFlow was built against, and runs
one training step of a small convolutional network on the first GPU. Each check prints one
line; the first that fails says what is wrong and the command exits 1. `--allow-no-gpu` runs the
training step on the CPU when no GPU is visible (to check an image on a machine without one).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time

from components.common.errors import StepError


class CheckFailed(StepError, RuntimeError):
    """One check failed; the message is the line to print."""


def _tensorflow():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the C++ banners, not our lines
    import tensorflow as tf

    return tf


def describe_build(tf) -> str:
    info = tf.sysconfig.get_build_info()
    if not info.get("is_cuda_build"):
        return f"TensorFlow {tf.__version__}, built without CUDA"
    return (
        f"TensorFlow {tf.__version__}, built for CUDA {info.get('cuda_version')} and "
        f"cuDNN {info.get('cudnn_version')}"
    )


def list_gpus(tf) -> list[str]:
    gpus = tf.config.list_physical_devices("GPU")
    lines = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        name = details.get("device_name", "unknown model")
        capability = details.get("compute_capability")
        cc = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
        lines.append(f"{gpu.name} ({name}{cc})")
    return lines


def load_cudnn(tf) -> str:
    """Load the cuDNN major version TensorFlow was built against; the library's name."""
    version = str(tf.sysconfig.get_build_info().get("cudnn_version") or "")
    if not version:
        raise CheckFailed("cuDNN: this TensorFlow was built without cuDNN")
    name = f"libcudnn.so.{version.split('.')[0]}"
    try:
        ctypes.CDLL(name)
    except OSError as e:
        raise CheckFailed(
            f"cuDNN: {name} does not load ({e}); TensorFlow then trains on the CPU. "
            "See docker/Dockerfile.gpu (CUDNN_VERSION)"
        ) from None
    return name


def training_step(tf, device: str) -> tuple[float, float]:
    """One step of a small CNN on random 28x28 images on `device`; (loss, seconds)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((64, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    with tf.device(device):
        model = tf.keras.Sequential(
            [
                tf.keras.Input((28, 28, 1)),
                tf.keras.layers.Conv2D(8, 3, activation="relu"),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(10),
            ]
        )
        model.compile(
            optimizer="adam",
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        start = time.perf_counter()
        loss = model.train_on_batch(images, labels)
    return float(np.asarray(loss).ravel()[0]), time.perf_counter() - start


def check(allow_no_gpu: bool = False, echo=print) -> None:
    tf = _tensorflow()
    echo(describe_build(tf))
    gpus = list_gpus(tf)
    if gpus:
        echo(f"GPUs: {len(gpus)}: " + "; ".join(gpus))
        echo(f"cuDNN: {load_cudnn(tf)} loads")
        device = "/GPU:0"
    elif allow_no_gpu:
        echo("GPUs: none visible; --allow-no-gpu: the training step runs on the CPU")
        device = "/CPU:0"
    else:
        raise CheckFailed(
            "GPUs: none visible to TensorFlow. Check the pod's nvidia.com/gpu limit, the "
            "node's NVIDIA driver and device plugin (nvidia-smi in the pod), and that this is "
            "the GPU image"
        )
    try:
        loss, seconds = training_step(tf, device)
    except Exception as e:  # noqa: BLE001 - any failure here is the answer to print
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckFailed(f"training step on {device}: {type(e).__name__}: {first}") from None
    echo(f"training step on {device}: loss {loss:.3f} in {seconds:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.train.gpu_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--allow-no-gpu",
        action="store_true",
        help="with no GPU visible, run the training step on the CPU instead of failing",
    )
    args = parser.parse_args(argv)
    try:
        check(args.allow_no_gpu)
    except CheckFailed as e:
        print(f"FAILED {e}", file=sys.stderr)
        return 1
    print("OK: this image can train here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
