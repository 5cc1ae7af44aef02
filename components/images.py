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


# export and batch-predict: the project with TensorFlow (docker/Dockerfile).
CPU_IMAGE = _image("mnist-pipeline")
# check-parameters, download, unpack-and-upload, tune and the serving model sync: no TensorFlow
# and no numpy, so a node pulls it in seconds (docker/Dockerfile with
# REQUIREMENTS=docker/requirements-slim.txt; tests/unit/test_slim_image.py).
SLIM_IMAGE = _image("mnist-pipeline-slim")
# The training step: the same code on a TensorFlow GPU base (docker/Dockerfile.gpu).
GPU_IMAGE = _image("mnist-pipeline-gpu")

# How each image is built: (Dockerfile, lock file), for docker/build.sh and the checks.
BUILDS = {
    CPU_IMAGE: ("docker/Dockerfile", "docker/requirements.txt"),
    SLIM_IMAGE: ("docker/Dockerfile", "docker/requirements-slim.txt"),
    GPU_IMAGE: ("docker/Dockerfile.gpu", "docker/requirements.txt"),
}


if __name__ == "__main__":  # `python -m components.images`: one line per image, for scripts
    for image, (dockerfile, requirements) in BUILDS.items():
        print(image, dockerfile, requirements)
