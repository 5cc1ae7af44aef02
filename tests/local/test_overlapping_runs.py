"""Two `run --local` started at once in the same folder, on the same store (a scheduled run and a
manual one): both finish, each knows its own run folder, and neither replaces the other's
model version or predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_two_local_runs_at_once_keep_their_own_outputs(small_mnist_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for n in (1, 2):
        args = ["run", "--local", "--source", str(small_mnist_dir), "--store", "store"]
        args += ["--epochs", "1", "--train-limit", "400", "--min-accuracy", "0"]
        args += ["--no-verify-checksums", "--summary-json", f"summary-{n}.json"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", *args],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    first, second = (json.loads((tmp_path / f"summary-{n}.json").read_text()) for n in (1, 2))
    assert first["run_dir"] != second["run_dir"]
    assert {first["model_version"], second["model_version"]} == {1, 2}
    assert first["predictions_uri"] != second["predictions_uri"]
    for summary in (first, second):
        csv_path = summary["predictions_uri"]
        assert os.path.isfile(csv_path)
        assert f"/predictions/{summary['model_version']}/" in csv_path
