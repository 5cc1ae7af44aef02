"""TensorFlow's C++ log lines stay off the terminal (components/common/quiet_tf.py): at import,
where TF_CPP_MIN_LOG_LEVEL cannot reach them, and on first use of the devices (cuInit's CUDA
error on a machine without a GPU). MNIST_TF_LOGS=1 lets them through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NATIVE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|CUDA error|cpu_feature_guard", re.M)
USE = (
    "import components, keras, tensorflow as tf; tf.config.list_physical_devices(); "
    "keras.Sequential([keras.layers.Input((2,)), keras.layers.Dense(1)])(tf.zeros((1, 2))); "
    "print('ok')"
)


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MNIST_TF_LOGS")
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**clean, "PYTHONPATH": os.pathsep.join([env.pop("PATH_FIRST", ""), str(REPO)]), **env},
    )


def test_importing_and_using_tensorflow_prints_no_native_log_line():
    done = python(USE)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert not NATIVE.search(done.stderr), done.stderr


def test_mnist_tf_logs_lets_them_through():
    """The lines are there to hide: without the quieting this build writes them."""
    done = python(USE, MNIST_TF_LOGS="1")
    assert done.returncode == 0, done.stderr
    assert NATIVE.search(done.stderr), done.stderr


def fake_tensorflow(tmp_path: Path, body: str) -> str:
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text("import os\nos.write(2, b'native banner\\n')\n" + body)
    return str(tmp_path)


def test_what_the_import_writes_is_hidden_and_fd_2_comes_back(tmp_path):
    path = fake_tensorflow(tmp_path, "")
    code = "import os, components, tensorflow; os.write(2, b'after\\n'); print('ok')"
    done = python(code, PATH_FIRST=path)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert done.stderr == "after\n"


def test_a_spec_looked_up_first_does_not_spend_the_quiet_import(tmp_path):
    """`require_tensorflow` asks importlib.util.find_spec before anything imports it."""
    path = fake_tensorflow(tmp_path, "")
    code = "import importlib.util as u, components; u.find_spec('tensorflow'); import tensorflow"
    done = python(code, PATH_FIRST=path)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_failing_import_shows_what_it_wrote_and_its_error(tmp_path):
    path = fake_tensorflow(tmp_path, "raise ImportError('no such build')\n")
    done = python("import components, tensorflow", PATH_FIRST=path)
    assert done.returncode == 1
    assert "native banner" in done.stderr and "ImportError: no such build" in done.stderr
