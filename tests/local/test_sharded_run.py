"""Local tier: `run --local --shards 3` runs plan-shards, a ParallelFor of predict-shard and
merge-shards in kfp.local (2.17.3 runs ParallelFor, two iterations at a time at most), with
images on the S3 server. The merged predictions.csv is byte for byte what one batch-predict
task gives with the same exported model on the same images; the parts are removed once merged
and a retried merge gives the same; a shard whose part is lost is done again and the finished
ones are skipped.
"""

from __future__ import annotations

import json

import pytest

from components.batch_predict import shards
from components.batch_predict.step import merge_step, run_step, shard_step
from components.common import spec
from components.dataset import mnist
from components.store import open_store
from tests.local.test_local_pipeline import run_cli, upload_images

IMAGES = 3 * 256 - 10  # three batches of 256: three shards, the last one short
QUICK = ["--epochs", "1", "--train-limit", "300", "--min-accuracy", "0", "--no-verify-checksums"]


@pytest.fixture
def images(tmp_path, small_mnist_dir, s3):
    """IMAGES files on the S3 server: the small set's test digits, dark and light, and one that
    is not an image (an error row)."""
    from PIL import Image

    digits, _ = mnist.load_split(small_mnist_dir, "test")
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(IMAGES - 1):
        pixels = digits[i % len(digits)]
        Image.fromarray(pixels if i % 2 else 255 - pixels).save(folder / f"{i:04d}.png")
    (folder / "0400-not-a-digit.png").write_bytes(b"broken")
    upload_images(s3, folder, "photos")
    return f"s3://{s3['bucket']}/photos"


def test_a_sharded_local_run_gives_exactly_the_one_task_result(
    tmp_path, http_dir, small_mnist_dir, s3, images
):
    store = f"s3://{s3['bucket']}/store"
    out = tmp_path / "summary.json"
    args = ["run", "--local", "--source", http_dir(small_mnist_dir), "--store", store]
    args += ["--s3-endpoint", s3["endpoint"], "--images", images, "--shards", "3", *QUICK]
    result, output = run_cli([*args, "--summary-json", str(out)], s3["env"], tmp_path)
    assert result.returncode == 0, output[-3000:]
    assert "[6/6] plan-shards done" in output and "3 shard(s)" in output
    assert "[6/6] merge-shards done" in output
    summary = json.loads(out.read_text())
    assert (summary["predicted"], summary["failed"]) == (IMAGES - 1, 1)
    endpoint = s3["endpoint"]
    results = open_store(summary["predictions_uri"].rpartition("/")[0], endpoint)
    plan = json.loads(results.get_bytes(f"{shards.SHARDS_FOLDER}/{shards.PLAN_FILE}"))
    assert plan["shards"] == 3 and plan["total"] == IMAGES

    # one batch-predict task, in this process, with the model the run exported
    one = run_step(summary["model_uri"], store, images, "one-task", endpoint, 0.5)
    same = open_store(store, endpoint).get_bytes(f"one-task/1/{spec.PREDICTIONS_CSV}")
    assert results.get_bytes(spec.PREDICTIONS_CSV) == same
    assert (one["predicted"], one["failed"]) == (summary["predicted"], summary["failed"])

    # merged: the parts are gone, MERGED.json says so, and a retried merge task gives the same
    parts = [
        f"{shards.SHARDS_FOLDER}/{shards.shard_folder(i)}/{spec.PREDICTIONS_CSV}" for i in range(3)
    ]
    assert [results.stat(part) for part in parts] == [None] * 3
    manifests = shards.manifest_uris(open_store(results.uri(shards.SHARDS_FOLDER), endpoint), plan)
    retried = merge_step(summary["model_uri"], manifests, endpoint, 0.5, spec.IN_STEP, "")
    assert (retried["predicted"], retried["failed"]) == (summary["predicted"], summary["failed"])
    assert results.get_bytes(spec.PREDICTIONS_CSV) == same

    # a new plan (as a new run makes) classifies every shard again; then shard 1's part is lost
    # (a preempted pod): only it is done again
    results.delete(f"{shards.SHARDS_FOLDER}/{shards.MERGED_FILE}")
    first = [shard_step(uri, endpoint, spec.IN_STEP, 0.9) for uri in manifests]
    assert [run["resumed"] for run in first] == [False] * 3
    results.delete(f"{shards.SHARDS_FOLDER}/{shards.shard_folder(1)}/{shards.DONE_FILE}")
    again = [shard_step(uri, endpoint, spec.IN_STEP, 0.9) for uri in manifests]
    assert [run["resumed"] for run in again] == [True, False, True]
    merged = merge_step(summary["model_uri"], manifests, endpoint, 0.5, spec.IN_STEP, "")
    assert merged["predicted"] == summary["predicted"]
    assert results.get_bytes(spec.PREDICTIONS_CSV) == same
