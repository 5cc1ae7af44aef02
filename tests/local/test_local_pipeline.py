"""Local-run tier: the whole DAG through kfp.local, with MNIST served over HTTP on 127.0.0.1 and
the store on a SeaweedFS S3 server on 127.0.0.1, driven through the CLI as a user would."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.common.provenance import digest_of
from components.dataset import mnist
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REPO

CLI = [sys.executable, "-m", "pipeline.cli"]


def run_cli(args: list[str], env: dict, cwd: Path, timeout: int = 1200):
    result = subprocess.run(
        CLI + args,
        env={**os.environ, **env},
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    return result, result.stdout + result.stderr


def write_digit_images(folder: Path, source_dir: Path, count: int = 12) -> dict[str, int]:
    """Test-set digits as files: white on black and black on white, 28 px and larger, PNG/JPEG."""
    from PIL import Image

    images, labels = mnist.load_split(source_dir, "test")
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(count):
        pixels = images[-1 - i]  # the end of the test set: far from any train_limit subset
        light = i % 2 == 1
        img = Image.fromarray(255 - pixels if light else pixels)
        if i % 3 == 2:
            img = img.resize((84, 84), Image.BILINEAR)
        name = f"digit-{i:02d}-{'light' if light else 'dark'}.{'JPG' if i % 4 == 0 else 'png'}"
        img.save(folder / name, quality=95) if name.endswith("JPG") else img.save(folder / name)
        expected[name] = int(labels[-1 - i])
    return expected


def upload_images(s3, folder: Path, prefix: str) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    for name in names:
        s3["client"].upload_file(str(folder / name), s3["bucket"], f"{prefix}/{name}")
    return names


def test_whole_pipeline_http_source_s3_store(
    s3, http_dir, small_mnist_dir, full_mnist_dir_or_none, tmp_path
):
    source_dir = full_mnist_dir_or_none or small_mnist_dir
    source = http_dir(source_dir)
    images = tmp_path / "images"
    expected = write_digit_images(images, source_dir)  # light and dark backgrounds, sizes
    (images / "broken.png").write_bytes(b"this is not a png")
    upload_images(s3, images, "mnist/images")
    summary_path = tmp_path / "summary.json"

    result, output = run_cli(
        [
            "run",
            "--local",
            "--source",
            source,
            "--store",
            f"s3://{s3['bucket']}/mnist",
            "--s3-endpoint",
            s3["endpoint"],
            "--epochs",
            "2",
            "--train-limit",
            "3000",
            "--batch-size",
            "32",
            "--min-accuracy",
            "0.5",
            "--workdir",
            str(tmp_path / "runs"),
            "--summary-json",
            str(summary_path),
        ]
        + ([] if full_mnist_dir_or_none else ["--no-verify-checksums"]),
        s3["env"],
        tmp_path,
    )
    assert result.returncode == 0, output[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["test_accuracy"] >= 0.8
    assert summary["model_uri"] == f"s3://{s3['bucket']}/mnist/models/mnist/1"
    assert summary["model_version"] == 1
    assert summary["predicted"] == len(expected) and summary["failed"] == 1
    assert summary["predictions_uri"] == f"s3://{s3['bucket']}/mnist/predictions/1/predictions.csv"

    keys = {o["Key"] for o in s3["client"].list_objects_v2(Bucket=s3["bucket"])["Contents"]}
    assert "mnist/datasets/mnist/MANIFEST.json" in keys
    assert "mnist/models/mnist/1/saved_model.pb" in keys
    body = s3["client"].get_object(Bucket=s3["bucket"], Key="mnist/predictions/1/predictions.csv")
    rows = list(csv.DictReader(io.StringIO(body["Body"].read().decode())))
    assert list(rows[0]) == ["image", "prediction", "confidence", "error", "low_confidence"]
    by_name = {row["image"]: row for row in rows}
    assert by_name["broken.png"]["error"] and not by_name["broken.png"]["prediction"]
    correct = sum(by_name[name]["prediction"] == str(label) for name, label in expected.items())
    assert correct >= 0.7 * len(expected)
    assert "7.jpg: The result: [" in output or any(
        f"{name}: The result: [" in output for name in expected
    )
    # What the terminal shows: a few lines per step; every line is in the run's logs/.
    done = re.search(
        r"^\[4/6\] train done in [\d.]+ s: test accuracy 0\.\d{4} after ([\d.]+) s of training$",
        output,
        re.M,
    )
    assert done, output
    # one measure of the training time: the step line's is the last epoch line's and the report's
    epochs = re.findall(r"epoch \d+/\d+: train loss .*?, ([\d.]+) s,", output)
    assert epochs and epochs[-1] == done[1], (epochs, done[1])
    train_report = next(Path(r) for r in summary["reports"] if r.endswith("train.html"))
    assert f"{done[1]} s of training" in train_report.read_text()
    assert "Got executor_input" not in output and "\x1b[" not in output
    # at the demo settings about 40 lines: 10 per-image lines there, one per image here
    assert len(output.strip().splitlines()) - len(rows) <= 37, output
    logs = Path(summary["logs_dir"])
    assert "Got executor_input" in (logs / "train.log").read_text()
    assert sorted(Path(r).name for r in summary["reports"]) == ["batch-predict.html", "train.html"]
    assert all(
        "<svg" in Path(r).read_text() or "<img" in Path(r).read_text() for r in summary["reports"]
    )
    follow_a_prediction_to_its_dataset(s3, rows)
    # The credentials never reach a log line, an artifact or the summary.
    assert FAKE_SECRET_KEY not in output and FAKE_ACCESS_KEY not in output
    assert FAKE_SECRET_KEY not in summary_path.read_text()
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            assert FAKE_SECRET_KEY.encode() not in data and FAKE_ACCESS_KEY.encode() not in data


SUMMARY_KEYS = {
    "test_accuracy", "model_uri", "model_version", "predictions_uri", "predicted", "failed",
    "run_dir", "logs_dir", "reports", "gated", "wall_seconds",
}  # fmt: skip


def test_accuracy_gate_stops_export(tmp_path, http_dir, small_mnist_dir):
    """Also: parameters from a file, a named option winning over it, and `-o json`."""
    store = tmp_path / "store"
    params = tmp_path / "params.yaml"
    params.write_text("epochs: 1\ntrain_limit: 300\nmin_accuracy: 0.5\nverify_checksums: false\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--source", http_dir(small_mnist_dir)]
        + ["--store", str(store), "--params-file", str(params), "--min-accuracy", "1.0"]
        + ["--workdir", str(tmp_path / "runs"), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("KFP_HOST", "KF_PIPELINES_ENDPOINT")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # stdout is the document alone; progress is on stderr
    assert set(summary) == SUMMARY_KEYS
    assert summary["gated"] is True and summary["model_uri"] is None  # --min-accuracy won
    assert "[4/6] train done in" in result.stderr
    assert (store / "datasets/mnist/MANIFEST.json").is_file()
    assert not (store / "models").exists() and not (store / "predictions").exists()


def test_bad_parameter_refused_before_anything_runs(tmp_path):
    result, output = run_cli(
        ["run", "--local", "--epochs", "0", "--workdir", str(tmp_path)],
        {"PYTHONPATH": str(REPO)},
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 2 and "epochs=0" in output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "env", "phrase"),
    [
        (["--param", "epoch=3"], {}, "unknown parameter 'epoch'; did you mean 'epochs'?"),
        ([], {"KFP_HOST": "http://127.0.0.1:9"}, "KFP_HOST is set, so say where to run"),
    ],
)
def test_run_refusals_are_one_line(tmp_path, args, env, phrase):
    result, output = run_cli(
        ["run", *args, "--workdir", str(tmp_path)],
        {"PYTHONPATH": str(REPO), **env},
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 2 and phrase in output, output
    assert not (tmp_path / "runs").exists()


def follow_a_prediction_to_its_dataset(s3, rows: list[dict]) -> None:
    """From a row of predictions.csv back to the dataset's files, through the store alone."""
    client, bucket = s3["client"], s3["bucket"]

    def read(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(prefix: str) -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]

    row = next(r for r in rows if r["prediction"])
    predictions = json.loads(read("mnist/predictions/1/provenance.json"))
    assert predictions["images"] == len(rows) and predictions["model_version"] == 1
    model_prefix = predictions["model_uri"].removeprefix(f"s3://{bucket}/") + "/"
    model = json.loads(read(model_prefix + "provenance.json"))
    # the model's digest is that of the files published in its version folder
    published = {
        key.removeprefix(model_prefix): hashlib.sha256(read(key)).hexdigest()
        for key in keys(model_prefix)
        if key.rsplit("/", 1)[-1] not in ("provenance.json", "CLAIM.json")
    }
    assert predictions["saved_model_digest"] == model["saved_model_digest"] == digest_of(published)
    assert model["parameters"]["epochs"] == 2 and model["versions"]["tensorflow"]
    assert model["run"]["id"] and model["run"]["train_task_id"] and model["run"]["export_task_id"]
    # and the dataset digest is that of the IDX files in the store, as the manifest lists them
    manifest = json.loads(read("mnist/datasets/mnist/MANIFEST.json"))
    stored = {
        name: hashlib.sha256(read(f"mnist/datasets/mnist/{name}")).hexdigest()
        for name in manifest["files"]
    }
    assert predictions["dataset_digest"] == model["dataset_digest"] == digest_of(stored)
    assert manifest["dataset_digest"] == digest_of(stored)
    assert row["image"]  # this row, like every other, came from that model and that data
