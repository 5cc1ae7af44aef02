"""Every container image the pipeline runs, tagged with this package's version (never `:latest`).

The registry is set at build time (`make images REGISTRY=...`) and at compile time through the
`MNIST_IMAGE_REGISTRY` environment variable, so a compiled pipeline names exactly the images
that were pushed.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

DEFAULT_REGISTRY = "ghcr.io/mnist-kfp"


def package_version() -> str:
    try:
        return version("mnist-kfp")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0.dev0"


def _image(name: str) -> str:
    registry = os.environ.get("MNIST_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")
    return f"{registry}/{name}:{package_version()}"


# The CPU steps (download, unpack-and-upload, export, batch-predict) and the model sync sidecar.
CPU_IMAGE = _image("mnist-pipeline")
# The training step: the same code on a TensorFlow GPU base.
GPU_IMAGE = _image("mnist-pipeline-gpu")
