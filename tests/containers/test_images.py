"""Container tier: the built images, and the whole DAG run in them through kfp.local.

Run by `make test-containers` (tests/containers/run.sh), which builds the images first and
sets ENGINE (docker or podman) and, for podman, DOCKER_HOST. Real MNIST is served over loopback
HTTP and the store is SeaweedFS's S3, both reached from the containers on the host network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from components.common import spec
from components.dataset import mnist
from components.images import CPU_IMAGE, GPU_IMAGE, SLIM_IMAGE
from tests import servers
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, SHARED_MNIST, have_full_mnist

pytestmark = pytest.mark.containers

ENGINE = os.environ.get("ENGINE", "podman")
CLI = str(Path(sys.executable).parent / "mnist-pipeline")
IMAGES = {"cpu": CPU_IMAGE, "slim": SLIM_IMAGE, "gpu": GPU_IMAGE}
# What each image must import: the steps it runs.
IMPORTS = {
    "cpu": "import tensorflow, kfp, components.export.exporter, components.batch_predict.step",
    "slim": "import kfp, boto3, components.download.fetch, components.unpack_upload.unpack, "
    "components.serving_sync.sync, components.tune.katib",
    "gpu": "import tensorflow, kfp, components.train.trainer",
}
DEMO = ["--epochs", "2", "--learning-rate", "0.02"]  # the Makefile's DEMO_ARGS


def engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)


def size_mb(image: str) -> int:
    return int(engine("image", "inspect", "--format", "{{.Size}}", image).stdout) // 10**6


@pytest.mark.parametrize("kind", IMAGES)
def test_runs_as_the_non_root_uid_and_its_default_command_works(kind):
    assert engine("run", "--rm", IMAGES[kind], "id", "-u").stdout.strip() == "10001"
    result = engine("run", "--rm", IMAGES[kind])
    assert result.returncode == 0 and "Usage: mnist-pipeline" in result.stdout, result.stderr


@pytest.mark.parametrize("kind", IMAGES)
def test_imports_what_its_steps_need(kind):
    result = engine("run", "--rm", "--network", "none", IMAGES[kind], "python", "-c", IMPORTS[kind])
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("module", ["tensorflow", "numpy"])
def test_the_slim_image_has_neither_tensorflow_nor_numpy(module):
    result = engine("run", "--rm", SLIM_IMAGE, "python", "-c", f"import {module}")
    assert result.returncode != 0 and f"No module named '{module}'" in result.stderr


def test_the_slim_image_is_under_300_mb_and_a_fraction_of_the_cpu_image():
    """As podman or docker reports it (decimal MB), on the stand-in base where no registry is
    reachable (151 MB, more than the pinned upstream base)."""
    sizes = {kind: size_mb(image) for kind, image in IMAGES.items()}
    print(f"image sizes (MB): {sizes}")
    assert sizes["slim"] < 300 and sizes["slim"] * 5 < sizes["cpu"], sizes


def test_gpu_check_runs_in_the_gpu_image():
    """No GPU here: the check says so in one line; with --allow-no-gpu its training step runs."""
    result = engine("run", "--rm", GPU_IMAGE, "python", "-m", "components.train.gpu_check")
    assert result.returncode == 1
    assert "FAILED GPUs: none visible to TensorFlow" in result.stderr
    result = engine(
        "run", "--rm", GPU_IMAGE, "python", "-m", "components.train.gpu_check", "--allow-no-gpu"
    )
    assert result.returncode == 0 and "OK: this image can train here" in result.stdout


@pytest.mark.skipif(not have_full_mnist(), reason="needs the MNIST files in ../shared")
def test_slim_steps_run_offline_on_a_read_only_root_as_uid_10001(tmp_path):
    """As a locked-down pod runs them: no network, read-only root with a tmpfs on /tmp."""
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)  # the container's UID 10001 writes here
    script = (
        "python -m components.download /data /tmp/fetched >/dev/null "
        "&& python -m components.unpack_upload /tmp/fetched /store"
    )
    result = engine(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
        "-v", f"{SHARED_MNIST}:/data:ro", "-v", f"{store}:/store",
        SLIM_IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    uploaded = {p.name: p for p in (store / spec.DATASET_PREFIX).iterdir()}
    assert {f.name for f in mnist.FILES} < set(uploaded), sorted(uploaded)
    assert all(p.stat().st_uid == 10001 for p in uploaded.values())


@pytest.fixture
def s3_store(tmp_path, monkeypatch):
    """A bucket on a SeaweedFS store on 127.0.0.1, with its credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with servers.seaweed_s3(FAKE_ACCESS_KEY, FAKE_SECRET_KEY) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="mnist")
        yield endpoint, s3


def run_in_containers(tmp_path: Path, source: str, endpoint: str, *extra: str):
    return subprocess.run(
        [CLI, "run", "--local", "--runner", "docker", "--verbose", "--source", source]
        + ["--store", "s3://mnist/demo", "--s3-endpoint", endpoint]
        + ["--workdir", str(tmp_path / "runs"), "--summary-json", str(tmp_path / "summary.json")]
        + list(extra),
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )


@pytest.mark.skipif(not have_full_mnist(), reason="needs the MNIST files in ../shared")
def test_the_whole_dag_runs_in_containers(tmp_path, s3_store):
    endpoint, s3 = s3_store
    with servers.serve_directory(SHARED_MNIST) as url:
        result = run_in_containers(tmp_path, url, endpoint, *DEMO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    print(f"containers: accuracy {summary['test_accuracy']:.4f}, {summary['wall_seconds']} s")
    assert summary["test_accuracy"] >= 0.98
    assert summary["predictions_uri"] == "s3://mnist/demo/predictions/1/predictions.csv"
    for image in (SLIM_IMAGE, GPU_IMAGE, CPU_IMAGE):
        assert f"Running {image}" in result.stdout, f"no step ran in {image}"
    body = s3.get_object(Bucket="mnist", Key="demo/predictions/1/predictions.csv")["Body"]
    rows = body.read().decode().splitlines()[1:]
    assert len(rows) == 10
    for row in rows:  # the sample digits are named after the digit they show: 7.jpg, 0-light.png
        image, prediction = row.split(",")[:2]
        assert image[0] == prediction, row
    assert FAKE_SECRET_KEY not in result.stdout + result.stderr


def test_a_failing_step_fails_the_run_with_its_own_message(tmp_path, s3_store):
    endpoint, s3 = s3_store
    empty = tmp_path / "empty"
    empty.mkdir()
    with servers.serve_directory(empty) as url:
        result = run_in_containers(tmp_path, url + "missing/", endpoint)
    assert result.returncode == 1
    assert re.search(r"Task .*'download'.* finished with status .*FAILURE", result.stdout)
    line, _, logs = result.stderr.strip().splitlines()[-1].partition(" (step logs: ")
    assert line == (
        f"Error: download: {url}missing/train-images-idx3-ubyte.gz: "
        "HTTP 404 File not found (not retried)"
    )
    assert (Path(logs.rstrip(")")) / "download.log").is_file()  # where the line says they are
    assert "unpack-and-upload" not in result.stdout, "nothing runs after the failed step"
