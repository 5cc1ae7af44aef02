"""Slow tier: the whole pipeline on the full MNIST data with the default training parameters.

Run with `make test-slow` (pytest -m slow); several minutes on a 2-core CPU.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tests.local.test_local_pipeline import run_cli


@pytest.mark.slow
def test_defaults_on_full_data_reach_99_percent(full_mnist_dir, http_dir, tmp_path):
    result, output = run_cli(
        [
            "run",
            "--local",
            "--source",
            http_dir(full_mnist_dir),
            "--store",
            str(tmp_path / "s"),
            "--workdir",
            str(tmp_path / "runs"),
            "--summary-json",
            str(tmp_path / "summary.json"),
        ],
        {"PYTHONPATH": str(REPO)},
        tmp_path,
        timeout=1800,
    )
    assert result.returncode == 0, output[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    print(
        f"full data, default parameters: test accuracy {summary['test_accuracy']:.4f}, "
        f"wall {summary['wall_seconds']} s"
    )
    assert summary["test_accuracy"] >= 0.99
    assert summary["model_version"] == 1 and summary["failed"] == 0
    # The bundled sample digits (dark and light backgrounds) are all classified correctly.
    rows = (tmp_path / "s/predictions/1/predictions.csv").read_text().splitlines()[1:]
    predictions = {row.split(",")[0]: row.split(",")[1] for row in rows}
    assert len(predictions) == 10
    assert all(predictions[name] == name[0] for name in predictions)
