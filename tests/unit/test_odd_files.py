"""Odd files where images, datasets and models live: links, FIFOs, leftovers, odd keys, odd names.

Each one either gets a CSV row or is named as skipped with the reason, by the same rules in a
folder and on S3; nothing hangs, nothing is read outside the store, and every cell is safe to
open in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from components.batch_predict.predictor import batch_predict, open_images
from components.download.fetch import download
from components.download.transport import DownloadError
from components.store import LocalStore, open_store
from tests import servers
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY
from tests.unit.digit_images import sample_files


def classify(images: np.ndarray):
    probabilities = np.full((len(images), 10), 0.1, np.float32)
    return probabilities, np.full(len(images), 7, np.int64)


def test_links_fifos_and_leftovers_in_an_images_folder_are_skipped_by_name(tmp_path):
    files, _ = sample_files()
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "7.jpg").write_bytes(files["7.jpg"])
    (images / "scan.webp").write_bytes(files["0.png"])  # extension says webp, content is PNG
    (images / ".part-x1y2").write_bytes(b"half an upload")
    os.mkfifo(images / "pipe.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_bytes(files["0.png"])
    os.symlink(outside, images / "linked-folder")
    os.symlink(outside / "secret.png", images / "linked.png")
    os.symlink(tmp_path / "nothing", images / "dangling.png")
    _, keys, skipped = open_images(str(images))
    assert keys == ["7.jpg", "scan.webp"]
    reasons = dict(skipped)
    assert reasons == {
        ".part-x1y2": "an unfinished write (.part-*)",
        "pipe.png": "FIFO: not read",
        "linked-folder": "symbolic link: not read",
        "linked.png": "symbolic link: not read",
        "dangling.png": "symbolic link: not read",
    }
    summary = batch_predict(str(images), str(tmp_path / "out"), classify, processes=0)
    assert (summary["total"], summary["skipped"]) == (2, 5)
    assert "pipe.png (FIFO: not read)" in summary["markdown"]


def _put_all(endpoint: str, bucket: str, keys: tuple[str, ...]) -> None:
    import boto3

    files, _ = sample_files()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=files["7.jpg"])


def test_an_unfinished_upload_on_s3_is_skipped_with_a_reason(s3_env, s3_bucket):
    _put_all(s3_env, s3_bucket, ("in/7.jpg", "in/.part-1", "in/sub/.part-2"))
    _, keys, skipped = open_images(f"s3://{s3_bucket}/in", s3_env)
    assert keys == ["7.jpg"]
    assert dict(skipped) == {
        ".part-1": "an unfinished write (.part-*)",
        "sub/.part-2": "an unfinished write (.part-*)",
    }


@pytest.fixture
def aws_keys_s3(monkeypatch):
    """moto, not SeaweedFS: AWS stores `a//b`, `./c` and `x/../d` as given; SeaweedFS (like
    MinIO) folds the `//` and refuses the others, so only an AWS-like server can hold them."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)

    with servers.moto_s3() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="odd-keys"
        )
        yield endpoint


def test_odd_s3_keys_are_skipped_with_a_reason(aws_keys_s3):
    keys = ("in/7.jpg", "in/a//double.png", "in/./dot.png", "in/x/../up.png", "in/.part-1")
    _put_all(aws_keys_s3, "odd-keys", keys)
    _, keys, skipped = open_images("s3://odd-keys/in", aws_keys_s3)
    assert keys == ["7.jpg"]
    reasons = dict(skipped)
    assert reasons[".part-1"] == "an unfinished write (.part-*)"
    for key in ("a//double.png", "./dot.png", "x/../up.png"):
        assert "unsupported" in reasons[key]


def test_formula_like_names_are_neutralised_in_the_csv(tmp_path):
    files, _ = sample_files()
    (tmp_path / "images").mkdir()
    for name in ("=cmd|' calc'!A0.png", "+1.png", "-2.png", "@sum.png", "plain.png"):
        (tmp_path / "images" / name).write_bytes(files["7.jpg"])
    summary = batch_predict(str(tmp_path / "images"), str(tmp_path / "out"), classify, processes=0)
    text = (tmp_path / "out/predictions.csv").read_text()
    names = [row["image"] for row in csv.DictReader(io.StringIO(text))]
    assert sorted(names) == sorted(
        ["'+1.png", "'-2.png", "'=cmd|' calc'!A0.png", "'@sum.png", "plain.png"]
    )
    assert summary["predicted"] == 5
    # the stand-in classifier is 10% sure of everything: every row is marked, none dropped
    assert summary["low_confidence"] == 5 and text.count(",yes\n") == 5
    assert "**5** with low confidence" in summary["markdown"]


def test_local_store_files_take_the_umasks_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        store = LocalStore(tmp_path)
        store.put_bytes("a/b.bin", b"x")
        store.put_file("a/c.bin", tmp_path / "a/b.bin")
    finally:
        os.umask(old)
    for name in ("a/b.bin", "a/c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644  # readable by UID 10001


def test_a_folder_store_never_writes_through_a_link_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root").mkdir()
    os.symlink(outside, tmp_path / "root/predictions")
    store = open_store(str(tmp_path / "root"))
    with pytest.raises(Exception, match="outside the store"):
        store.put_bytes("predictions/predictions.csv", b"x")
    assert list(outside.iterdir()) == []


def _gz_folder(folder: Path, raw: bool) -> None:
    from components.dataset import mnist

    folder.mkdir()
    for spec in mnist.FILES:
        (folder / (spec.name if raw else spec.gz_name)).write_bytes(b"x")


def test_a_folder_of_raw_idx_files_gets_a_clear_message(tmp_path):
    _gz_folder(tmp_path / "raw", raw=True)
    with pytest.raises(DownloadError, match="holds raw IDX files .*gzip them"):
        download(str(tmp_path / "raw"), tmp_path / "out", verify_checksums=False)


def test_a_folder_holding_one_archive_names_it(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/Mnist-Data-Set.zip").write_bytes(b"PK")
    with pytest.raises(DownloadError, match=r"holds one archive: give --source .*Mnist-Data-Set"):
        download(str(tmp_path / "src"), tmp_path / "out", verify_checksums=False)


@pytest.mark.parametrize("command", [["predict", "--model", "m", __file__], ["run", "--local"]])
def test_commands_that_need_tensorflow_say_which_extra_when_it_is_missing(monkeypatch, command):
    import importlib.util

    from click.testing import CliRunner

    from pipeline.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name)
    )
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    assert "pip install 'mnist-kfp[tensorflow]'" in result.output
