"""`clean` deletes only what the pipeline writes, never follows a link out of the store."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from components.store import LocalStore, open_store
from pipeline.cli import main

OURS = [
    "datasets/mnist/MANIFEST.json",
    "datasets/mnist/train-images-idx3-ubyte",
    "models/mnist/1/saved_model.pb",
    "models/mnist/1/CLAIM.json",
    "predictions/3/predictions.csv",
    "predictions/5/predictions.parts.json",
    "predictions/nightly/7/predictions.csv",  # run --results names a folder under predictions
    "checkpoints/run-0a1b/epoch-0003/latest.weights.h5",  # a run that never exported
]
NOT_OURS = [
    "datasets/mnist/my-notes.txt",
    "models/mnist/README.md",
    "models/mnist/latest/saved_model.pb",
    "predictions/summary-by-hand.xlsx",
]


def clean(*args: str):
    return CliRunner().invoke(main, ["clean", *args])


def _seed(store) -> None:
    for key in OURS + NOT_OURS:
        store.put_bytes(key, b"x")


def test_only_the_pipelines_own_files_go_and_the_rest_is_listed_as_kept(tmp_path):
    store = open_store(str(tmp_path / "s"))
    _seed(store)
    (tmp_path / "s/models/mnist/2").mkdir()
    (tmp_path / "s/models/mnist/2/.part-abc123").write_bytes(b"half")  # an interrupted write
    result = clean("--store", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 0, result.output
    prefixes = ("datasets", "models", "predictions", "checkpoints")
    left = {info.key for p in prefixes for info in store.list(p)}
    assert left == set(NOT_OURS)
    assert not (tmp_path / "s/models/mnist/2").exists()
    for key in NOT_OURS:
        assert f"kept {tmp_path / 's' / key} (not ours)" in result.output


def test_a_symlinked_prefix_is_not_followed_and_nothing_outside_is_deleted(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "predictions.csv").write_text("mine")
    (outside / "thesis.tex").write_text("mine too")
    store = open_store(str(tmp_path / "s"))
    store.put_bytes("models/mnist/1/saved_model.pb", b"x")
    os.symlink(outside, tmp_path / "s/predictions")
    os.symlink(tmp_path / "nowhere", tmp_path / "s/models/mnist/dangling")
    result = clean("--store", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in outside.iterdir()) == ["predictions.csv", "thesis.tex"]
    assert "predictions (symbolic link: not followed)" in result.output
    assert "dangling (symbolic link: not read)" in result.output
    assert (tmp_path / "s/predictions").is_symlink()


def test_a_linked_parent_folder_cannot_lead_clean_outside(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "mnist/1").mkdir(parents=True)
    (outside / "mnist/1/saved_model.pb").write_text("not in the store")
    (tmp_path / "s").mkdir()
    os.symlink(outside, tmp_path / "s/models")
    result = clean("--store", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 0, result.output
    assert (outside / "mnist/1/saved_model.pb").exists()
    assert "models/mnist (reached through a symbolic link: not followed)" in result.output


def test_unfinished_multipart_uploads_are_aborted_on_s3(s3_env, s3_bucket):
    import boto3

    store = open_store(f"s3://{s3_bucket}/p", s3_env)
    _seed(store)
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    client.create_multipart_upload(Bucket=s3_bucket, Key="p/datasets/mnist/train-images-idx3-ubyte")
    dry = clean("--store", f"s3://{s3_bucket}/p", "--s3-endpoint", s3_env)
    assert "would abort unfinished upload" in dry.output
    result = clean("--store", f"s3://{s3_bucket}/p", "--s3-endpoint", s3_env, "--yes")
    assert result.exit_code == 0, result.output
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    left = {info.key for p in ("datasets", "models", "predictions") for info in store.list(p)}
    assert left == set(NOT_OURS)


def test_a_store_at_the_filesystem_root_is_inside_itself():
    store = LocalStore(Path("/"))
    assert str(store._path("datasets/mnist")) == "/datasets/mnist"


def test_a_store_that_is_a_loop_of_links_is_one_line(tmp_path):
    """Python 3.11's Path.resolve() reports a link loop as a bare RuntimeError: a traceback."""
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    result = clean("--store", str(tmp_path / "a"))
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: {tmp_path / 'a'}: a loop of symbolic links"


def test_a_sharded_runs_files_go_and_lookalikes_stay(tmp_path):
    """What components/batch_predict/shards.py writes under <version>/shards/ is ours; a file
    of another name there, or the same names elsewhere, is not."""
    sharded = [
        "predictions/4/shards/plan.json",
        "predictions/4/shards/MERGED.json",
        "predictions/4/shards/keys-00000.txt",
        "predictions/4/shards/00000/DONE.json",
        "predictions/4/shards/00000/predictions.csv",
    ]
    lookalikes = [
        "predictions/4/shards/notes.txt",
        "predictions/4/shards/keys-1.txt",
        "predictions/4/shards/00000/mine.csv",
        "predictions/4/plan.json",
    ]
    store = open_store(str(tmp_path / "s"))
    for key in sharded + lookalikes:
        store.put_bytes(key, b"x")
    result = clean("--store", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 0, result.output
    assert {info.key for info in store.list("predictions")} == set(lookalikes)


def test_the_dataset_is_what_its_manifest_lists_as_well_as_mnists_names(tmp_path):
    """A dataset published from another source lists its own files in MANIFEST.json: those go
    with the four MNIST names; a file it does not list stays. An unreadable manifest: only the
    fixed names."""
    store = open_store(str(tmp_path / "s"))
    store.put_bytes("datasets/mnist/MANIFEST.json", b'{"files": {"fashion.idx": {}}}')
    for name in ("fashion.idx", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz", "x.idx"):
        store.put_bytes(f"datasets/mnist/{name}", b"x")
    result = clean("--store", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 0, result.output
    assert {info.key for info in store.list("datasets")} == {"datasets/mnist/x.idx"}
    store.put_bytes("datasets/mnist/MANIFEST.json", b"not json")
    store.put_bytes("datasets/mnist/fashion.idx", b"x")
    store.put_bytes("datasets/mnist/train-labels-idx1-ubyte", b"x")
    assert clean("--store", str(tmp_path / "s"), "--yes").exit_code == 0
    assert {info.key for info in store.list("datasets")} == {
        "datasets/mnist/x.idx",
        "datasets/mnist/fashion.idx",
    }


def test_a_results_folder_named_shards_still_holds_a_sharded_runs_files(tmp_path):
    store = open_store(str(tmp_path / "s"))
    store.put_bytes("predictions/runs/shards/4/shards/plan.json", b"x")
    store.put_bytes("predictions/runs/shards/4/notes.txt", b"x")
    assert clean("--store", str(tmp_path / "s"), "--yes").exit_code == 0
    assert {info.key for info in store.list("predictions")} == {
        "predictions/runs/shards/4/notes.txt"
    }
