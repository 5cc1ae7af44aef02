"""`python -m components.train.gpu_check` on a machine without a GPU, and its cuDNN check."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from components.train import gpu_check

pytest.importorskip("tensorflow")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.train.gpu_check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_gpu_fails_with_what_to_check():
    result = run()
    assert result.returncode == 1
    assert result.stdout.startswith("TensorFlow 2.21")
    (failed,) = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert "GPUs: none visible to TensorFlow" in failed and "nvidia.com/gpu" in failed


def test_allow_no_gpu_runs_the_training_step_on_the_cpu():
    result = run("--allow-no-gpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("GPUs: none visible")
    assert lines[2].startswith("training step on /CPU:0: loss ")
    assert lines[-1] == "OK: this image can train here"


def test_a_cudnn_that_does_not_load_is_named():
    fake_tf = SimpleNamespace(
        sysconfig=SimpleNamespace(get_build_info=lambda: {"cudnn_version": "99"})
    )
    with pytest.raises(gpu_check.CheckFailed, match=r"cuDNN: libcudnn\.so\.99 does not load"):
        gpu_check.load_cudnn(fake_tf)
