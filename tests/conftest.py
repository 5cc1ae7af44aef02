"""Fixtures shared by every tier: MNIST files, an HTTP server and an S3 store on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from components.dataset import mnist
from tests import servers

# the fake-KFP-API fixtures (kfp_api, no_kfp_context); under CI=true, a skip is a failure
pytest_plugins = ["tests.kfp_cli", "tests.ci_skips"]


REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = Path(os.environ.get("MNIST_DIR", REPO.parent / "shared" / "datasets" / "mnist"))
# Distinctive fake credentials: the secrets tests search every output for them.
FAKE_ACCESS_KEY = "AKIAFAKETESTKEY0042"
FAKE_SECRET_KEY = "fake-secret-Zq9xW3-do-not-log"


def have_full_mnist() -> bool:
    return all((SHARED_MNIST / f.gz_name).is_file() for f in mnist.FILES)


def make_small_mnist(folder: Path, train: int = 1200, test: int = 300, seed: int = 0) -> Path:
    """Four .gz IDX files: a subset of real MNIST when it is here, else synthetic digits."""
    folder.mkdir(parents=True, exist_ok=True)
    if have_full_mnist():
        for spec, n in (
            (mnist.TRAIN_IMAGES, train),
            (mnist.TRAIN_LABELS, train),
            (mnist.TEST_IMAGES, test),
            (mnist.TEST_LABELS, test),
        ):
            array = mnist.read_idx_file(SHARED_MNIST / spec.gz_name)[:n]
            mnist.write_idx(folder / spec.gz_name, array)
        return folder
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):  # a crude, learnable glyph per class
            images[i, 4 + label : 8 + label, 6:22] = 255
            images[i, 6:22, 4 + 2 * label : 6 + 2 * label] = 200
        image_spec, label_spec = mnist.SPLITS[split]
        mnist.write_idx(folder / image_spec.gz_name, images)
        mnist.write_idx(folder / label_spec.gz_name, labels)
    return folder


@pytest.fixture(scope="session")
def full_mnist_dir() -> Path:
    """The four original .gz files; tests that need them are skipped where they are absent."""
    if not have_full_mnist():
        pytest.skip(f"full MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def full_mnist_dir_or_none() -> Path | None:
    """The original files when they are here (CI has them beside the checkout), else None."""
    return SHARED_MNIST if have_full_mnist() else None


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory) -> Path:
    """A small, well-formed (non-canonical) IDX set: 1200 train and 300 test records."""
    return make_small_mnist(tmp_path_factory.mktemp("small-mnist"))


@pytest.fixture(scope="session")
def raw_small_mnist_dir(small_mnist_dir, tmp_path_factory) -> Path:
    """The same set, uncompressed."""
    out = tmp_path_factory.mktemp("raw-small-mnist")
    for spec in mnist.FILES:
        with gzip.open(small_mnist_dir / spec.gz_name) as src, open(out / spec.name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


@pytest.fixture
def http_dir(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1: `url = http_dir(folder)`."""
    stack = []

    def serve(folder: Path) -> str:
        cm = servers.serve_directory(folder)
        stack.append(cm)
        return cm.__enter__()

    yield serve
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A SeaweedFS S3 store on 127.0.0.1 for the whole session (about 1 s to start); its URL.
    It checks the signature of every request against FAKE_ACCESS_KEY and FAKE_SECRET_KEY."""
    with servers.seaweed_s3(FAKE_ACCESS_KEY, FAKE_SECRET_KEY) as url:
        yield url


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> str:
    """Credentials in the environment, as a pod gets them from the Secret; returns the endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A fresh, empty bucket on the S3 store; its name."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def lines(caplog):
    """The messages the project's loggers (mnist.*) emitted during the test, as a function."""
    logger = logging.getLogger("mnist")
    logger.addHandler(caplog.handler)
    yield lambda: [r.getMessage() for r in caplog.records if r.name.startswith("mnist")]
    logger.removeHandler(caplog.handler)
